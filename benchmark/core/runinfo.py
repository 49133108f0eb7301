"""Seeds per role and atomic, byte-reproducible file writes.

Every random choice in the suite draws from a generator seeded by ``derive_seed(run_seed,
role, ...)``. Deriving seeds by a stable hash (not by ``seed + k``) keeps roles independent:
the noise of seed 1 is not the split of seed 0, and a ``self`` teacher does not start from
the ``ce`` student's initial weights even though both have the same architecture.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path

import numpy as np


def _process_umask() -> int:
    """The process's umask, once, at import: from /proc (Linux), else by setting it and
    setting it back (which another thread could observe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: files are written with the mode a plain ``open`` would give them (0644 under the usual
#: umask 022), not mkstemp's 0600, so that a shared cluster's group can read the results
FILE_MODE = 0o666 & ~_process_umask()

# Fixed timestamp for zip entries: np.savez stamps the current time, which would make two
# labels files of the same inputs differ in bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def derive_seed(seed: int, role: str, *parts: object) -> int:
    """A 63-bit seed for one role of one run, stable across Python versions and machines."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    key = "\x1f".join([str(int(seed)), role, *map(str, parts)])
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def rng_for(seed: int, role: str, *parts: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, role, *parts))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A killed or failing writer leaves at most a ``.tmp`` file, never a half-written file
    under the final name that a workflow would take for finished. The file gets the
    umask's mode (``FILE_MODE``), as ``open`` would give it. ``durable`` also flushes
    the data to disk before the rename (safe against a power cut, at a few milliseconds per
    file); the per-epoch log, rewritten every epoch and rebuilt on resume, skips it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError:
            raise
        except Exception as exc:
            # a writer that hides the disk's error behind its own (torch.save: "file write
            # failed") on a full disk: say what it was
            if _disk_full(path.parent):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
            raise
        # the mode once the writer is done (also under a umask without owner write), and on
        # whatever file the writer left under the temporary name
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            os.fchmod(fd, FILE_MODE)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _disk_full(folder: Path, below: int = 1 << 20) -> bool:
    """Whether the file system of ``folder`` has less than ``below`` bytes free for us."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < below


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    with atomic_path(path, durable) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of an ``.npz`` archive that depend only on the arrays (names sorted, fixed
    timestamps, no pickled objects), readable by ``np.load(..., allow_pickle=False)``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            arr = np.asarray(arrays[name])
            if arr.dtype == object:
                raise TypeError(f"array {name!r} has dtype object, which would need pickle")
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def write_npz_atomic(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    atomic_write_bytes(path, npz_bytes(arrays))


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def spec_hash(spec: dict) -> str:
    """Short, stable hash of a run's full spec (canonical JSON)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def git_revision() -> dict:
    """The code's git revision and whether the tree had uncommitted changes (None outside git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10)
        return {"commit": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def provenance(device: str | None = None) -> dict:
    """Versions, code revision, host and scheduler ids recorded in every metrics.json."""
    from benchmark import __version__

    versions = {"python": platform.python_version(), "noisykd": __version__}
    for mod in ("torch", "timm", "numpy"):
        if mod in sys.modules:
            versions[mod] = getattr(sys.modules[mod], "__version__", None)
        else:  # installed but not imported (suite models do not need timm): its metadata
            try:
                versions[mod] = metadata.version(mod)
            except metadata.PackageNotFoundError:
                pass
    return {
        "versions": versions,
        "git": dict(git_revision()),
        "host": platform.node(),
        "device": device,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
