"""Hostile input (issue 24): config values that try to run as shell code, `forget` pointed
outside a study, files that are empty or malformed, outputs that cannot be written, a full
disk, and the mode of what is written. Each case is refused in one line, removes nothing
outside its study and leaves nothing half-written. (Bundles: test_hostile_bundle.py;
hyper-parameters and specs: test_hostile_hparams.py.)"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from benchmark.cli import main
from benchmark.core.shellquote import quote_always
from tests.conftest import REPO_ROOT
from tests.helpers import make_run as make

RUN = "results/default/runs/digits/symmetric_0.40/single-x/kd/seed3"


def one_error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"noisykd {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


# -- 1. no config value runs as a shell command -------------------------------------------

PAYLOADS = ["x'$(touch {m})'", 'x"$(touch {m})"', "x`touch {m}`", "x; touch {m}; #",
            "x' ; touch {m} ; echo '", "x\\'$(touch {m})\\'", "$(touch {m})"]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_quote_always_is_one_inert_shell_word(tmp_path, payload):
    marker = tmp_path / "PWNED"
    value = payload.format(m=marker)
    out = subprocess.run(["bash", "-c", f"printf %s {quote_always(value)}"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout == value and not marker.exists()


def test_quote_always_keeps_the_old_params_of_ordinary_paths():
    """Snakemake's params rerun trigger: an ordinary path quotes as repr did before."""
    for value in ("data", "/usr/share/datasets/fashion-mnist", "../data dir/x-1.2"):
        assert quote_always(value) == repr(value)


def _sources_in(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


def test_a_config_whose_strings_carry_shell_payloads_runs_none(tmp_path):
    """Every free string of the config (the data and CIFAR-N folders) carries a payload, the
    workflow's data and labels rules run (they are the ones with shell commands), and
    nothing is created outside the study; a study name with a payload is refused."""
    work = tmp_path / "work"
    work.mkdir()
    tag = uuid.uuid4().hex[:8]
    markers = [Path("/tmp") / f"PWNED-{tag}-{i}" for i in range(len(PAYLOADS))]
    data_root = " ".join(p.format(m=markers[i]) for i, p in enumerate(PAYLOADS))
    cifar_n = "".join(p.format(m=markers[i]) for i, p in enumerate(PAYLOADS))
    cfg = {"study": "hostile",
           "datasets": [{"name": "synthetic", "student": "mlp_8", "teacher": "mlp_8",
                         "train": {"epochs": 1}}],
           "noise": [{"type": "symmetric", "rates": [0.2]}], "methods": ["ce"],
           "setups": ["single"], "seeds": [0], "data_root": data_root,
           "cifar_n_dir": cifar_n, "runtime": {"device": "cpu", "threads": 1}}
    config = work / "hostile.yaml"
    config.write_text(yaml.safe_dump(cfg))
    before = _sources_in(tmp_path)
    res = subprocess.run(["snakemake", "-s", str(REPO_ROOT / "Snakefile"), "-d", str(work),
                          "--cores", "1", "--configfile", str(config), "--until", "labels"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    labels = work / "results/hostile/labels/synthetic/symmetric_0.20/seed0.npz"
    assert labels.is_file()
    assert not any(m.exists() for m in markers)
    created = _sources_in(tmp_path) - before
    allowed = (str(work / "results"), str(work / "results" / "hostile"), str(work / ".snakemake"))
    outside = [p for p in created if p != allowed[0] and not p.startswith(allowed[1:])]
    assert outside == [], outside
    # the labels job ran with the payloads as its (inert) path options
    from benchmark.data.labels import read_labels

    assert read_labels(labels).meta["dataset"] == "synthetic"

    cfg["study"] = f"x$(touch {markers[0]})"
    config.write_text(yaml.safe_dump(cfg))
    res = subprocess.run(["snakemake", "-s", str(REPO_ROOT / "Snakefile"), "-d", str(work),
                          "--cores", "1", "--configfile", str(config), "-n"],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "invalid config" in res.stderr and "study" in res.stderr
    assert not markers[0].exists()


def test_a_bundle_whose_config_carries_a_payload_is_harmless(tmp_path):
    """A study whose config carries shell payloads is exported; the bundle is verified,
    imported into a fresh folder, and the workflow is run on the imported config (its data
    and labels jobs forced to run again): no payload runs at any step."""
    tag = uuid.uuid4().hex[:8]
    markers = [Path("/tmp") / f"PWNED-{tag}-{i}" for i in range(2)]
    cfg = {"study": "hostile",
           "datasets": [{"name": "synthetic", "student": "mlp_8", "teacher": "mlp_8",
                         "train": {"epochs": 1}}],
           "noise": [{"type": "symmetric", "rates": [0.2]}], "methods": ["ce"],
           "setups": ["single"], "seeds": [0],
           "data_root": f"x'$(touch {markers[0]})'", "cifar_n_dir": f'y"$(touch {markers[1]})"',
           "runtime": {"device": "cpu", "threads": 1}}
    made = tmp_path / "made"
    made.mkdir()
    (made / "hostile.yaml").write_text(yaml.safe_dump(cfg))

    def smk(where, *args):
        res = subprocess.run(["snakemake", "-s", str(REPO_ROOT / "Snakefile"), "-d", str(where),
                              "--cores", "1", *args], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    smk(made, "--configfile", str(made / "hostile.yaml"))
    bundle = tmp_path / "hostile.tar.gz"
    for cwd, args in ((made, ["bundle", "export", "--results", "results/hostile", "--out",
                              str(bundle)]),
                      (made, ["bundle", "verify", str(bundle)])):
        subprocess.run(["noisykd", *args], cwd=cwd, check=True, capture_output=True)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    subprocess.run(["noisykd", "bundle", "import", str(bundle), "--results", "results/hostile"],
                   cwd=fresh, check=True, capture_output=True)
    config = fresh / "results/hostile/config.yaml"
    assert yaml.safe_load(config.read_text())["data_root"] == cfg["data_root"]
    smk(fresh, "--configfile", str(config), "--forcerun", "prepare_data", "labels", "--until",
        "labels")
    assert not any(m.exists() for m in markers)


# -- 2. forget removes nothing outside a study --------------------------------------------

def make_run(root: Path, rel: str = RUN) -> tuple[Path, Path]:
    return make(root, rel)


def test_forget_refuses_dot_dot_out_of_the_study(tmp_path, capsys):
    run, ckpt = make_run(tmp_path)
    victim = tmp_path / "seed0"
    victim.mkdir()
    (victim / "precious").write_text("x")
    arg = tmp_path / "results/default/runs/../../../seed0"
    assert main(["forget", str(arg)]) == 2
    line = one_error_line(capsys.readouterr().err, "forget")
    assert str(arg) in line and "not a run folder inside a results folder" in line
    assert (victim / "precious").exists() and run.exists() and ckpt.exists()


def test_forget_refuses_a_run_shaped_folder_outside_any_results_folder(tmp_path, capsys):
    victim = tmp_path / "data/s/runs/digits/symmetric_0.40/single-x/kd/seed3"
    victim.mkdir(parents=True)
    (victim / "precious").write_text("x")
    assert main(["forget", str(victim)]) == 2
    one_error_line(capsys.readouterr().err, "forget")
    assert (victim / "precious").exists()


def test_forget_follows_a_symlinked_parent_to_its_real_place_and_refuses(tmp_path, capsys):
    outside = tmp_path / "elsewhere"
    victim = outside / "digits/symmetric_0.40/single-x/kd/seed3"
    victim.mkdir(parents=True)
    (victim / "precious").write_text("x")
    (tmp_path / "results/default").mkdir(parents=True)
    (tmp_path / "results/default/runs").symlink_to(outside)
    arg = tmp_path / RUN
    assert arg.is_dir()  # reached through the symlink
    assert main(["forget", str(arg)]) == 2
    line = one_error_line(capsys.readouterr().err, "forget")
    assert "runs is a symlink" in line
    assert (victim / "precious").exists()


def test_forget_refuses_a_symlinked_run_folder(tmp_path, capsys):
    run, ckpt = make_run(tmp_path)
    link = run.parent / "seed4"
    link.symlink_to(run)
    assert main(["forget", str(link)]) == 2
    assert "is a symlink" in one_error_line(capsys.readouterr().err, "forget")
    assert run.exists() and link.is_symlink() and ckpt.exists()


def test_forget_checks_a_symlinked_checkpoint_folder_before_removing_anything(tmp_path,
                                                                             capsys):
    run, ckpt = make_run(tmp_path)
    other, other_ckpt = make_run(tmp_path, RUN.replace("seed3", "seed5"))
    outside = tmp_path / "outside-ckpt"
    outside.mkdir()
    (outside / "precious").write_text("x")
    shutil.rmtree(ckpt)
    ckpt.symlink_to(outside)
    assert main(["forget", str(other), str(run)]) == 2
    line = one_error_line(capsys.readouterr().err, "forget")
    assert "checkpoint folder" in line and "symlink" in line
    # nothing removed: not the run, not the other argument's run, not the link's target
    assert run.exists() and other.exists() and other_ckpt.exists()
    assert (outside / "precious").exists()


def test_forget_refuses_a_checkpoint_folder_under_a_symlinked_parent(tmp_path, capsys):
    run, ckpt = make_run(tmp_path)
    outside = tmp_path / "outside-ckpts"
    shutil.move(str(tmp_path / "results/default/checkpoints"), str(outside))
    (tmp_path / "results/default/checkpoints").symlink_to(outside)
    assert main(["forget", str(run)]) == 2
    assert "symlink" in one_error_line(capsys.readouterr().err, "forget")
    assert run.exists() and (outside / Path(*Path(RUN).parts[2:]) / "finished").exists()


def test_forget_of_the_layout_before_studies_still_works(tmp_path):
    run = tmp_path / "results/runs/digits/symmetric_0.40/single-x/kd/seed3"
    ckpt = tmp_path / "results/checkpoints/runs/digits/symmetric_0.40/single-x/kd/seed3"
    run.mkdir(parents=True)
    ckpt.mkdir(parents=True)
    assert main(["forget", str(run)]) == 0
    assert not run.exists() and not ckpt.exists()


def test_forget_through_a_relative_path_with_dot_dot_inside_the_study(tmp_path, capsys,
                                                                       monkeypatch):
    run, ckpt = make_run(tmp_path)
    monkeypatch.chdir(tmp_path / "results/default/runs/digits")
    assert main(["forget", "../digits/symmetric_0.40/single-x/kd/seed3"]) == 0
    assert not run.exists() and not ckpt.exists()


# -- 7. one line where one line is promised ----------------------------------------------

def _labels_args(out: Path) -> list[str]:
    return ["labels", "--dataset", "synthetic", "--noise", "symmetric", "--rate", "0.2",
            "--seed", "0", "--out", str(out), "--quiet"]


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04garbage"])
def test_an_empty_or_garbage_labels_file_is_one_line(tmp_path, capsys, content):
    bad = tmp_path / "seed0.npz"
    bad.write_bytes(content)
    out = tmp_path / "run"
    code = main(["student", "--dataset", "synthetic", "--labels", str(bad), "--arch", "mlp_8",
                 "--seed", "0", "--out", str(out), "--epochs", "1", "--device", "cpu"])
    assert code == 2
    line = one_error_line(capsys.readouterr().err, "student")
    assert str(bad) in line and "not a readable labels file" in line
    assert not (out / "metrics.json").exists()


def test_a_labels_file_whose_meta_is_not_an_object_is_one_line(tmp_path, capsys):
    import numpy as np

    from benchmark.core.errors import UserError
    from benchmark.data.labels import read_labels

    bad = tmp_path / "seed0.npz"
    np.savez(bad, meta=np.array(json.dumps([1, 2])))
    with pytest.raises(UserError, match="not a NoisyKD labels file"):
        read_labels(bad)


def test_out_naming_an_existing_folder_is_refused_before_any_work(tmp_path, capsys):
    folder = tmp_path / "taken"
    folder.mkdir()
    assert main(_labels_args(folder)) == 2
    line = one_error_line(capsys.readouterr().err, "labels")
    assert str(folder) in line and "is a folder" in line
    assert list(folder.iterdir()) == []


def test_out_under_a_file_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(_labels_args(blocker / "sub" / "seed0.npz")) == 2
    line = one_error_line(capsys.readouterr().err, "labels")
    assert str(blocker) in line and "is a file" in line


def test_a_run_folder_out_that_is_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "run"
    blocker.write_text("x")
    assert main(["fingerprint"]) == 0
    capsys.readouterr()
    code = main(["teacher", "--dataset", "synthetic", "--labels", str(tmp_path / "l.npz"),
                 "--arch", "mlp_8", "--seed", "0", "--out", str(blocker)])
    assert code == 2
    assert "exists and is not a folder" in one_error_line(capsys.readouterr().err, "teacher")


def test_a_teacher_metrics_without_its_arch_is_one_line(tmp_path, capsys):
    labels = tmp_path / "seed0.npz"
    assert main(_labels_args(labels)) == 0
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "model_last.pt").write_bytes(b"x")
    for bad in ({"kind": "teacher", "config_hash": "abc", "spec": {"dataset": "synthetic"}},
                {"kind": "teacher", "config_hash": "abc", "spec": "nonsense"},
                {"kind": "teacher", "spec": {"arch": "mlp_8"}}, ["a list"]):
        (teacher / "metrics.json").write_text(json.dumps(bad))
        out = tmp_path / "student"
        code = main(["student", "--dataset", "synthetic", "--labels", str(labels),
                     "--arch", "mlp_8", "--seed", "0", "--out", str(out), "--method", "kd",
                     "--teacher", str(teacher), "--epochs", "1", "--device", "cpu"])
        assert code == 2, bad
        line = one_error_line(capsys.readouterr().err, "student")
        assert str(teacher / "metrics.json") in line
        assert not (out / "metrics.json").exists()


def test_an_os_error_is_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    """A read-only folder or a full disk that only shows when writing: one line, what and
    where (EACCES and EROFS look the same; as root, permission bits do not stop a write)."""
    from benchmark.core import atomic as runinfo

    out = tmp_path / "seed0.npz"
    for code, word in ((errno.ENOSPC, "no space left on device"),
                       (errno.EROFS, "read-only file system"),
                       (errno.EACCES, "permission denied")):
        def refuse(*args, _code=code, **kw):
            raise OSError(_code, os.strerror(_code), str(out))

        monkeypatch.setattr(runinfo.os, "replace", refuse)
        assert main(_labels_args(out)) == 2
        line = one_error_line(capsys.readouterr().err, "labels")
        assert f"{out}: {word}" in line
        assert not out.exists() and list(tmp_path.iterdir()) == []  # no .tmp left


def test_a_writer_that_hides_a_full_disk_is_named_as_one(tmp_path, monkeypatch):
    """torch.save on a full disk raises RuntimeError ("file write failed"): atomic_path says
    what it was when the disk is full, and passes any other error on unchanged."""
    from benchmark.core import atomic as runinfo

    class Full:
        f_bavail, f_frsize = 0, 4096

    def failing_write(tmp):
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    target = tmp_path / "model.pt"
    with pytest.raises(RuntimeError, match="file write failed"):
        with runinfo.atomic_path(target) as tmp:
            failing_write(tmp)
    monkeypatch.setattr(runinfo.os, "statvfs", lambda _: Full)
    with pytest.raises(OSError) as info:
        with runinfo.atomic_path(target) as tmp:
            failing_write(tmp)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_fs(tmp_path):
    """A real 64 KiB tmpfs (root only): a real full disk, then the same folder read-only."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_real_full_disk_and_a_read_only_folder_are_one_line_each(small_fs, tmp_path):
    big = small_fs / "filler"
    with open(big, "wb") as fh:  # leave about 4 KiB: less than the labels file needs
        try:
            fh.write(b"\0" * (60 << 10))
        except OSError:
            pass
    out = small_fs / "seed0.npz"
    args = ["noisykd", *_labels_args(out)]
    res = subprocess.run(args, capture_output=True, text=True)
    assert res.returncode == 2
    line = one_error_line(res.stderr, "labels")
    assert "no space left on device" in line
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"]
    big.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    res = subprocess.run(args, capture_output=True, text=True)
    assert res.returncode == 2
    line = one_error_line(res.stderr, "labels")
    assert "read-only file system" in line or "not writable" in line
    assert list(small_fs.iterdir()) == []


# -- 8. modes and the report before a plan ------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_files_get_the_umask_mode(tmp_path, umask, mode):
    out = tmp_path / "seed0.npz"
    code = (f"import os, sys; os.umask({umask}); from benchmark.cli import main; "
            f"sys.exit(main({_labels_args(out)!r}))")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert stat.S_IMODE(out.stat().st_mode) == mode


def test_report_before_a_plan_says_there_is_none(tmp_path, capsys):
    from tests.helpers import small_runs
    from tests.simulate import write_tree

    write_tree(tmp_path, small_runs(), plan=False)
    assert main(["report", "--results", str(tmp_path), "--no-figures"]) == 0
    err = capsys.readouterr().err
    assert "no plan (expected_runs.json does not exist)" in err
    text = (tmp_path / "tables" / "completeness.md").read_text()
    assert "every planned run finished" not in text
    assert "Not known: there is no plan" in text


# -- found by review: more ways in ---------------------------------------------------------

def test_forget_refuses_a_symlinked_run_reached_through_dot_dot(tmp_path, capsys):
    """seedN/../seedN names a symlinked run folder without ending in the link itself."""
    other, other_ckpt = make_run(tmp_path, RUN.replace("results/default", "results/other"))
    linked = tmp_path / RUN.replace("/kd/", "/kd2/")
    linked.parent.mkdir(parents=True)
    linked.symlink_to(other)
    assert main(["forget", f"{linked}/../seed3"]) == 2
    assert "symlink" in one_error_line(capsys.readouterr().err, "forget")
    assert other.exists() and other_ckpt.exists()


def test_forget_accepts_a_study_that_is_itself_a_symlink(tmp_path):
    """results/big -> /scratch/big: a study kept elsewhere is a study like any other."""
    scratch = tmp_path / "scratch"
    run, ckpt = make_run(scratch)
    (tmp_path / "proj/results").mkdir(parents=True)
    (tmp_path / "proj/results/default").symlink_to(scratch / "results/default")
    assert main(["forget", str(tmp_path / "proj" / RUN)]) == 0
    assert not run.exists() and not ckpt.exists()


def test_forget_refuses_the_folders_of_a_layout_as_studies(tmp_path, capsys):
    """In the layout before studies, results/checkpoints/runs/... is a checkpoint folder,
    not a study named checkpoints."""
    legacy = tmp_path / "results/checkpoints/runs/digits/symmetric_0.40/single-x/kd/seed3"
    legacy.mkdir(parents=True)
    # read as the legacy layout: a run of setup 'single-x' under results/checkpoints/runs is
    # not a run folder of either layout
    assert main(["forget", str(legacy)]) == 2
    one_error_line(capsys.readouterr().err, "forget")
    assert legacy.exists()


def test_forget_refuses_a_checkpoint_path_that_is_a_file(tmp_path, capsys):
    run, ckpt = make_run(tmp_path)
    other, other_ckpt = make_run(tmp_path, RUN.replace("seed3", "seed4"))
    shutil.rmtree(other_ckpt)
    other_ckpt.write_text("x")
    assert main(["forget", str(run), str(other)]) == 2
    assert "not a folder" in one_error_line(capsys.readouterr().err, "forget")
    assert run.exists() and ckpt.exists() and other.exists()


def test_a_lock_that_is_a_fifo_is_one_line_not_a_hang(tmp_path, capsys):
    run, ckpt = make_run(tmp_path)
    os.mkfifo(ckpt / "lock")
    assert main(["forget", str(run)]) == 2
    assert "lock is not a file" in one_error_line(capsys.readouterr().err, "forget")
    assert run.exists()


@pytest.mark.parametrize("study", ["x\n", "runs", "checkpoints", "../x", "x y"])
def test_a_study_name_that_is_not_one_folder_is_refused(study):
    from benchmark.plan import grid
    from benchmark.plan.config_check import explain_file

    name = study.replace("\\n", "\n")
    cfg = {"study": name, "datasets": [{"name": "synthetic"}], "noise": [{"type": "symmetric",
           "rates": [0.2]}], "methods": ["ce"], "seeds": [0]}
    with pytest.raises(grid.UserError, match="study"):
        grid.plan(cfg)
    if name in ("x\n", "../x", "x y"):  # the schema refuses them too
        assert explain_file(cfg, str(REPO_ROOT / "workflows/config/schema.yaml"))


def test_an_integer_too_large_for_a_float_is_one_line(tmp_path, capsys):
    from benchmark.plan import grid
    from benchmark.spec.run_metrics import metrics_problems

    cfg = {"datasets": [{"name": "synthetic", "student": "mlp_8", "teacher": "mlp_8",
                         "train": {"lr": 10**400}}],
           "noise": [{"type": "symmetric", "rates": [0.2]}],
           "methods": [{"name": "kd", "hparams": {"T": 10**400}}], "seeds": [0],
           "setups": ["single"]}
    grid.plan(cfg)  # a finite number (absurd, but a number): no OverflowError
    problems = metrics_problems({"test_acc_last": 10**400}, "m.json", "student")
    assert any("test_acc_last" in p for p in problems)


def _tar_with(tmp_path, extra):
    import hashlib
    import io
    import tarfile

    files = {"config.yaml": b"a: 1\n", "data/pad.json": b"p" * 4096}
    manifest = {"format": "noisykd-bundle", "version": 1, "study": "s",
                "files": {k: {"sha256": hashlib.sha256(v).hexdigest(), "size": len(v)}
                          for k, v in files.items()}, "runs": [], "invocations": []}

    def add(tar, name, data):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))

    path = tmp_path / "crafted.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "manifest.json", json.dumps(manifest).encode())
        offsets = {}
        for k, v in files.items():
            offsets[k] = tar.offset
            add(tar, k, v)
        extra(tar, offsets)
    return path


def test_a_pax_sparse_map_is_refused_before_it_is_read(tmp_path):
    import io
    import tarfile

    def sparse(tar, _):
        n = 2_000_000
        data = b"%d\n" % n + b"0\n" * n
        ti = tarfile.TarInfo("config2.yaml")
        ti.size = len(data)
        ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                          "GNU.sparse.name": "config2.yaml", "GNU.sparse.realsize": "1"}
        tar.addfile(ti, io.BytesIO(data))

    res = subprocess.run(["noisykd", "bundle", "verify", str(_tar_with(tmp_path, sparse))],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "GNU sparse (pax 1.0)" in res.stdout + res.stderr


def test_a_member_that_points_backwards_stops_the_reading(tmp_path):
    import io
    import tarfile

    def backwards(tar, offsets):
        after = tar.offset
        ti = tarfile.TarInfo("data/zz.json")
        ti.size = 0
        ti.pax_headers = {"size": str(offsets["config.yaml"] - (after + 1536))}
        tar.addfile(ti, io.BytesIO(b""))

    res = subprocess.run(["noisykd", "bundle", "verify", str(_tar_with(tmp_path, backwards))],
                         capture_output=True, text=True)
    out = res.stdout + res.stderr
    assert res.returncode == 1 and ("before the previous one ended" in out
                                    or "negative size" in out), out


def test_malformed_invocation_records_are_problems_not_tracebacks(tmp_path):
    import hashlib
    import io
    import tarfile

    for record in ({"wall_time_s": "long"}, {"git": "abc"}, {"host": 3}):
        files = {"config.yaml": b"a: 1\n"}
        manifest = {"format": "noisykd-bundle", "version": 1, "study": "s",
                    "files": {k: {"sha256": hashlib.sha256(v).hexdigest(), "size": len(v)}
                              for k, v in files.items()}, "runs": [],
                    "invocations": [record]}
        path = tmp_path / "inv.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            for name, data in (("manifest.json", json.dumps(manifest).encode()),
                               ("config.yaml", files["config.yaml"])):
                ti = tarfile.TarInfo(name)
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
        res = subprocess.run(["noisykd", "bundle", "verify", str(path)], capture_output=True,
                             text=True)
        out = res.stdout + res.stderr
        assert res.returncode == 1 and "invocations[0]" in out and "Traceback" not in out


def test_a_umask_without_owner_write_still_writes(tmp_path):
    """atomic_path sets the mode after the writer is done (open needs no write bit then)."""
    out = tmp_path / "x.txt"
    code = ("import os; os.umask(0o222); from benchmark.core.atomic import atomic_write_text; "
            f"atomic_write_text({str(out)!r}, 'hi')")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert out.read_text() == "hi" and stat.S_IMODE(out.stat().st_mode) == 0o444
