"""Verify a bundle without extracting it: streamed, size-limited, header-checked; every
file listed with its sha256, of a kind the format defines, and every record consistent."""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from benchmark.analysis import alpha_summary
from benchmark.core.atomic import FILE_MODE
from benchmark.core.errors import UserError
from benchmark.core.hashing import spec_hash
from benchmark.core.layout import CONFIG_FILE, PLAN_FILE, labels_path
from benchmark.exchange import studylog
from benchmark.exchange.bundle.common import (
    CHUNK,
    FORMAT,
    LAYOUT_PATTERNS,
    MANIFEST,
    MAX_EXTRA_MEMBERS,
    MAX_HEADER,
    MAX_HEADER_CHAIN,
    MAX_MANIFEST,
    MAX_PARSED,
    NAME_MAX,
    PARSED,
    RUN_FILES,
    TEACHER_FILES,
    TEACHER_MODELS,
    VERSION,
    BundleInvalid,
    Limits,
    clip,
    shown,
    size_text,
)
from benchmark.spec import run_metrics


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
    if rel in (CONFIG_FILE, PLAN_FILE):
        return None if runs_ok or rel == CONFIG_FILE else "a plan in a teachers-only bundle"
    if LAYOUT_PATTERNS["labels"].fullmatch(rel) or LAYOUT_PATTERNS["data"].fullmatch(rel):
        return None
    run, teacher = LAYOUT_PATTERNS["run"].fullmatch(rel), LAYOUT_PATTERNS["teacher"].fullmatch(rel)
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
        raise UserError(f"{path} is not a results bundle (format {clip(fmt)})")
    if manifest.get("version") != VERSION:
        raise UserError(f"{path} is a bundle of format version "
                        f"{clip(manifest.get('version'))}; this noisykd reads version {VERSION}")
    files, runs = manifest.get("files"), manifest.get("runs")
    if not isinstance(files, dict) or not isinstance(runs, list) or not all(
            isinstance(e, dict) and isinstance(e.get("size"), int)
            and not isinstance(e["size"], bool) and e["size"] >= 0
            and isinstance(e.get("sha256"), str) for e in files.values()) or not all(
            isinstance(r, dict) and isinstance(r.get("path"), str) for r in runs):
        raise UserError(f"{path}: malformed {MANIFEST} (files or runs)")
    for rel, e in files.items():
        if e["size"] > limits.member:
            raise UserError(f"{path}: {shown(rel)} is {size_text(e['size'])}, over the per-member "
                            f"limit of {size_text(limits.member)} (--max-member-size raises it "
                            "for a bundle you trust); nothing was read")
    total = sum(e["size"] for e in files.values())
    if total > limits.total:
        raise UserError(f"{path}: the manifest lists {size_text(total)}, over the limit of "
                        f"{size_text(limits.total)} (--max-total-size raises it for a bundle "
                        "you trust); nothing was read")
    return manifest


def _listing_problems(manifest: dict) -> list[str]:
    """Files the manifest lists that a bundle cannot hold (named once, never read)."""
    problems = []
    for rel, entry in manifest["files"].items():
        why = _safe_name(rel) or _kind_problem(rel, manifest)
        if why:
            problems.append(f"{shown(rel)}: listed in the manifest, {why}; refused")
        elif PurePosixPath(rel).name in PARSED and entry["size"] > MAX_PARSED:
            problems.append(f"{rel}: {size_text(entry['size'])}, more than a "
                            f"{PurePosixPath(rel).name} holds ({size_text(MAX_PARSED)}); refused")
    return problems


class _HeaderRefused(Exception):
    """A tar header tarfile would read whole into memory, over MAX_HEADER."""


_META_TYPES = {tarfile.XHDTYPE: "pax", tarfile.XGLTYPE: "global pax",
               tarfile.SOLARIS_XHDTYPE: "pax", tarfile.GNUTYPE_LONGNAME: "GNU long-name",
               tarfile.GNUTYPE_LONGLINK: "GNU long-link"}


def guarded_tarinfo() -> type:
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
                    f"a {kind} header of {size_text(obj.size)} (more than "
                    f"{size_text(MAX_HEADER)} or {MAX_HEADER_CHAIN} such headers before one "
                    "member), refused unread")
            return obj

    return Guarded


@dataclass
class Member:
    """A member as read: its sha256 and size and, for the PARSED kinds, its bytes."""

    sha256: str
    size: int
    data: bytes | None = None


class WriteFailed(Exception):
    """Writing a staged file failed (disk full, name too long, ...): ``args`` (path, OSError)."""


def _write(fh, data: bytes) -> None:  # one place to write staged bytes (tests break it)
    fh.write(data)


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, keep: bool,
                 dest: Path | None) -> Member:
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
                raise WriteFailed(dest, exc) from None
        while chunk := src.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
            if keep:
                kept.append(chunk)
            if out is not None:
                try:
                    _write(out, chunk)
                except OSError as exc:
                    raise WriteFailed(dest, exc) from None
        if out is not None:
            try:
                out.flush()
                os.fsync(out.fileno())
                os.fchmod(out.fileno(), FILE_MODE)  # the umask's mode, as atomic_path
            except OSError as exc:
                raise WriteFailed(dest, exc) from None
    finally:
        if out is not None:
            out.close()
    return Member(h.hexdigest(), n, b"".join(kept) if keep else None)


def scan(path: Path, limits: Limits, plan=None) -> tuple[dict, dict[str, Member | None]]:
    """Read a bundle once, member by member, checking everything ``verify`` checks; returns
    the manifest and every listed member read (None: not of its listed size). ``plan``:
    called with the manifest, returns (folder, names): those members are written under
    folder as they are read, until a problem is found. Bad input raises UserError, a bundle
    that fails verification BundleInvalid naming every problem found, a failed write
    WriteFailed."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"bundle {path} does not exist")
    problems: list[str] = []
    files: dict[str, Member | None] = {}
    manifest, refused, stage, todo, listed = None, set(), None, set(), {}
    count = seen = last_end = 0
    stopped = True  # until the archive is read to its end
    try:
        tar = tarfile.open(path, "r:gz", tarinfo=guarded_tarinfo())
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
                        raise UserError(f"{path}: {MANIFEST} is {size_text(member.size)}, more "
                                        f"than a manifest holds ({size_text(MAX_MANIFEST)})")
                    manifest = _manifest_of(path, tar.extractfile(member).read(), limits)
                    listed = manifest["files"]
                    problems += _listing_problems(manifest)
                    refused = {rel for rel in listed if _safe_name(rel)
                               or _kind_problem(rel, manifest)}
                    if plan is not None and not problems:
                        stage, todo = plan(manifest)
                    continue
                name = shown(member.name)
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
                                    f"{size_text(limits.total)}; stopped reading")
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
    problems += check_members(manifest, files, refused)
    if problems:
        raise BundleInvalid(problems)
    return manifest, files


def read_bundle(path: Path, limits: Limits = Limits()) -> tuple[dict, dict]:
    """The manifest and, per file, its sha256 and size (``Member``; metrics.json and
    alpha_summary.json with their bytes) of a verified bundle. Bad input (no such file, not
    a bundle, another format version, a malformed manifest, over the limits) raises
    UserError; a bundle that fails verification raises BundleInvalid naming every problem
    found. The manifest comes first, so a member that is unlisted, of a kind a bundle does
    not hold or not of its listed size is named without being read; the others are read in
    pieces, never whole."""
    return scan(path, limits)


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


def check_members(manifest: dict, files: dict[str, Member | None],
                  refused=frozenset()) -> list[str]:
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
    problems += [f"{shown(rel)}: a file and also a folder of other files"
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
            labels, want = labels_file_of(m), m["spec"]["labels"].get("file_sha256")
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


def labels_file_of(m: dict) -> str:
    """The labels file a run's spec names, relative to the study folder."""
    spec = m.get("spec", {})
    labels = spec.get("labels", {})
    return str(PurePosixPath(labels_path(spec.get("dataset"), labels.get("noise"),
                                         labels.get("seed"), root=".")))


def verify(path: Path, limits: Limits = Limits()) -> dict:
    manifest, files = read_bundle(path, limits)
    return {"files": len(files), "study": manifest.get("study"), **counts(files),
            "trained_by": studylog.training_invocations(manifest.get("invocations", []))}


def counts(files) -> dict:
    """Runs and teachers in the bundle, counted from its metrics.json files."""
    return {"runs": sum(f.startswith("runs/") and f.endswith("/metrics.json") for f in files),
            "teachers": sum(f.startswith("teachers/") and f.endswith("/metrics.json")
                            for f in files)}


