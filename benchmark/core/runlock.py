"""The per-run lock: two copies of one run never train at once (no torch: ``noisykd forget``
asks it too, before removing a run)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from benchmark.core.errors import UserError


class RunLock:
    """An exclusive lock on a run: two copies of one run never train at once.

    ``flock`` locks die with their process, so a killed job leaves no stale lock behind.
    """

    def __init__(self, directory: Path, run_id: str):
        self.path = Path(directory) / "lock"
        self.run_id = run_id
        self._fh = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise UserError(f"run {self.run_id} is being trained by another process "
                            f"(lock {self.path} is held); not starting a second copy") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"{os.getpid()}\n")
        self._fh.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()

    @staticmethod
    def held(directory: Path) -> bool:
        """Whether a live process holds the lock of the run whose checkpoint folder this is."""
        path = Path(directory) / "lock"
        if not path.exists():
            return False
        if not path.is_file():  # a folder or a FIFO there: no lock, and never opened
            raise UserError(f"{path}: the run's lock is not a file; remove it")
        with open(path, "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
        return False
