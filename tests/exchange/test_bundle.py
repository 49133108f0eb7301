"""Results bundles: export, verify (checksums, spec hashes, unsafe members), import.

The study folders here are written by hand (metrics.json in the real schema, labels files of
known bytes); the end-to-end test on real runs (export, import into an empty folder,
`snakemake -n` plans no training, tables byte-identical) is in test_workflow.py.
"""

import hashlib
import io
import json
import os
import subprocess
import tarfile

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.core.hashing import spec_hash
from tests.helpers import bundle_members as _members
from tests.helpers import bundle_metrics as _metrics

_CAPSYS = []


@pytest.fixture(autouse=True)
def _capture(capsys):
    _CAPSYS[:] = [capsys]
    yield
    _CAPSYS.clear()


def cli(*args):
    """``noisykd ...`` in this process: a CompletedProcess with the exit status and output."""
    code = main([str(a) for a in args])
    out = _CAPSYS[0].readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


@pytest.fixture
def study(tmp_path):
    """results/s: 2 datasets x 1 noise x 2 seeds; ce and kd (single setup); teachers."""
    root = tmp_path / "results" / "s"
    plan = []
    for dataset in ("d0", "d1"):
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "data" / f"{dataset}.json").write_text(json.dumps({"dataset": dataset}))
        for seed in (0, 1):
            lb = f"labels {dataset} {seed}".encode()
            lpath = root / f"labels/{dataset}/symmetric_0.20/seed{seed}.npz"
            lpath.parent.mkdir(parents=True, exist_ok=True)
            lpath.write_bytes(lb)
            t = root / f"teachers/{dataset}/symmetric_0.20/mlp_8/seed{seed}"
            t.mkdir(parents=True)
            teacher = _metrics("teacher", dataset, "symmetric_0.20", seed, lb, 0.8)
            (t / "metrics.json").write_text(json.dumps(teacher))
            for name in ("log.csv", "model_last.pt", "model_best.pt"):
                (t / name).write_bytes(f"{name} {dataset} {seed}".encode())
            for setup, method in (("none", "ce"), ("single-mlp_8", "kd")):
                run = f"runs/{dataset}/symmetric_0.20/{setup}/{method}/seed{seed}"
                (root / run).mkdir(parents=True)
                (root / run / "metrics.json").write_text(json.dumps(_metrics(
                    "student", dataset, "symmetric_0.20", seed, lb, 0.6 + seed / 100, method,
                    teacher if method == "kd" else None)))
                (root / run / "log.csv").write_text("epoch,acc\n1,0.5\n")
                plan.append(run)
    (root / "expected_runs.json").write_text(json.dumps(
        {"runs": sorted(plan), "comparisons": {"alm": [], "baselines": ["kd", "ce"]}}))
    (root / "config.yaml").write_text("study: s\nseeds: 2\n")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "big.pt").write_bytes(b"not exported")
    return root


def _rewrite(src, dst, change):
    """Copy a bundle, passing each (name, bytes) through ``change`` (None drops it)."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin:
            data = change(m.name, tin.extractfile(m).read())
            if data is None:
                continue
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def test_export_holds_the_study_and_a_manifest_of_every_file(study, tmp_path):
    out = tmp_path / "s.tar.gz"
    res = cli("bundle", "export", "--results", str(study), "--out", str(out))
    assert res.returncode == 0, res.stderr
    files = _members(out)
    manifest = json.loads(files.pop("manifest.json"))
    assert manifest["format"] == "noisykd-bundle" and manifest["version"] == 1
    assert manifest["study"] == "s"
    expected = {"config.yaml", "expected_runs.json", "data/d0.json", "data/d1.json"}
    expected |= {f"labels/{d}/symmetric_0.20/seed{s}.npz" for d in ("d0", "d1") for s in (0, 1)}
    expected |= {f"teachers/{d}/symmetric_0.20/mlp_8/seed{s}/{n}" for d in ("d0", "d1")
                 for s in (0, 1) for n in ("metrics.json", "log.csv")}
    expected |= {f"runs/{d}/symmetric_0.20/{st}/{m}/seed{s}/{n}" for d in ("d0", "d1")
                 for s in (0, 1) for st, m in (("none", "ce"), ("single-mlp_8", "kd"))
                 for n in ("metrics.json", "log.csv")}
    assert set(files) == expected  # no checkpoints, no models without --with-teachers
    for name, data in files.items():
        entry = manifest["files"][name]
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert data == (study / name).read_bytes()
    runs = {r["path"]: r for r in manifest["runs"]}
    assert len(runs) == 8 + 4
    one = json.loads((study / "runs/d0/symmetric_0.20/none/ce/seed0/metrics.json").read_text())
    assert runs["runs/d0/symmetric_0.20/none/ce/seed0"]["config_hash"] == one["config_hash"]
    assert runs["runs/d0/symmetric_0.20/none/ce/seed0"]["git"] == {"commit": "c0",
                                                                   "dirty": False}
    assert "verified (32 files, 8 runs, 4 teachers" in cli("bundle", "verify", str(out)).stdout


def test_filters_and_teacher_models(study, tmp_path):
    out = tmp_path / "f.tar.gz"
    res = cli("bundle", "export", "--results", str(study), "--out", str(out), "--dataset",
              "d1", "--setup", "single", "--with-teachers")
    assert res.returncode == 0, res.stderr
    files = _members(out)
    runs = sorted({n.rsplit("/", 1)[0] for n in files if n.startswith("runs/")})
    assert runs == [f"runs/d1/symmetric_0.20/{st}/{m}/seed{s}" for st, m in
                    (("none", "ce"), ("single-mlp_8", "kd")) for s in (0, 1)]  # ce kept
    assert "teachers/d1/symmetric_0.20/mlp_8/seed0/model_last.pt" in files
    assert "teachers/d1/symmetric_0.20/mlp_8/seed0/model_best.pt" in files
    assert not any("/d0/" in n or n == "data/d0.json" for n in files)
    plan = json.loads(files["expected_runs.json"])
    assert plan["runs"] == runs  # the plan names exactly the exported runs
    zoo = tmp_path / "zoo.tar.gz"
    assert cli("bundle", "export", "--results", str(study), "--out", str(zoo),
               "--teachers-only").returncode == 0
    names = set(_members(zoo))
    assert not any(n.startswith("runs/") for n in names) and "expected_runs.json" not in names
    assert "teachers/d0/symmetric_0.20/mlp_8/seed1/model_last.pt" in names


def test_import_writes_everything_once_and_in_the_workflow_time_order(study, tmp_path):
    out = tmp_path / "s.tar.gz"
    assert cli("bundle", "export", "--results", str(study), "--out", str(out),
               "--with-teachers").returncode == 0
    dest = tmp_path / "elsewhere" / "s"
    res = cli("bundle", "import", str(out), "--results", str(dest))
    assert res.returncode == 0, res.stderr
    assert "40 files written, 0 already there" in res.stdout
    for name, data in _members(out).items():
        if name != "manifest.json":
            assert (dest / name).read_bytes() == data
    mtime = {k: (dest / p).stat().st_mtime for k, p in (
        ("data", "data/d0.json"), ("labels", "labels/d0/symmetric_0.20/seed0.npz"),
        ("teacher", "teachers/d0/symmetric_0.20/mlp_8/seed0/model_last.pt"),
        ("run", "runs/d0/symmetric_0.20/none/ce/seed0/metrics.json"))}
    assert mtime["data"] < mtime["labels"] < mtime["teacher"] < mtime["run"]
    again = cli("bundle", "import", str(out), "--results", str(dest))
    assert again.returncode == 0 and "0 files written, 40 already there" in again.stdout


def test_import_refuses_to_overwrite_other_content(study, tmp_path):
    out = tmp_path / "s.tar.gz"
    assert cli("bundle", "export", "--results", str(study), "--out", str(out)).returncode == 0
    dest = tmp_path / "d"
    clash = dest / "runs/d0/symmetric_0.20/none/ce/seed1/metrics.json"
    clash.parent.mkdir(parents=True)
    clash.write_text("{}")
    res = cli("bundle", "import", str(out), "--results", str(dest))
    assert res.returncode == 2 and str(clash) in res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert sorted(p for p in dest.rglob("*") if p.is_file()) == [clash]  # nothing written


@pytest.mark.parametrize("how", ["content", "truncated file", "unlisted", "missing",
                                 "spec hash", "labels"])
def test_verify_names_a_tampered_bundle(study, tmp_path, how):
    good = tmp_path / "s.tar.gz"
    assert cli("bundle", "export", "--results", str(study), "--out", str(good)).returncode == 0
    bad = tmp_path / "bad.tar.gz"
    target = "runs/d1/symmetric_0.20/single-mlp_8/kd/seed1/metrics.json"

    def change(name, data):
        manifest = json.loads(_members(good)["manifest.json"])
        if how == "content" and name == target:
            return data.replace(b'"test_acc_last": 0.61', b'"test_acc_last": 0.91')
        if how == "truncated file" and name == "runs/d0/symmetric_0.20/none/ce/seed0/log.csv":
            return data[:5]
        if how == "unlisted" and name == "config.yaml":
            return data  # plus an extra member below
        if how == "missing" and name == target:
            return None
        if how in ("spec hash", "labels") and name in (target, "manifest.json"):
            # a consistent forgery: the metrics edited and the manifest's sha updated
            m = json.loads(_members(good)[target])
            if how == "spec hash":
                m["spec"]["train"]["epochs"] = 200
            else:
                m["spec"]["labels"]["file_sha256"] = "0" * 64
                m["config_hash"] = spec_hash(m["spec"])
                for r in manifest["runs"]:
                    if target.startswith(r["path"]):
                        r["config_hash"] = m["config_hash"]
            forged = json.dumps(m).encode()
            if name == target:
                return forged
            manifest["files"][target] = {"sha256": hashlib.sha256(forged).hexdigest(),
                                         "size": len(forged)}
            return json.dumps(manifest).encode()
        return data

    _rewrite(good, bad, change)
    if how == "unlisted":
        with tarfile.open(bad, "r:gz") as tin:
            members = {m.name: tin.extractfile(m).read() for m in tin}
        with tarfile.open(bad, "w:gz") as tout:
            for name, data in {**members, "runs/extra.txt": b"x"}.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
    res = cli("bundle", "verify", str(bad))
    assert res.returncode == 1, res.stdout + res.stderr
    named = {"content": target, "truncated file": "seed0/log.csv", "unlisted": "runs/extra.txt",
             "missing": target, "spec hash": "is not the hash of its spec",
             "labels": "labels/d1/symmetric_0.20/seed1.npz: not the labels file"}[how]
    assert named in res.stderr
    dest = tmp_path / "d"
    imp = cli("bundle", "import", str(bad), "--results", str(dest))
    assert imp.returncode == 1 and "nothing was written" in imp.stderr and not dest.exists()


def test_a_truncated_archive_is_named(study, tmp_path):
    good = tmp_path / "s.tar.gz"
    assert cli("bundle", "export", "--results", str(study), "--out", str(good)).returncode == 0
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    res = cli("bundle", "verify", str(cut))
    assert res.returncode == 1 and "truncated or corrupt" in res.stderr


@pytest.mark.parametrize("name,kind", [("../evil.txt", "'..' path"),
                                       ("/tmp/evil.txt", "absolute path"),
                                       ("runs/link", "a link or special file")])
def test_import_refuses_unsafe_members(study, tmp_path, name, kind):
    good = tmp_path / "s.tar.gz"
    assert cli("bundle", "export", "--results", str(study), "--out", str(good)).returncode == 0
    bad = tmp_path / "evil.tar.gz"
    members = _members(good)
    with tarfile.open(bad, "w:gz") as tar:
        for n, data in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo(name)
        if kind.startswith("a link"):
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    dest = tmp_path / "deep" / "d"
    res = cli("bundle", "import", str(bad), "--results", str(dest))
    assert res.returncode == 1 and kind in res.stderr, res.stderr
    assert not dest.exists() and not (tmp_path / "deep" / "evil.txt").exists()


def test_bad_input_is_one_line_and_exit_2(study, tmp_path):
    out = tmp_path / "s.tar.gz"
    assert cli("bundle", "export", "--results", str(study), "--out", str(out)).returncode == 0
    other = tmp_path / "v2.tar.gz"
    _rewrite(out, other, lambda n, d: json.dumps({**json.loads(d), "version": 2}).encode()
             if n == "manifest.json" else d)
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (("bundle", "verify", str(tmp_path / "nope.tar.gz")), "does not exist"),
        (("bundle", "verify", str(study / "config.yaml")), "is not a results bundle"),
        (("bundle", "import", str(other), "--results", str(tmp_path / "x")),
         "format version 2; this noisykd reads version 1"),
        (("bundle", "export", "--results", str(empty), "--out", str(tmp_path / "e.tar.gz")),
         "is not a study folder"),
        (("bundle", "export", "--results", str(study), "--out", str(tmp_path / "e.zip")),
         "a bundle is a .tar.gz file"),
    ]
    for args, message in cases:
        res = cli(*args)
        assert res.returncode == 2 and message in res.stderr, (args, res.stderr)
        assert len(res.stderr.splitlines()) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "e.tar.gz").exists()
    (study / "config.yaml").unlink()
    res = cli("bundle", "export", "--results", str(study), "--out", str(tmp_path / "n.tar.gz"))
    assert res.returncode == 2 and "config.yaml does not exist" in res.stderr
    assert not (tmp_path / "n.tar.gz").exists()


def test_method_and_noise_filters(study, tmp_path):
    out = tmp_path / "kd.tar.gz"
    assert cli("bundle", "export", "--results", study, "--out", out, "--method",
               "kd").returncode == 0
    runs = {n.split("/")[4] for n in _members(out) if n.startswith("runs/")}
    assert runs == {"kd"}  # ce is kept under a setup filter, not under a method filter
    res = cli("bundle", "export", "--results", study, "--out", tmp_path / "n.tar.gz",
              "--noise", "symmetric")  # noises match exactly: nothing
    assert res.returncode == 2 and "nothing to export" in res.stderr


def _with_extra(good, bad, extra):
    members = _members(good)
    with tarfile.open(bad, "w:gz") as tar:
        for name, data in [*members.items(), *extra]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_duplicate_members_and_a_wrong_run_record_are_named(study, tmp_path):
    good = tmp_path / "s.tar.gz"
    assert cli("bundle", "export", "--results", study, "--out", good).returncode == 0
    log = "runs/d0/symmetric_0.20/none/ce/seed0/log.csv"
    twice = tmp_path / "twice.tar.gz"
    _with_extra(good, twice, [(log, _members(good)[log])])
    res = cli("bundle", "verify", twice)
    assert res.returncode == 1 and f"{log}: in the archive twice" in res.stderr
    record = tmp_path / "record.tar.gz"

    def change(name, data):
        if name != "manifest.json":
            return data
        m = json.loads(data)
        m["runs"][0]["config_hash"] = "0" * 12
        return json.dumps(m).encode()

    _rewrite(good, record, change)
    res = cli("bundle", "verify", record)
    assert res.returncode == 1 and "the manifest's run record does not match" in res.stderr


@pytest.mark.parametrize("obstacle", ["parent is a file", "destination is a link"])
def test_import_writes_nothing_when_a_path_cannot_be_written(study, tmp_path, obstacle):
    good = tmp_path / "s.tar.gz"
    assert cli("bundle", "export", "--results", study, "--out", good).returncode == 0
    dest = tmp_path / "d"
    if obstacle == "parent is a file":
        dest.mkdir()
        (dest / "labels").write_text("a file where a folder goes")
    else:
        target = dest / "runs/d1/symmetric_0.20/none/ce/seed1/log.csv"
        target.parent.mkdir(parents=True)
        outside = tmp_path / "outside.csv"
        outside.write_text("epoch,acc\n1,0.5\n")  # same content: still refused
        target.symlink_to(outside)
    before = sorted(p for p in dest.rglob("*"))
    res = cli("bundle", "import", good, "--results", dest)
    assert res.returncode == 2 and "nothing was written" in res.stderr
    assert sorted(p for p in dest.rglob("*")) == before


def test_a_later_teacher_import_keeps_imported_students_newer(study, tmp_path):
    """Students imported first, their teachers' models later (the README's two bundles):
    every student file ends newer than every teacher and labels file, so Snakemake retrains
    nothing; a student whose teacher is not the one present is left alone."""
    runs_only = tmp_path / "runs.tar.gz"
    zoo = tmp_path / "zoo.tar.gz"
    assert cli("bundle", "export", "--results", study, "--out", runs_only).returncode == 0
    assert cli("bundle", "export", "--results", study, "--out", zoo,
               "--teachers-only").returncode == 0
    dest = tmp_path / "d"
    assert cli("bundle", "import", runs_only, "--results", dest).returncode == 0
    assert cli("bundle", "import", zoo, "--results", dest).returncode == 0
    newest_input = max(p.stat().st_mtime for p in [*dest.glob("teachers/**/*"),
                                                   *dest.glob("labels/**/*")] if p.is_file())
    students = [p for p in dest.glob("runs/**/*") if p.is_file()]
    assert min(p.stat().st_mtime for p in students) > newest_input
    # a run trained against another teacher is not made to look up to date
    odd = dest / "runs/d0/symmetric_0.20/single-mlp_8/kd/seed0/metrics.json"
    m = json.loads(odd.read_text())
    m["spec"]["teachers"][0]["config_hash"] = "elsewhere"
    odd.write_text(json.dumps(m))
    os.utime(odd, (1_000_000, 1_000_000))
    from benchmark.exchange.bundle import restamp

    restamp(dest)
    assert odd.stat().st_mtime == 1_000_000


def test_invocation_log_entries_and_the_manifest(tmp_path):
    """The study's invocation log: command without the program's folder, wall time from the
    clock values given, appended (never rewritten away); an export carries it."""
    from benchmark.exchange import studylog

    e1 = studylog.entry(["/usr/bin/snakemake", "--cores", "2", "--configfile", "a b.yaml"],
                        1000.0, 1090.5, True, 8, 10, 8)
    assert e1["command"] == "snakemake --cores 2 --configfile 'a b.yaml'"
    assert e1["wall_time_s"] == 90.5 and e1["started"] == "1970-01-01T00:16:40+00:00"
    assert (e1["runs_finished"], e1["runs_planned"], e1["trained_now"]) == (8, 10, 8)
    assert set(e1["versions"]) >= {"python", "noisykd", "snakemake", "torch"}
    e2 = studylog.entry(["snakemake", "tables"], 2000.0, 2001.0, True, 10, 10, 0)
    studylog.append(tmp_path, e1)
    studylog.append(tmp_path, e2)
    log = studylog.read_log(tmp_path)
    assert log == [e1, e2]
    assert studylog.training_invocations(log) == [e1]
    (tmp_path / studylog.LOG_NAME).write_text("{broken")
    assert studylog.read_log(tmp_path) == []


def test_alpha_summary_bundles_replace_the_weights_and_carry_the_invocation_log(study,
                                                                                 tmp_path):
    """--alpha summary: an ALM run's alpha.npz becomes the alpha_summary.json computed from
    it (the same summary the report computes); the manifest carries the invocation log and
    verify prints the training invocations."""
    from benchmark.analysis import alpha_summary
    from benchmark.exchange import studylog

    run = study / "runs/d0/symmetric_0.20/single-mlp_8/almkd/seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text((study / "runs/d0/symmetric_0.20/single-mlp_8/kd/seed0/"
                                       "metrics.json").read_text())
    (run / "log.csv").write_text("epoch,acc\n1,0.5\n")
    w = np.array([[[0.3, 0.7], [0.6, 0.4], [0.5, 0.5]]])
    np.savez(run / "alpha.npz", weights=w, refresh_epoch=np.array([1]),
             clean_labels=np.array([0, 1, 2]), noisy_labels=np.array([0, 2, 2]))
    studylog.append(study, studylog.entry(["snakemake", "--cores", "2"], 0.0, 600.0, True,
                                          9, 9, 9))
    full, summ = tmp_path / "full.tar.gz", tmp_path / "summ.tar.gz"
    assert cli("bundle", "export", "--results", str(study), "--out", str(full)).returncode == 0
    res = cli("bundle", "export", "--results", str(study), "--out", str(summ),
              "--alpha", "summary")
    assert res.returncode == 0, res.stderr
    a, b = _members(full), _members(summ)
    rel = "runs/d0/symmetric_0.20/single-mlp_8/almkd/seed0"
    assert f"{rel}/alpha.npz" in a and f"{rel}/alpha_summary.json" not in a
    assert f"{rel}/alpha.npz" not in b
    assert json.loads(b[f"{rel}/alpha_summary.json"]) == alpha_summary.summarise_file(
        run / "alpha.npz")
    manifest = json.loads(b["manifest.json"])
    assert manifest["alpha"] == "summary"
    assert [e["command"] for e in manifest["invocations"]] == ["snakemake --cores 2"]
    out = cli("bundle", "verify", str(summ)).stdout
    assert "trained 9 runs in 10.0 min" in out and "snakemake --cores 2" in out
    dest = tmp_path / "imported"
    assert cli("bundle", "import", str(summ), "--results", str(dest)).returncode == 0
    assert alpha_summary.run_summary(dest / rel) == alpha_summary.run_summary(run)
