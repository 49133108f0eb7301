"""Hostile input (issue 24, parts 3-5): bundles crafted to exhaust memory or disk, to plant
files, to fail half-way through an import, and numbers no reader can use.

Every bundle here is built in the test with tarfile from a small hand-written study
(tests/exchange/test_bundle.py's metrics.json in the real schema). A forgery is consistent where it
matters: its manifest lists the planted file with the right sha256 and size, so that only
the defence under test can refuse it.
"""

import errno
import hashlib
import io
import json
import subprocess
import tarfile
import tracemalloc

import numpy as np
import pytest

from benchmark.analysis import alpha_summary
from benchmark.cli import main
from benchmark.core.errors import UserError
from benchmark.exchange import bundle
from benchmark.exchange.bundle import importing, verifying
from benchmark.spec import run_metrics
from tests.helpers import bundle_members as _members
from tests.helpers import bundle_metrics as _metrics
from tests.simulate import simulate_runs, write_tree

RUN = "runs/d0/symmetric_0.20/none/ce/seed0"
KD = "runs/d0/symmetric_0.20/single-mlp_8/kd/seed1"
TEACHER = "teachers/d0/symmetric_0.20/mlp_8/seed0"


@pytest.fixture
def cli(capsys):
    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)
    return run


@pytest.fixture
def study(tmp_path):
    """results/s: 1 dataset x 2 seeds; ce and kd runs, teachers with model files."""
    root = tmp_path / "results" / "s"
    plan = []
    (root / "data").mkdir(parents=True)
    (root / "data" / "d0.json").write_text("{}")
    for seed in (0, 1):
        lb = f"labels d0 {seed}".encode()
        lpath = root / f"labels/d0/symmetric_0.20/seed{seed}.npz"
        lpath.parent.mkdir(parents=True, exist_ok=True)
        lpath.write_bytes(lb)
        t = root / f"teachers/d0/symmetric_0.20/mlp_8/seed{seed}"
        t.mkdir(parents=True)
        teacher = _metrics("teacher", "d0", "symmetric_0.20", seed, lb, 0.8)
        (t / "metrics.json").write_text(json.dumps(teacher))
        for name in ("log.csv", "model_last.pt", "model_best.pt"):
            (t / name).write_bytes(f"{name} {seed}".encode())
        for setup, method in (("none", "ce"), ("single-mlp_8", "kd")):
            run = f"runs/d0/symmetric_0.20/{setup}/{method}/seed{seed}"
            (root / run).mkdir(parents=True)
            (root / run / "metrics.json").write_text(json.dumps(_metrics(
                "student", "d0", "symmetric_0.20", seed, lb, 0.6 + seed / 100, method,
                teacher if method == "kd" else None)))
            (root / run / "log.csv").write_text("epoch,acc\n1,0.5\n")
            plan.append(run)
    (root / "expected_runs.json").write_text(json.dumps(
        {"runs": sorted(plan), "comparisons": {"alm": [], "baselines": ["kd", "ce"]}}))
    (root / "config.yaml").write_text("study: s\n")
    return root


@pytest.fixture
def good(study, tmp_path, cli):
    out = tmp_path / "good.tar.gz"
    assert cli("bundle", "export", "--results", study, "--out", out).returncode == 0
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add(tar, name, data=b"", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for k, v in attrs.items():
        setattr(info, k, v)
    tar.addfile(info, io.BytesIO(data))


def _forge(good, bad, files=(), edit=None, extra=(), fmt=tarfile.PAX_FORMAT):
    """Copy bundle ``good`` to ``bad``: ``files`` (name, bytes) replace or add members and
    are listed in the manifest with their true sha256 and size (a consistent forgery);
    ``edit(manifest)`` changes the manifest last; ``extra``: (name, bytes or a TarInfo
    attribute dict) appended unlisted."""
    members = _members(good)
    manifest = json.loads(members.pop("manifest.json"))
    for name, data in files:
        members[name] = data
        manifest["files"][name] = {"sha256": _sha(data), "size": len(data)}
    if edit:
        edit(manifest)
    with tarfile.open(bad, "w:gz", format=fmt, compresslevel=1) as tar:
        _add(tar, "manifest.json", json.dumps(manifest).encode())
        for name, data in members.items():
            _add(tar, name, data)
        for name, data in extra:
            if isinstance(data, dict):
                _add(tar, name, data.pop("data", b""), **data)
            else:
                _add(tar, name, data)
    return bad


def _tree(folder):
    """Every path under ``folder`` with its bytes and modification time (folders: None)."""
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            if p.is_file() else None for p in sorted(folder.rglob("*"))}


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(importing._Staging.PREFIX)]


def _peak(fn, *args):
    """(result or exception, peak bytes Python allocated while ``fn`` ran)."""
    tracemalloc.start()
    try:
        try:
            result = fn(*args)
        except (bundle.BundleInvalid, UserError) as exc:
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---- sizes: streamed members, limits, headers --------------------------------------------


def test_a_large_member_is_streamed_never_held_whole(good, tmp_path):
    """A 48 MiB member: verify and import hash (and write) it in pieces; the old reader
    held it whole (a 200 MB member peaked at 277 MB, measured before streaming)."""
    big = b"\0" * (48 << 20)
    bad = _forge(good, tmp_path / "big.tar.gz", files=[(f"{RUN}/log.csv", big)])
    result, peak = _peak(bundle.verify, bad)
    assert result["files"] == 17 and peak < 8 << 20, peak
    dest = tmp_path / "imported"
    result, peak = _peak(bundle.import_bundle, bad, dest)
    assert result["written"] == 17 and peak < 8 << 20, peak
    assert (dest / RUN / "log.csv").read_bytes() == big


def test_member_and_total_limits_and_their_flags(good, tmp_path, cli):
    data = b"x" * (3 << 20)
    bad = _forge(good, tmp_path / "3m.tar.gz", files=[(f"{RUN}/log.csv", data)])
    res = cli("bundle", "verify", bad, "--max-member-size", "1M")
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1
    assert f"{RUN}/log.csv is 3 MiB, over the per-member limit of 1 MiB" in res.stderr
    assert "--max-member-size" in res.stderr
    res = cli("bundle", "verify", bad, "--max-total-size", "2M")
    assert res.returncode == 2 and "over the limit of 2 MiB" in res.stderr
    assert "--max-total-size" in res.stderr and len(res.stderr.splitlines()) == 1
    dest = tmp_path / "d"
    res = cli("bundle", "import", bad, "--results", dest, "--max-member-size", "1M")
    assert res.returncode == 2 and not dest.exists() and _leftovers(tmp_path) == []
    assert cli("bundle", "verify", bad, "--max-member-size", "4M").returncode == 0
    assert cli("bundle", "verify", bad).returncode == 0  # the defaults hold it
    res = cli("bundle", "verify", bad, "--max-member-size", "lots")
    assert res.returncode == 2 and "--max-member-size 'lots'" in res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert bundle.parse_size("2G", "f") == 2 << 30 and bundle.parse_size("1.5KiB", "f") == 1536
    assert (bundle.Limits().member, bundle.Limits().total) == (2 << 30, 16 << 30)


def test_an_oversized_member_listed_with_a_small_size_is_refused_unread(good, tmp_path, cli,
                                                                       monkeypatch):
    """The manifest lies (10 bytes) about a 3 MiB member: named, never read; unlisted
    members beyond the total limit stop the reading."""
    read = []
    real = verifying._read_member
    monkeypatch.setattr(verifying, "_read_member", lambda tar, m, *a: read.append(m.name)
                        or real(tar, m, *a))

    def lie(manifest):
        manifest["files"][f"{RUN}/log.csv"]["size"] = 10

    bad = _forge(good, tmp_path / "lie.tar.gz", files=[(f"{RUN}/log.csv", b"y" * (3 << 20))],
                 edit=lie)
    res = cli("bundle", "verify", bad, "--max-member-size", "1M")
    assert res.returncode == 1
    assert f"{RUN}/log.csv: {3 << 20} bytes, the manifest says 10" in res.stderr
    assert f"{RUN}/log.csv" not in read and len(read) == 16
    extra = _forge(good, tmp_path / "extra.tar.gz",
                   extra=[(f"runs/x{i}.bin", b"z" * (1 << 20)) for i in range(3)])
    read.clear()
    res = cli("bundle", "verify", extra, "--max-total-size", "2M")
    assert res.returncode == 1 and "add up to more than 2 MiB; stopped reading" in res.stderr
    many = _forge(good, tmp_path / "many.tar.gz",
                  extra=[(f"runs/e{i}", b"") for i in range(bundle.MAX_EXTRA_MEMBERS + 5)])
    res = cli("bundle", "verify", many)
    assert res.returncode == 1 and "more than 1000 members beyond the 17 listed" in res.stderr


@pytest.mark.parametrize("how", ["pax", "gnu longname", "gnu longlink", "pax chain"])
def test_huge_pax_and_gnu_headers_are_refused_from_their_header_block(good, tmp_path, cli, how):
    """tarfile reads a pax or GNU long-name header whole while iterating (a 200 MB pax
    header peaked at 693 MB, measured before the check): the 512-byte header block is
    checked first."""
    bad = tmp_path / "hdr.tar.gz"
    huge = 24 << 20
    if how == "pax":
        extra = [("runs/p", {"pax_headers": {"comment": "c" * huge}})]
        _forge(good, bad, extra=extra)
    elif how == "gnu longname":
        _forge(good, bad, extra=[("runs/" + "n" * huge, b"")], fmt=tarfile.GNU_FORMAT)
    elif how == "gnu longlink":
        _forge(good, bad, extra=[("runs/l", {"type": tarfile.SYMTYPE, "linkname": "k" * huge})],
               fmt=tarfile.GNU_FORMAT)
    else:  # nine small pax headers before one member: tarfile recurses through each
        _forge(good, bad)
        raw = bytearray(_ungz(bad)[:_end(bad)])  # less the end-of-archive blocks
        for i in range(9):
            h = tarfile.TarInfo(f"h{i}")
            h.type, h.size = tarfile.XHDTYPE, 0
            raw += h.tobuf(tarfile.USTAR_FORMAT)
        raw += tarfile.TarInfo("runs/q").tobuf(tarfile.USTAR_FORMAT) + bytes(1024)
        _gz(bad, bytes(raw))
    result, peak = _peak(bundle.verify, bad)
    assert isinstance(result, bundle.BundleInvalid)
    assert peak < 8 << 20, peak
    res = cli("bundle", "verify", bad)
    assert res.returncode == 1, res.stderr
    kind = {"pax": "a pax header of 24 MiB", "gnu longname": "a GNU long-name header",
            "gnu longlink": "a GNU long-link header", "pax chain": "a pax header"}[how]
    assert kind in res.stderr and "refused unread" in res.stderr
    assert max(len(line) for line in res.stderr.splitlines()) < 300


def _end(path):
    """Where the last member of a tar.gz ends (its end-of-archive blocks begin)."""
    with tarfile.open(path) as tar:
        last = tar.getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


def _ungz(path):
    import gzip

    return gzip.decompress(path.read_bytes())


def _gz(path, raw):
    import gzip

    path.write_bytes(gzip.compress(raw, 1))


# ---- kinds: only the files the format defines --------------------------------------------


@pytest.mark.parametrize("name,why", [
    ("checkpoints/d0/symmetric_0.20/none/ce/seed0/checkpoint.pt", "not a file a bundle holds"),
    (f"{TEACHER}/model_last.pt", "exported without --with-teachers"),
    (f"{RUN}/model_last.pt", "not a file a bundle holds"),
    (f"{RUN}/checkpoint.pt", "not a file a bundle holds"),
    ("runs/d0/notes.txt", "not a file a bundle holds"),
    (".bashrc", "not a file a bundle holds"),
])
def test_only_the_kinds_of_files_the_format_defines_are_accepted(good, tmp_path, cli, name,
                                                                  why):
    bad = _forge(good, tmp_path / "planted.tar.gz", files=[(name, b"\x80\x04pickle")])
    res = cli("bundle", "verify", bad)
    assert res.returncode == 1 and f"{name}: listed in the manifest, " in res.stderr
    assert why in res.stderr
    dest = tmp_path / "d"
    res = cli("bundle", "import", bad, "--results", dest)
    assert res.returncode == 1 and "nothing was written" in res.stderr
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_teacher_models_pass_when_the_manifest_declares_them(study, tmp_path, cli):
    out = tmp_path / "t.tar.gz"
    assert cli("bundle", "export", "--results", study, "--out", out,
               "--with-teachers").returncode == 0
    assert cli("bundle", "verify", out).returncode == 0

    def undeclare(manifest):
        manifest["with_teachers"] = False

    bad = _forge(out, tmp_path / "u.tar.gz", edit=undeclare)
    res = cli("bundle", "verify", bad)
    assert res.returncode == 1 and "without --with-teachers" in res.stderr
    summary = _forge(out, tmp_path / "s.tar.gz", files=[(f"{KD}/alpha.npz", b"npz")],
                     edit=lambda m: m.update(alpha="summary"))
    res = cli("bundle", "verify", summary)
    assert res.returncode == 1 and "an alpha.npz, but the manifest says alpha summary" in res.stderr


def test_a_path_component_of_300_characters(good, study, tmp_path, cli, monkeypatch):
    """Refused by verify (names longer than a file system holds); and were it not, the
    file system's refusal mid-import is one line and leaves the folder as it was."""
    long = f"runs/d0/symmetric_0.20/none/{'m' * 300}/seed0/log.csv"
    bad = _forge(good, tmp_path / "long.tar.gz", files=[(long, b"epoch\n")])
    res = cli("bundle", "verify", bad)
    assert res.returncode == 1 and "a path component longer than 255 bytes" in res.stderr
    dest = tmp_path / "d"
    assert cli("bundle", "import", good, "--results", dest).returncode == 0
    (dest / RUN / "log.csv").unlink()  # one file for the next import to write
    before = _tree(dest)
    res = cli("bundle", "import", bad, "--results", dest)
    assert res.returncode == 1 and _tree(dest) == before
    monkeypatch.setattr(verifying, "NAME_MAX", 4096)  # the second line of defence
    res = cli("bundle", "import", bad, "--results", dest)
    assert res.returncode == 2 and "File name too long; nothing was written" in res.stderr
    assert len(res.stderr.splitlines()) == 1
    assert _tree(dest) == before and _leftovers(tmp_path) == []


# ---- all or nothing ------------------------------------------------------------------------


def _failing_after(n, exc):
    calls = []

    def write(fh, data):
        calls.append(1)
        if len(calls) > n:
            raise exc
        fh.write(data)
    return write


@pytest.mark.parametrize("target", ["new folder", "partly filled folder"])
def test_a_full_disk_during_import_leaves_the_target_as_it_was(study, tmp_path, cli,
                                                               monkeypatch, target):
    full = tmp_path / "full.tar.gz"
    assert cli("bundle", "export", "--results", study, "--out", full,
               "--with-teachers").returncode == 0
    dest = tmp_path / "deep" / "d"
    if target == "partly filled folder":
        zoo = tmp_path / "zoo.tar.gz"
        assert cli("bundle", "export", "--results", study, "--out", zoo,
                   "--teachers-only").returncode == 0
        assert cli("bundle", "import", zoo, "--results", dest).returncode == 0
    before = _tree(dest)
    monkeypatch.setattr(verifying, "_write", _failing_after(
        4, OSError(errno.ENOSPC, "No space left on device")))
    res = cli("bundle", "import", full, "--results", dest)
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert "no space left on device writing" in res.stderr
    assert "nothing was written" in res.stderr
    assert _tree(dest) == before
    if target == "new folder":
        assert not (tmp_path / "deep").exists()  # nor the folder above it, made for it
    else:
        assert _leftovers(dest.parent) == []
    monkeypatch.undo()
    assert cli("bundle", "import", full, "--results", dest).returncode == 0  # then it works


def test_ctrl_c_and_a_failed_move_leave_the_target_as_it_was(study, tmp_path, cli,
                                                             monkeypatch):
    full = tmp_path / "full.tar.gz"
    zoo = tmp_path / "zoo.tar.gz"
    assert cli("bundle", "export", "--results", study, "--out", full,
               "--with-teachers").returncode == 0
    assert cli("bundle", "export", "--results", study, "--out", zoo,
               "--teachers-only").returncode == 0
    dest = tmp_path / "d"
    assert cli("bundle", "import", zoo, "--results", dest).returncode == 0
    before = _tree(dest)
    with monkeypatch.context() as m:
        m.setattr(verifying, "_write", _failing_after(3, KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            bundle.import_bundle(full, dest)
    assert _tree(dest) == before and _leftovers(tmp_path) == []
    real, calls = importing._rename, []

    def rename(a, b):  # the third move into place fails (the undo's moves do not)
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.EIO, "Input/output error", str(b))
        real(a, b)

    with monkeypatch.context() as m:
        m.setattr(importing, "_rename", rename)
        res = cli("bundle", "import", full, "--results", dest)
    assert res.returncode == 2 and "Input/output error; nothing was written" in res.stderr
    assert _tree(dest) == before and _leftovers(tmp_path) == []
    res = cli("bundle", "import", full, "--results", dest)
    assert res.returncode == 0 and "9 files written, 12 already there" in res.stdout


# ---- numbers: the declared schema of metrics.json and alpha_summary.json -----------------


@pytest.mark.parametrize("value,why", [
    (float("nan"), "nan, not a finite number"), (float("inf"), "inf, not a finite number"),
    ("missing", "missing"), ("0.9", "'0.9' (a string), not a number"),
    (True, "True (a boolean), not a number"), (1.5, "1.5, not an accuracy in [0, 1]"),
    (None, "None, not a number")])
def test_verify_refuses_accuracies_no_reader_can_use(good, tmp_path, cli, value, why):
    target = f"{KD}/metrics.json"
    m = json.loads(_members(good)[target])
    if value == "missing":
        del m["test_acc_best_val"]
    else:
        m["test_acc_best_val"] = value
    bad = _forge(good, tmp_path / "nan.tar.gz", files=[(target, json.dumps(m).encode())])
    res = cli("bundle", "verify", bad)
    assert res.returncode == 1
    assert f"{target}: test_acc_best_val {'is ' if value != 'missing' else ''}{why}" in res.stderr
    dest = tmp_path / "d"
    res = cli("bundle", "import", bad, "--results", dest)
    assert res.returncode == 1 and not dest.exists()


def test_verify_refuses_a_teacher_metrics_of_the_wrong_kind_and_an_epoch_count(good, tmp_path,
                                                                              cli):
    target = f"{TEACHER}/metrics.json"
    m = json.loads(_members(good)[target])
    m["kind"], m["epochs"] = "student", "2"
    bad = _forge(good, tmp_path / "k.tar.gz", files=[(target, json.dumps(m).encode())])
    res = cli("bundle", "verify", bad)
    assert res.returncode == 1 and f"{target}: kind is 'student', not 'teacher'" in res.stderr
    assert f"{target}: epochs is '2', not a whole number" in res.stderr


def _summary() -> dict:
    w = np.array([[[0.3, 0.7], [0.6, 0.4], [0.5, 0.5]]])
    return alpha_summary.summarise({"weights": w, "refresh_epoch": np.array([1]),
                                    "clean_labels": np.array([0, 1, 2]),
                                    "noisy_labels": np.array([0, 2, 2])})


BAD_SUMMARIES = [
    ("not json", lambda s: None, "unreadable JSON"),
    ("string share", lambda s: s.update(share_clean=["0.5"]),
     "share_clean.0 is '0.5' (a string), not a number"),
    ("nan share", lambda s: s.update(share_noisy=[float("nan")]),
     "share_noisy.0 is nan, not a finite number"),
    ("length", lambda s: s.update(share_clean=[0.1, 0.2]), "share_clean has 2 entries, not 1"),
    ("missing key", lambda s: s.pop("n_noisy"), "n_noisy missing"),
    ("format", lambda s: s.update(format="x"), "format 'x' version 1, not noisykd-alpha-summary"),
    ("quantiles", lambda s: s.update(quantiles_last=[]), "quantiles_last is [], not an object"),
]


@pytest.mark.parametrize("how,change,why", BAD_SUMMARIES, ids=[b[0] for b in BAD_SUMMARIES])
def test_verify_refuses_a_malformed_alpha_summary(good, tmp_path, cli, how, change, why):
    s = _summary()
    assert run_metrics.alpha_summary_problems(s, "x") == []
    change(s)
    data = b"{not json" if how == "not json" else json.dumps(s).encode()
    target = f"{KD}/alpha_summary.json"
    bad = _forge(good, tmp_path / "a.tar.gz", files=[(target, data)])
    res = cli("bundle", "verify", bad)
    assert res.returncode == 1 and f"{target}: {why}" in res.stderr, res.stderr


def test_the_schema_accepts_every_file_of_the_committed_reference_bundle():
    from pathlib import Path

    ref = Path(__file__).resolve().parents[2] / "reference" / "reference.tar.gz"
    n = 0
    with tarfile.open(ref) as tar:
        for m in tar:
            if m.name.endswith(("/metrics.json", "/alpha_summary.json")):
                d = json.loads(tar.extractfile(m).read())
                kind = "student" if m.name.startswith("runs/") else "teacher"
                assert (run_metrics.metrics_problems(d, m.name, kind)
                        if m.name.endswith("metrics.json")
                        else run_metrics.alpha_summary_problems(d, m.name)) == [], m.name
                n += 1
    assert n > 1000
    assert (run_metrics.SUMMARY_FORMAT, run_metrics.SUMMARY_VERSION,
            run_metrics.SUMMARY_BINS) == (alpha_summary.FORMAT, alpha_summary.VERSION,
                                          alpha_summary.BINS)


# ---- report and compare read only what they can use -------------------------------------


def _small_study(folder, seed=0):
    runs = simulate_runs(np.random.default_rng(seed), datasets=("d0",),
                         noises=("symmetric_0.20",))
    write_tree(folder, runs)
    almkd = sorted(folder.glob("runs/*/*/*/almkd/seed0"))[0]
    (almkd / alpha_summary.SUMMARY_NAME).write_text(json.dumps(_summary()))
    return runs


def _set(path, key, value):
    m = json.loads(path.read_text())
    if value == "missing":
        m.pop(key)
    else:
        m[key] = value
    path.write_text(json.dumps(m))


@pytest.mark.parametrize("how", ["nan", "string", "bool", "missing", "alpha summary",
                                 "teacher"])
def test_report_refuses_a_run_it_cannot_read_before_rewriting_any_table(tmp_path, cli, how):
    _small_study(tmp_path)
    kd = sorted(tmp_path.glob("runs/*/*/*/kd/seed3/metrics.json"))[0]
    teacher = tmp_path / "teachers/d0/symmetric_0.20/mlp_8/seed0/metrics.json"
    if how == "teacher":
        teacher.parent.mkdir(parents=True)
        teacher.write_text(json.dumps(json.loads(kd.read_text()) | {"kind": "teacher"}))
    assert cli("report", "--results", tmp_path, "--no-figures").returncode == 0
    tables = _tree(tmp_path / "tables")
    assert len(tables) > 12
    if how == "alpha summary":
        target = sorted(tmp_path.glob("runs/*/*/*/almkd/seed0"))[0] / "alpha_summary.json"
        s = json.loads(target.read_text())
        s["share_clean"] = ["0.5"]
        target.write_text(json.dumps(s))
        key = "share_clean.0"
    elif how == "teacher":
        target, key = teacher, "test_acc_last"
        _set(target, key, float("inf"))
    else:
        target, key = kd, "test_acc_best_val"
        _set(target, key, {"nan": float("nan"), "string": "0.9", "bool": True,
                           "missing": "missing"}[how])
    res = cli("report", "--results", tmp_path, "--no-figures")
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and f"{target}: {key}" in errors[0]
    assert _tree(tmp_path / "tables") == tables  # not one table rewritten


@pytest.mark.parametrize("value", [float("nan"), float("-inf"), True, "0.61"])
def test_compare_errs_on_a_number_it_cannot_use(tmp_path, cli, value):
    """NaN made every statistic of its cell NaN: `inconclusive`, and --fail-on differs
    exited 0."""
    runs = simulate_runs(np.random.default_rng(3), datasets=("d0",), noises=("symmetric_0.20",))
    write_tree(tmp_path / "ref", runs)
    write_tree(tmp_path / "new", runs)
    target = sorted((tmp_path / "new").glob("runs/*/*/*/kd/seed2/metrics.json"))[0]
    _set(target, "test_acc_last", value)
    res = cli("compare", tmp_path / "ref", tmp_path / "new", "--fail-on", "differs")
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert f"{target}: test_acc_last is" in res.stderr
