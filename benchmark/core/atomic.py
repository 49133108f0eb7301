"""Atomic, byte-reproducible file writes: a file is written beside its target and moved into
place, with the mode a plain ``open`` would give it (the umask's); a full disk is named as
one; zip entries carry a fixed time, so the same inputs give the same bytes."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
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
