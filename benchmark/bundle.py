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

``verify`` checks the member types and names, that every file is of a kind the format
defines (the layout above; teacher models only when the manifest says ``with_teachers``;
never a checkpoint or any other path), every checksum and size, that nothing is listed
twice or unlisted, that every metrics.json and alpha_summary.json has the declared keys and
types (benchmark/run_metrics.py: accuracies finite and in [0, 1]), that every metrics.json's
``config_hash`` is the hash of its spec, and that each run's labels file in the bundle is
the one its spec names (sha256). It reads the archive once, each member in 1 MiB pieces
(never a whole member in memory), within limits: ``Limits`` (per file and in all, raised
with ``--max-member-size`` / ``--max-total-size``), pax and GNU long-name headers checked
from their 512-byte header block before tarfile reads them (``_guarded_tarinfo``).
``import`` verifies while it writes the new files into a temporary folder beside the study
folder, refuses (naming the file) to overwrite a file with other content, and moves the
files into place only when all are written and verified: a failure (a bad member, a full
disk, a name the file system refuses, Ctrl-C) leaves the study folder as it was. It copies
bytes only (never unpickles; model files are later loaded with ``weights_only=True``) and
sets modification times in the workflow's order (data < labels < teachers < runs, forward
only, for everything consistent with what the folder holds), so that Snakemake, which has
no metadata for imported files, sees every output newer than its inputs and plans no
training.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import alpha_summary, run_metrics, studylog
from .errors import UserError
from .grid import labels_path
from .runinfo import FILE_MODE, atomic_path, file_sha256, spec_hash
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
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


# ---- verify ---------------------------------------------------------------------------------

#: default limits (``noisykd bundle verify|import --max-member-size / --max-total-size``):
#: the largest file a bundle may hold, and all of them together. A real bundle's largest
#: files are teacher models (cifar_resnet56: 3.4 MB, wrn_28_10: 146 MB, a ViT-L 1.2 GB) and
#: ALM runs' alpha.npz (about 1 MB on the authors' synthetic task); the committed reference
#: bundle holds 7.4 MB in 2077 files.
MAX_MEMBER = 2 << 30
MAX_TOTAL = 16 << 30
MAX_BYTES = MAX_TOTAL  # (its name before the per-member limit existed)
MAX_MANIFEST = 64 << 20  # manifest.json is parsed in memory (the reference's: 0.7 MB)
MAX_PARSED = 16 << 20  # so are metrics.json and alpha_summary.json (a few KB each)
MAX_HEADER = 1 << 20  # pax and GNU long-name/long-link headers before one member, together
MAX_HEADER_CHAIN = 8  # ... and how many (tarfile reads each whole, recursively)
MAX_EXTRA_MEMBERS = 1000  # members beyond the listed ones before reading stops
NAME_MAX = 255  # bytes in one path component (Linux, macOS)
CHUNK = 1 << 20  # members are hashed and written in pieces of this size
PARSED = ("metrics.json", alpha_summary.SUMMARY_NAME)  # the members verify reads as JSON

_SEG = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
_SEED = r"seed[0-9]+"
_LAYOUT = {"run": re.compile(rf"runs/{_SEG}/{_SEG}/{_SEG}/{_SEG}/{_SEED}/([^/]+)"),
           "teacher": re.compile(rf"teachers/{_SEG}/{_SEG}/{_SEG}/{_SEED}/([^/]+)"),
           "labels": re.compile(rf"labels/{_SEG}/{_SEG}/{_SEED}\.npz"),
           "data": re.compile(rf"data/{_SEG}\.json")}


@dataclass(frozen=True)
class Limits:
    """How large a bundle's files may be, one (``member``) and all (``total``), in bytes."""

    member: int = MAX_MEMBER
    total: int = MAX_TOTAL


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, flag: str) -> int:
    """``2G``, ``500M``, ``64K`` (binary units, an optional ``B`` or ``iB``) or bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.I)
    if not m or float(m[1]) * _UNITS[m[2].upper()] < 1:
        raise UserError(f"{flag} {text!r}: a size such as 4G, 500M or 1048576 (bytes)")
    return int(float(m[1]) * _UNITS[m[2].upper()])


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{n} bytes"


def _shown(name: str) -> str:
    """A member name for a message (a hostile one can be megabytes long)."""
    return name if len(name) <= 200 else f"{name[:120]}... ({len(name)} characters)"


def _clip(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _safe_name(name: str) -> str | None:
    """Why a member name is unsafe, or None."""
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith(("/", "\\")):
        return "an absolute path"
    if ".." in p.parts:
        return "a '..' path"
    if "\\" in name or any(part in ("", ".") for part in name.split("/")):
        return "an odd path"
    if any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in name.split("/")):
        return f"a path component longer than {NAME_MAX} bytes"
    return None


def _kind_problem(rel: str, manifest: dict) -> str | None:
    """Why ``rel`` is not a file this bundle may hold (the layout above, as the manifest
    declares it: teacher models only ``with_teachers``, alpha.npz not with ``--alpha
    summary``, no runs in a teachers-only bundle), or None."""
    runs_ok = not manifest.get("teachers_only")
    if rel in ("config.yaml", "expected_runs.json"):
        return None if runs_ok or rel == "config.yaml" else "a plan in a teachers-only bundle"
    if _LAYOUT["labels"].fullmatch(rel) or _LAYOUT["data"].fullmatch(rel):
        return None
    run, teacher = _LAYOUT["run"].fullmatch(rel), _LAYOUT["teacher"].fullmatch(rel)
    if run and runs_ok and run[1] in RUN_FILES:
        if run[1] == "alpha.npz" and manifest.get("alpha") == "summary":
            return "an alpha.npz, but the manifest says alpha summary"
        return None
    if teacher and teacher[1] in TEACHER_FILES:
        return None
    if teacher and teacher[1] in TEACHER_MODELS:
        return None if manifest.get("with_teachers") is True else (
            "a teacher's model file, but the manifest says the bundle was exported without "
            "--with-teachers")
    return ("not a file a bundle holds (config.yaml, expected_runs.json, data/, labels/, a "
            "run's " + ", ".join(RUN_FILES) + ", a teacher's "
            + ", ".join(TEACHER_FILES + TEACHER_MODELS) + ")")


def _manifest_of(path: Path, data: bytes, limits: Limits) -> dict:
    """The parsed manifest; a wrong format or version, or a listing over the limits, is bad
    input (UserError)."""
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{path} is not a results bundle: {MANIFEST} unreadable "
                        f"({type(exc).__name__}: {str(exc)[:100]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise UserError(f"{path} is not a results bundle (format {_clip(fmt)})")
    if manifest.get("version") != VERSION:
        raise UserError(f"{path} is a bundle of format version "
                        f"{_clip(manifest.get('version'))}; this noisykd reads version {VERSION}")
    files, runs = manifest.get("files"), manifest.get("runs")
    if not isinstance(files, dict) or not isinstance(runs, list) or not all(
            isinstance(e, dict) and isinstance(e.get("size"), int)
            and not isinstance(e["size"], bool) and e["size"] >= 0
            and isinstance(e.get("sha256"), str) for e in files.values()) or not all(
            isinstance(r, dict) and isinstance(r.get("path"), str) for r in runs):
        raise UserError(f"{path}: malformed {MANIFEST} (files or runs)")
    for rel, e in files.items():
        if e["size"] > limits.member:
            raise UserError(f"{path}: {_shown(rel)} is {_size(e['size'])}, over the per-member "
                            f"limit of {_size(limits.member)} (--max-member-size raises it "
                            "for a bundle you trust); nothing was read")
    total = sum(e["size"] for e in files.values())
    if total > limits.total:
        raise UserError(f"{path}: the manifest lists {_size(total)}, over the limit of "
                        f"{_size(limits.total)} (--max-total-size raises it for a bundle "
                        "you trust); nothing was read")
    return manifest


def _listing_problems(manifest: dict) -> list[str]:
    """Files the manifest lists that a bundle cannot hold (named once, never read)."""
    problems = []
    for rel, entry in manifest["files"].items():
        why = _safe_name(rel) or _kind_problem(rel, manifest)
        if why:
            problems.append(f"{_shown(rel)}: listed in the manifest, {why}; refused")
        elif PurePosixPath(rel).name in PARSED and entry["size"] > MAX_PARSED:
            problems.append(f"{rel}: {_size(entry['size'])}, more than a "
                            f"{PurePosixPath(rel).name} holds ({_size(MAX_PARSED)}); refused")
    return problems


class _HeaderRefused(Exception):
    """A tar header tarfile would read whole into memory, over MAX_HEADER."""


_META_TYPES = {tarfile.XHDTYPE: "pax", tarfile.XGLTYPE: "global pax",
               tarfile.SOLARIS_XHDTYPE: "pax", tarfile.GNUTYPE_LONGNAME: "GNU long-name",
               tarfile.GNUTYPE_LONGLINK: "GNU long-link"}


def _guarded_tarinfo() -> type:
    """A TarInfo class for one archive that refuses, from the 512-byte header block alone
    (``frombuf``, before tarfile reads what follows), pax and GNU long-name/long-link headers
    of more than MAX_HEADER bytes (or MAX_HEADER_CHAIN of them) before one member, global
    pax headers of more than MAX_HEADER in all, and sparse members: tarfile would read each
    whole into memory (a 200 MB pax header peaked at 693 MB)."""
    state = {"chain": 0, "bytes": 0, "global": 0}

    class Guarded(tarfile.TarInfo):
        def _proc_gnusparse_10(self, next, pax_headers, tarfile):  # noqa: A002 (tarfile's)
            # a pax GNU.sparse 1.0 map is read from the data area with no bound: refused
            raise _HeaderRefused(f"a GNU sparse (pax 1.0) member at byte {next.offset}, refused")

        @classmethod
        def frombuf(cls, buf, encoding, errors):
            obj = super().frombuf(buf, encoding, errors)
            if obj.size < 0:  # tarfile would seek backwards and read the archive again
                raise _HeaderRefused(f"a header with a negative size ({obj.size}), refused")
            kind = _META_TYPES.get(obj.type)
            if kind is None:
                if obj.type == tarfile.GNUTYPE_SPARSE:
                    raise _HeaderRefused(f"a GNU sparse member at byte {obj.offset}, refused")
                state["chain"] = state["bytes"] = 0
                return obj
            state["chain"] += 1
            state["bytes"] += obj.size
            if obj.type == tarfile.XGLTYPE:
                state["global"] += obj.size
            if (state["bytes"] > MAX_HEADER or state["global"] > MAX_HEADER
                    or state["chain"] > MAX_HEADER_CHAIN):
                raise _HeaderRefused(
                    f"a {kind} header of {_size(obj.size)} (more than {_size(MAX_HEADER)} or "
                    f"{MAX_HEADER_CHAIN} such headers before one member), refused unread")
            return obj

    return Guarded


@dataclass
class _Member:
    """A member as read: its sha256 and size and, for the PARSED kinds, its bytes."""

    sha256: str
    size: int
    data: bytes | None = None


class _WriteFailed(Exception):
    """Writing a staged file failed (disk full, name too long, ...): ``args`` (path, OSError)."""


def _write(fh, data: bytes) -> None:  # one place to write staged bytes (tests break it)
    fh.write(data)


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, keep: bool,
                 dest: Path | None) -> _Member:
    """Hash ``member`` in CHUNK pieces, writing them to ``dest`` (when given) as they come and
    keeping them only when ``keep``: never the whole of a large member in memory."""
    h, kept, n = hashlib.sha256(), [], 0
    src = tar.extractfile(member)
    out = None
    try:
        if dest is not None:
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                out = open(dest, "xb")  # noqa: SIM115 (closed below, also on failure)
            except OSError as exc:
                raise _WriteFailed(dest, exc) from None
        while chunk := src.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
            if keep:
                kept.append(chunk)
            if out is not None:
                try:
                    _write(out, chunk)
                except OSError as exc:
                    raise _WriteFailed(dest, exc) from None
        if out is not None:
            try:
                out.flush()
                os.fsync(out.fileno())
                os.fchmod(out.fileno(), FILE_MODE)  # the umask's mode, as atomic_path
            except OSError as exc:
                raise _WriteFailed(dest, exc) from None
    finally:
        if out is not None:
            out.close()
    return _Member(h.hexdigest(), n, b"".join(kept) if keep else None)


def _scan(path: Path, limits: Limits, plan=None) -> tuple[dict, dict[str, _Member | None]]:
    """Read a bundle once, member by member, checking everything ``verify`` checks; returns
    the manifest and every listed member read (None: not of its listed size). ``plan``:
    called with the manifest, returns (folder, names): those members are written under
    folder as they are read, until a problem is found. Bad input raises UserError, a bundle
    that fails verification BundleInvalid naming every problem found, a failed write
    _WriteFailed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"bundle {path} does not exist")
    problems: list[str] = []
    files: dict[str, _Member | None] = {}
    manifest, refused, stage, todo, listed = None, set(), None, set(), {}
    count = seen = last_end = 0
    stopped = True  # until the archive is read to its end
    try:
        tar = tarfile.open(path, "r:gz", tarinfo=_guarded_tarinfo())
    except _HeaderRefused as exc:
        raise BundleInvalid([str(exc)]) from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UserError(f"{path} is not a results bundle (a .tar.gz made by noisykd bundle "
                        f"export): {exc}") from None
    try:
        with tar:
            for member in tar:
                count += 1
                if manifest is None:
                    if member.name != MANIFEST or not member.isfile():
                        raise UserError(f"{path} is not a results bundle: {MANIFEST} does "
                                        "not come first")
                    if member.size > MAX_MANIFEST:
                        raise UserError(f"{path}: {MANIFEST} is {_size(member.size)}, more "
                                        f"than a manifest holds ({_size(MAX_MANIFEST)})")
                    manifest = _manifest_of(path, tar.extractfile(member).read(), limits)
                    listed = manifest["files"]
                    problems += _listing_problems(manifest)
                    refused = {rel for rel in listed if _safe_name(rel)
                               or _kind_problem(rel, manifest)}
                    if plan is not None and not problems:
                        stage, todo = plan(manifest)
                    continue
                name = _shown(member.name)
                if member.size < 0 or member.offset < last_end:  # never backwards
                    problems.insert(0, f"{name}: a member that starts before the previous "
                                    "one ended; stopped reading")
                    break
                last_end = member.offset_data + member.size
                if count > len(listed) + MAX_EXTRA_MEMBERS + 1:
                    problems.insert(0, f"more than {MAX_EXTRA_MEMBERS} members beyond the "
                                    f"{len(listed)} listed; stopped reading")
                    break
                seen += max(member.size, 0)
                if seen > limits.total:
                    problems.insert(0, f"the archive's members add up to more than "
                                    f"{_size(limits.total)}; stopped reading")
                    break
                unsafe = _safe_name(member.name)
                if unsafe:
                    problems.append(f"{name}: {unsafe}, refused")
                    continue
                if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.sparse:
                    if not member.isdir():
                        problems.append(f"{name}: a link or special file, refused")
                    continue
                entry = listed.get(member.name)
                if member.name in files:
                    problems.append(f"{name}: in the archive twice")
                elif entry is None:
                    problems.append(f"{name}: in the archive, not in the manifest")
                elif member.name in refused:
                    continue  # named with the listing, never read
                elif member.size != entry["size"]:
                    problems.append(f"{name}: {member.size} bytes, the manifest says "
                                    f"{entry['size']} (truncated or changed)")
                    files[member.name] = None
                else:
                    write = stage is not None and member.name in todo and not problems
                    files[member.name] = _read_member(
                        tar, member, PurePosixPath(member.name).name in PARSED,
                        stage / member.name if write else None)
            else:
                stopped = False
    except _HeaderRefused as exc:
        problems.insert(0, f"{exc}; stopped reading")
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as exc:
        problems.append(f"the archive is truncated or corrupt ({str(exc)[:200]})")
    if manifest is None:
        if problems:
            raise BundleInvalid(problems)
        raise UserError(f"{path} is not a results bundle: no {MANIFEST}")
    if stopped:  # what was not reached is not named file by file
        unread = [rel for rel in listed if rel not in files and rel not in refused]
        refused |= set(unread)
        if unread:
            problems.append(f"{len(unread)} listed files not reached")
    problems += _check(manifest, files, refused)
    if problems:
        raise BundleInvalid(problems)
    return manifest, files


def read_bundle(path: Path, limits: Limits = Limits()) -> tuple[dict, dict]:
    """The manifest and, per file, its sha256 and size (``_Member``; metrics.json and
    alpha_summary.json with their bytes) of a verified bundle. Bad input (no such file, not
    a bundle, another format version, a malformed manifest, over the limits) raises
    UserError; a bundle that fails verification raises BundleInvalid naming every problem
    found. The manifest comes first, so a member that is unlisted, of a kind a bundle does
    not hold or not of its listed size is named without being read; the others are read in
    pieces, never whole."""
    return _scan(path, limits)


def _invocation_problems(e: dict) -> list[str]:
    """What ``bundle verify`` could not print of one invocation record."""
    out = []
    for key, kinds in (("wall_time_s", (int, float)), ("trained_now", (int,)),
                       ("command", (str,)), ("started", (str,)), ("git", (dict,)),
                       ("host", (dict,))):
        v = e.get(key)
        if v is not None and (not isinstance(v, kinds) or isinstance(v, bool)):
            out.append(f"{key} is {type(v).__name__}, not {kinds[0].__name__}")
    return out


def _check(manifest: dict, files: dict[str, _Member | None], refused=frozenset()) -> list[str]:
    problems = []
    listed = manifest["files"]
    for rel, entry in listed.items():
        if rel in refused:
            continue
        if rel not in files:
            problems.append(f"{rel}: listed in the manifest, missing from the archive")
        elif files[rel] is not None and files[rel].sha256 != entry["sha256"]:
            problems.append(f"{rel}: sha256 differs from the manifest (changed)")
    folders = {str(parent) for rel in listed for parent in PurePosixPath(rel).parents}
    problems += [f"{_shown(rel)}: a file and also a folder of other files"
                 for rel in sorted(listed) if rel in folders]
    log = manifest.get("invocations", [])
    if not isinstance(log, list) or not all(isinstance(e, dict) for e in log):
        problems.append("manifest.json: invocations is not a list of records")
    else:
        problems += [f"manifest.json: invocations[{i}]: {why}" for i, e in enumerate(log)
                     for why in _invocation_problems(e)]
    records = {r["path"]: r for r in manifest["runs"]}
    for rel, member in sorted(files.items()):
        if member is None or member.data is None:
            continue
        try:
            parsed = json.loads(member.data)
        except (ValueError, RecursionError) as exc:
            problems.append(f"{rel}: unreadable JSON ({type(exc).__name__}: "
                            f"{str(exc)[:100]})")
            continue
        if rel.endswith(alpha_summary.SUMMARY_NAME):
            problems += run_metrics.alpha_summary_problems(parsed, rel)
            continue
        schema = run_metrics.metrics_problems(
            parsed, rel, "student" if rel.startswith("runs/") else "teacher")
        if schema:
            problems += schema
            continue
        m = parsed
        try:
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
        elif files[labels] is not None and files[labels].sha256 != want:
            problems.append(f"{labels}: not the labels file {rel} was trained on (sha256)")
    return problems


def _labels_file(m: dict) -> str:
    """The labels file a run's spec names, relative to the study folder."""
    spec = m.get("spec", {})
    labels = spec.get("labels", {})
    return str(PurePosixPath(labels_path(spec.get("dataset"), labels.get("noise"),
                                         labels.get("seed"), root=".")))


def verify(path: Path, limits: Limits = Limits()) -> dict:
    manifest, files = read_bundle(path, limits)
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


def _survey(results: Path, manifest: dict) -> tuple[list[str], list[str], int]:
    """What importing the manifest's files into ``results`` means: (clashes, files to
    write, files already there with the same content)."""
    clashes, todo, same = [], [], 0
    for rel in sorted(manifest["files"]):
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
    return clashes, todo, same


class _Staging:
    """A temporary folder beside the study folder that an import writes into; the files move
    into place only when every one is written and verified, and ``undo`` leaves the study
    folder (and the folders above it this import created) as they were."""

    PREFIX = ".noisykd-import-"

    def __init__(self, results: Path):
        self.results = Path(os.path.abspath(results))
        self.made: list[Path] = []  # folders this import created, outermost first
        self.moved: list[str] = []
        self.folder: Path | None = None
        self.renamed_whole = False

    def create(self) -> Path:
        parent, missing = self.results.parent, []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for d in reversed(missing):
            d.mkdir()
            self.made.append(d)
        for _ in range(100):
            folder = self.results.parent / f"{self.PREFIX}{self.results.name}-{os.urandom(4).hex()}"
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            self.folder = folder
            return folder
        raise FileExistsError(f"no free staging folder name in {self.results.parent}")

    def move_into_place(self, todo: list[str]) -> None:
        """Move the staged files into the study folder: one rename when it does not exist,
        else file by file (undone on failure)."""
        if self.folder is None or not todo:
            return
        if not self.results.exists() and not self.results.is_symlink():
            _rename(self.folder, self.results)
            self.renamed_whole, self.folder = True, None
            return
        for rel in todo:
            dest = self.results / rel
            missing = [p for p in [*reversed(dest.parents)] if
                       p.is_relative_to(self.results) and p != self.results and not p.exists()]
            for d in missing:
                d.mkdir()
                self.made.append(d)
            if dest.exists() or dest.is_symlink():
                raise UserError(f"{dest} appeared during the import; nothing was written")
            _rename(self.folder / rel, dest)
            self.moved.append(rel)

    def undo(self) -> None:
        """Best effort, also after Ctrl-C: moved files back, created folders removed."""
        if self.renamed_whole:
            shutil.rmtree(self.results, ignore_errors=True)
        for rel in reversed(self.moved):
            try:
                _rename(self.results / rel, self.folder / rel)
            except OSError:
                pass
        self.discard()
        for d in reversed(self.made):
            try:
                d.rmdir()
            except OSError:
                pass

    def discard(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


_rename = os.rename  # (tests break it)


def _write_error(exc: _WriteFailed, results: Path, need: int) -> UserError:
    where, err = exc.args
    if err.errno == errno.ENOSPC:
        return UserError(f"no space left on device writing {where} (the import needs "
                         f"{_size(need)} beside {results}); nothing was written")
    return UserError(f"cannot write {where}: {err.strerror or err}; nothing was written")


def import_bundle(path: Path, results: Path, limits: Limits = Limits()) -> dict:
    """Verify ``path`` while writing its new files into a temporary folder beside
    ``results`` (the study folder), then move them into place. Nothing is written when the
    bundle fails verification, a file there has other content, a path cannot be written,
    the disk fills up or the import is interrupted. Returns counts."""
    results = Path(results)
    staging = _Staging(results)
    survey = {"clashes": [], "todo": [], "same": 0, "need": 0}

    def plan(manifest: dict):
        try:
            clashes, todo, same = _survey(results, manifest)
            survey.update(clashes=clashes, todo=todo, same=same,
                          need=sum(manifest["files"][rel]["size"] for rel in todo))
            if clashes or not todo:
                return None, set()
            return staging.create(), set(todo)
        except OSError as exc:
            raise _WriteFailed(exc.filename or results, exc) from None

    try:
        manifest, files = _scan(path, limits, plan)
        clashes = survey["clashes"]
        if clashes:
            more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
            raise UserError(f"refusing to overwrite: {clashes[0]}{more}; nothing was written")
        staging.move_into_place(survey["todo"])
    except _WriteFailed as exc:
        staging.undo()
        raise _write_error(exc, results, survey["need"]) from None
    except OSError as exc:
        staging.undo()
        raise _write_error(_WriteFailed(exc.filename or results, exc), results, 0) from None
    except BaseException:
        staging.undo()
        raise
    staging.discard()
    restamp(results)
    return {"written": len(survey["todo"]), "present": survey["same"],
            "study": manifest.get("study"), **_counts(files)}


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
