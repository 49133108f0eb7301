"""Results bundles: one ``.tar.gz`` file that carries a study (``noisykd bundle ...``).

A bundle holds, relative to the study folder (``results/<study>/``): ``config.yaml`` and
``expected_runs.json`` (the workflow writes both), ``data/<dataset>.json`` (the prepare-data
records), the labels files, every student run's ``metrics.json``, ``log.csv`` and, for ALM
runs, ``alpha.npz`` (``--alpha summary``: ``alpha_summary.json`` instead, the per-run
summary the tables and figures need, benchmark/alpha_summary.py), every teacher's
``metrics.json`` and ``log.csv`` (the tables show teacher accuracy); ``--with-teachers``
adds the teachers' model files (``model_last.pt``, ``model_best.pt``: all of a teacher's
declared outputs, so that Snakemake plans no teacher training after an import).
``manifest.json`` comes first and lists every file with its sha256 and size, every run with
its spec hash, code revision and environment, and the study's invocation log (the commands
that ran it, with code revision, versions and wall time: benchmark/studylog.py).
Checkpoints, logs, tables and figures stay out: tables and figures are rebuilt from the
runs.

``verify`` checks the member types and names, every checksum and size, that nothing is
listed twice or unlisted, that every metrics.json's ``config_hash`` is the hash of its spec,
and that each run's labels file in the bundle is the one its spec names (sha256).
``import`` verifies first, then refuses (before writing anything) to overwrite a file with
other content; it copies bytes only (never unpickles; model files are later loaded with
``weights_only=True``) and sets modification times in the workflow's order (data < labels <
teachers < runs, forward only, for everything consistent with what the folder holds), so
that Snakemake, which has no metadata for imported files, sees every output newer than its
inputs and plans no training.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import alpha_summary, studylog
from .errors import UserError
from .grid import labels_path
from .runinfo import atomic_path, file_sha256, spec_hash
from .scores import base_method

FORMAT = "noisykd-bundle"
VERSION = 1
MANIFEST = "manifest.json"
RUN_FILES = ("metrics.json", "log.csv", "alpha.npz", alpha_summary.SUMMARY_NAME)
ALPHA_MODES = ("full", "summary")
TEACHER_FILES = ("metrics.json", "log.csv")
TEACHER_MODELS = ("model_last.pt", "model_best.pt")


class BundleInvalid(Exception):
    """A bundle that fails verification: tampered, truncated or unsafe (exit status 1)."""


@dataclass(frozen=True)
class Filters:
    datasets: tuple = ()
    noises: tuple = ()
    setups: tuple = ()
    methods: tuple = ()

    def keep(self, parts: tuple[str, ...]) -> bool:
        """``parts``: (kind folder, dataset, noise, setup, method, ...) of a run, a teacher
        or a labels file (teachers and labels: dataset and noise only). Datasets match with
        or without a protocol suffix (``digits`` matches ``digits-authors``; a labels folder
        matches ``digits-authors``), noises exactly, setups and methods by kind too
        (``single`` matches ``single-cifar_resnet14``, ``almkd`` ``almkd-1a2b3c``); ce runs
        (setup ``none``) join every setup's cells and pass any setup filter."""
        dataset, noise = parts[1], parts[2]
        if self.datasets and not any(
                dataset in (w, w.split("-")[0]) or dataset.split("-")[0] == w
                for w in self.datasets):
            return False
        if self.noises and noise not in self.noises:
            return False
        if parts[0] != "runs":
            return True
        setup, method = parts[3], parts[4]
        if self.setups and setup != "none" and not any(
                w in (setup, base_method(setup)) for w in self.setups):
            return False
        return not self.methods or any(w in (method, base_method(method)) for w in self.methods)

    def as_dict(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items() if v}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- export ---------------------------------------------------------------------------------


def study_files(results: Path, filters: Filters, with_teachers: bool,
                teachers_only: bool) -> list[str]:
    """The files a bundle of ``results`` holds, relative to it, sorted."""
    results = Path(results)
    out = []
    runs = [] if teachers_only else [
        d for d in sorted(results.glob("runs/*/*/*/*/seed*")) if (d / "metrics.json").is_file()
        and filters.keep(d.relative_to(results).parts)]
    for d in runs:
        out += [str((d / n).relative_to(results)) for n in RUN_FILES if (d / n).is_file()]
    names = TEACHER_FILES + (TEACHER_MODELS if with_teachers else ())
    teachers = [d for d in sorted(results.glob("teachers/*/*/*/seed*"))
                if (d / "metrics.json").is_file() and filters.keep(d.relative_to(results).parts)]
    for d in teachers:
        out += [str((d / n).relative_to(results)) for n in names if (d / n).is_file()]
    labels = [p for p in sorted(results.glob("labels/*/*/seed*.npz"))
              if filters.keep(("labels",) + p.relative_to(results).parts[1:3])]
    out += [str(p.relative_to(results)) for p in labels]
    datasets = {p.relative_to(results).parts[1] for p in labels}  # not runs/<dataset>-authors
    out += [f"data/{d}.json" for d in sorted(datasets)
            if (results / "data" / f"{d}.json").is_file()]
    return sorted(out)


def _run_record(rel: str, metrics: dict) -> dict:
    prov = metrics.get("provenance", {})
    return {"path": str(PurePosixPath(rel).parent), "kind": metrics.get("kind"),
            "config_hash": metrics.get("config_hash"), "git": prov.get("git"),
            "versions": prov.get("versions"), "device": prov.get("device")}


def _filtered_plan(results: Path, filters: Filters) -> bytes:
    """The study's plan with the runs the filters keep, planned runs that did not finish
    included (so that an import still reports them missing)."""
    data = json.loads((results / "expected_runs.json").read_text())
    if isinstance(data, list):
        data = {"runs": data}
    runs = []
    for entry in data["runs"]:
        parts = PurePosixPath(entry).parts
        rel = PurePosixPath(*parts[1:]) if parts and parts[0] == "results" else PurePosixPath(entry)
        if len(rel.parts) >= 5 and filters.keep(rel.parts):
            runs.append(str(rel))
    data["runs"] = runs
    return (json.dumps(data, indent=1) + "\n").encode()


def export(results: Path, out: Path, filters: Filters = Filters(), with_teachers: bool = False,
           teachers_only: bool = False, config: Path | None = None,
           alpha: str = "full") -> dict:
    """Write the bundle of ``results`` to ``out`` (atomically); returns its manifest.
    ``alpha="summary"`` carries each ALM run's alpha_summary.json (computed from its
    alpha.npz) instead of the per-instance weights: enough for every table and figure, a
    fraction of the size."""
    results = Path(results)
    if not results.is_dir():
        raise UserError(f"results folder {results} does not exist")
    if not (results / "runs").is_dir() and not (results / "teachers").is_dir():
        raise UserError(f"{results} is not a study folder (no runs/ or teachers/ in it): "
                        "name one, e.g. results/default")
    config_path = Path(config) if config else results / "config.yaml"
    if not config_path.is_file():
        raise UserError(f"{config_path} does not exist: the workflow writes it since bundles "
                        "exist (rerun the same snakemake command once: it trains nothing), or "
                        "pass --config FILE (the config the study was run with)")
    if not teachers_only and not (results / "expected_runs.json").is_file():
        raise UserError(f"{results / 'expected_runs.json'} does not exist: rerun the same "
                        "snakemake command once (it trains nothing)")
    if alpha not in ALPHA_MODES:
        raise UserError(f"--alpha {alpha!r}: one of {', '.join(ALPHA_MODES)}")
    if not str(out).endswith(".tar.gz"):
        raise UserError(f"--out {out}: a bundle is a .tar.gz file")
    files = study_files(results, filters, with_teachers, teachers_only)
    if not any(f.endswith("metrics.json") for f in files):
        raise UserError(f"nothing to export from {results} with filters {filters.as_dict()}")
    payload: dict[str, bytes] = {"config.yaml": config_path.read_bytes()}
    if not teachers_only:
        payload["expected_runs.json"] = (_filtered_plan(results, filters) if filters.as_dict()
                                         else (results / "expected_runs.json").read_bytes())
    for rel in files:  # read once: the bytes hashed are the bytes archived
        path = PurePosixPath(rel)
        if alpha == "summary" and path.name == "alpha.npz":
            summary = alpha_summary.summarise_file(results / rel)
            if summary is not None:  # no refresh: nothing to summarise
                payload[str(path.with_name(alpha_summary.SUMMARY_NAME))] = (
                    json.dumps(summary, indent=1) + "\n").encode()
            continue
        if path.name == alpha_summary.SUMMARY_NAME and (results / path.parent / "alpha.npz"
                                                        ).is_file():
            continue  # the npz (or the summary made from it now) speaks for the run
        payload[rel] = (results / rel).read_bytes()
    entries, runs = {}, []
    for rel, data in sorted(payload.items()):
        entries[rel] = {"sha256": sha256_bytes(data), "size": len(data)}
        if rel.endswith("metrics.json"):
            runs.append(_run_record(rel, json.loads(data)))
    from . import __version__
    from .runinfo import git_revision

    manifest = {"format": FORMAT, "version": VERSION, "study": results.resolve().name,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "noisykd": __version__, "exported_by": {"git": git_revision()},
                "filters": filters.as_dict(), "with_teachers": with_teachers,
                "teachers_only": teachers_only, "alpha": alpha,
                "files": dict(sorted(entries.items())),
                "runs": runs,
                # how the study was run: every snakemake command with its code revision,
                # versions and wall time (results/<study>/invocations.json, benchmark/studylog)
                "invocations": [] if teachers_only else studylog.read_log(results)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, tarfile.open(tmp, "w:gz") as tar:
        _add_bytes(tar, MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        for rel in sorted(entries):
            _add_bytes(tar, rel, payload[rel])
    os.chmod(out, 0o644)
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


# ---- verify ---------------------------------------------------------------------------------


def _safe_name(name: str) -> str | None:
    """Why a member name is unsafe, or None."""
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")):
        return "an absolute path"
    if ".." in p.parts:
        return "a '..' path"
    if "\\" in name or any(part in ("", ".") for part in name.split("/")):
        return "an odd path"
    return None


MAX_BYTES = 16 << 30  # a bundle whose manifest lists more is refused before reading it


def _manifest_of(path: Path, data: bytes) -> dict:
    """The parsed manifest; a wrong format or version is bad input (UserError)."""
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise UserError(f"{path} is not a results bundle: {MANIFEST} unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise UserError(f"{path} is not a results bundle (format {fmt!r})")
    if manifest.get("version") != VERSION:
        raise UserError(f"{path} is a bundle of format version {manifest.get('version')!r}; "
                        f"this noisykd reads version {VERSION}")
    files, runs = manifest.get("files"), manifest.get("runs")
    if not isinstance(files, dict) or not isinstance(runs, list) or not all(
            isinstance(e, dict) and isinstance(e.get("size"), int)
            and isinstance(e.get("sha256"), str) for e in files.values()) or not all(
            isinstance(r, dict) and isinstance(r.get("path"), str) for r in runs):
        raise UserError(f"{path}: malformed {MANIFEST} (files or runs)")
    if sum(e["size"] for e in files.values()) > MAX_BYTES:
        raise UserError(f"{path}: the manifest lists more than {MAX_BYTES >> 30} GiB")
    return manifest


def read_bundle(path: Path) -> tuple[dict, dict[str, bytes]]:
    """The manifest and every file's bytes of a verified bundle. Bad input (no such file, not
    a bundle, another format version, a malformed manifest) raises UserError; a bundle that
    fails verification raises BundleInvalid naming every problem found. The manifest comes
    first, so a member that is unlisted or not of its listed size is named without being
    read."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"bundle {path} does not exist")
    problems, files, manifest = [], {}, None
    try:
        tar = tarfile.open(path, "r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"{path} is not a results bundle (a .tar.gz made by noisykd bundle "
                        f"export): {exc}") from None
    try:
        with tar:
            for member in tar:
                if manifest is None:
                    if member.name != MANIFEST or not member.isfile():
                        raise UserError(f"{path} is not a results bundle: {MANIFEST} does "
                                        "not come first")
                    manifest = _manifest_of(path, tar.extractfile(member).read(64 << 20))
                    continue
                unsafe = _safe_name(member.name)
                if unsafe:
                    problems.append(f"{member.name}: {unsafe}, refused")
                    continue
                if not member.isfile():
                    if not member.isdir():
                        problems.append(f"{member.name}: a link or special file, refused")
                    continue
                entry = manifest["files"].get(member.name)
                if member.name in files:
                    problems.append(f"{member.name}: in the archive twice")
                elif entry is None:
                    problems.append(f"{member.name}: in the archive, not in the manifest")
                elif member.size != entry["size"]:
                    problems.append(f"{member.name}: {member.size} bytes, the manifest says "
                                    f"{entry['size']} (truncated or changed)")
                    files[member.name] = None
                else:
                    files[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as exc:
        problems.append(f"the archive is truncated or corrupt ({exc})")
    if manifest is None:
        if problems:
            raise BundleInvalid(problems)
        raise UserError(f"{path} is not a results bundle: no {MANIFEST}")
    problems += _check(manifest, files)
    if problems:
        raise BundleInvalid(problems)
    return manifest, files


def _check(manifest: dict, files: dict[str, bytes | None]) -> list[str]:
    problems = []
    listed = manifest["files"]
    for rel, entry in listed.items():
        if rel not in files:
            problems.append(f"{rel}: listed in the manifest, missing from the archive")
        elif files[rel] is not None and sha256_bytes(files[rel]) != entry["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest (changed)")
    folders = {str(parent) for rel in listed for parent in PurePosixPath(rel).parents}
    problems += [f"{rel}: a file and also a folder of other files" for rel in sorted(listed)
                 if rel in folders]
    log = manifest.get("invocations", [])
    if not isinstance(log, list) or not all(isinstance(e, dict) for e in log):
        problems.append("manifest.json: invocations is not a list of records")
    records = {r["path"]: r for r in manifest["runs"]}
    for rel, data in sorted(files.items()):
        if not rel.endswith("metrics.json") or data is None:
            continue
        try:
            m = json.loads(data)
            recomputed = spec_hash(m["spec"])
            labels, want = _labels_file(m), m["spec"]["labels"].get("file_sha256")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"{rel}: unreadable metrics ({exc!r})")
            continue
        if m.get("config_hash") != recomputed:
            problems.append(f"{rel}: config_hash {m.get('config_hash')} is not the hash of its "
                            f"spec ({recomputed})")
        record = records.get(str(PurePosixPath(rel).parent))
        if record is None or record.get("config_hash") != m.get("config_hash"):
            problems.append(f"{rel}: the manifest's run record does not match")
        if labels not in files:
            problems.append(f"{rel}: its labels file {labels} is not in the bundle")
        elif files[labels] is not None and sha256_bytes(files[labels]) != want:
            problems.append(f"{labels}: not the labels file {rel} was trained on (sha256)")
    return problems


def _labels_file(m: dict) -> str:
    """The labels file a run's spec names, relative to the study folder."""
    spec = m.get("spec", {})
    labels = spec.get("labels", {})
    return str(PurePosixPath(labels_path(spec.get("dataset"), labels.get("noise"),
                                         labels.get("seed"), root=".")))


def verify(path: Path) -> dict:
    manifest, files = read_bundle(path)
    return {"files": len(files), "study": manifest.get("study"), **_counts(files),
            "trained_by": studylog.training_invocations(manifest.get("invocations", []))}


def _counts(files) -> dict:
    """Runs and teachers in the bundle, counted from its metrics.json files."""
    return {"runs": sum(f.startswith("runs/") and f.endswith("/metrics.json") for f in files),
            "teachers": sum(f.startswith("teachers/") and f.endswith("/metrics.json")
                            for f in files)}


# ---- import ---------------------------------------------------------------------------------


def _blocked(results: Path, rel: str) -> str | None:
    """Why ``results/rel`` cannot be written as a plain file, or None."""
    dest = results / rel
    for parent in [results, *(results / p for p in PurePosixPath(rel).parents
                              if str(p) != ".")]:
        if parent.is_symlink():
            return f"{parent} is a link"
        if parent.exists() and not parent.is_dir():
            return f"{parent} exists and is not a folder"
    if dest.is_symlink() or (dest.exists() and not dest.is_file()):
        return f"{dest} exists and is not a plain file"
    return None


def import_bundle(path: Path, results: Path) -> dict:
    """Verify ``path``, then write its files under ``results`` (the study folder). Nothing is
    written when a file there has other content or a path cannot be written. Returns
    counts."""
    manifest, files = read_bundle(path)
    results = Path(results)
    clashes, todo, same = [], [], 0
    for rel in sorted(files):
        blocked = _blocked(results, rel)
        if blocked:
            clashes.append(blocked)
        elif (results / rel).exists():
            if file_sha256(results / rel) == manifest["files"][rel]["sha256"]:
                same += 1
            else:
                clashes.append(f"{results / rel} exists with other content")
        else:
            todo.append(rel)
    if clashes:
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise UserError(f"refusing to overwrite: {clashes[0]}{more}; nothing was written")
    for rel in todo:
        dest = results / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            Path(tmp).write_bytes(files[rel])
        os.chmod(dest, 0o644)
    restamp(results)
    return {"written": len(todo), "present": same, "study": manifest.get("study"),
            **_counts(files)}


def restamp(results: Path) -> int:
    """Make every stage of a study folder newer than the stages it is made from (data <
    labels < teachers < runs), moving modification times forward only, so that Snakemake
    (which has no metadata for imported files and compares times) retrains nothing that is
    consistent. A teacher or run is moved only when it is consistent with what is there: its
    labels file has the sha256 its spec names and, for a run, every teacher it distilled from
    (by spec hash) is present. Returns the number of files re-stamped."""
    results = Path(results)
    labels_sha = {str(p.relative_to(results)): file_sha256(p)
                  for p in results.glob("labels/*/*/seed*.npz")}
    teacher_hashes = set()
    stages: list[list[Path]] = [sorted(results.glob("data/*.json")),
                                sorted(results.glob("labels/*/*/seed*.npz")), [], []]
    for stage, pattern in ((2, "teachers/*/*/*/seed*"), (3, "runs/*/*/*/*/seed*")):
        for d in sorted(results.glob(pattern)):
            try:
                m = json.loads((d / "metrics.json").read_text())
                spec = m["spec"]
                ok = labels_sha.get(_labels_file(m)) == spec["labels"]["file_sha256"]
                ok = ok and all(t.get("config_hash") in teacher_hashes
                                for t in spec.get("teachers", []))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
            if stage == 2 and ok:
                teacher_hashes.add(m.get("config_hash"))
            if ok:
                stages[stage] += [p for p in sorted(d.iterdir()) if p.is_file()]
    moved, floor = 0, None
    for files in stages:
        if floor is not None:
            for p in files:
                if p.stat().st_mtime <= floor:
                    os.utime(p, (floor + 1, floor + 1))
                    moved += 1
        earlier = [p.stat().st_mtime for p in files]
        if earlier:
            floor = max(earlier + ([floor] if floor is not None else []))
    return moved


@dataclass
class Opened:
    """A study to read: a folder as it is, or a bundle extracted to a temporary folder."""

    folder: Path
    source: str
    _tmp: object = None

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def open_study(path: Path) -> Opened:
    """A results folder or a bundle file, as a folder to read (``close()`` when done)."""
    import tempfile

    path = Path(path)
    if path.is_dir():
        if not (path / "runs").is_dir():
            raise UserError(f"{path} is not a study folder (no runs/ in it) nor a bundle: "
                            "name one, e.g. results/default or a .tar.gz bundle")
        return Opened(path, str(path))
    tmp = tempfile.TemporaryDirectory(prefix="noisykd-bundle-")
    try:
        import_bundle(path, Path(tmp.name) / "study")
    except BaseException:
        tmp.cleanup()
        raise
    return Opened(Path(tmp.name) / "study", str(path), tmp)


def summary_lines(problems: Iterable[str], limit: int = 20) -> list[str]:
    problems = list(problems)
    lines = problems[:limit]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return lines
