"""Checkpoints, resume and the per-run lock.

Checkpoints live outside a run's declared outputs (``results/<study>/checkpoints/<run>`` for
a run in ``results/<study>/<run>``): Snakemake deletes the declared outputs of an incomplete
job before it reruns it, and the checkpoint must survive that to be resumed from.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import torch

from .errors import UserError
from .runinfo import atomic_path, default_checkpoint_dir  # noqa: F401 (re-exported)

CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED_KEYS = ("spec_hash", "epoch", "model", "optimizer", "scheduler", "method", "history")


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


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, spec_hash: str, run_id: str) -> dict | None:
    """The checkpoint's state, or None (and a note on stderr) when the run must start over."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing = [k for k in REQUIRED_KEYS if k not in state]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint means the same thing
        print(f"run {run_id}: checkpoint {path} is truncated or corrupted ({exc}); "
              "starting this run over", file=sys.stderr)
        path.unlink()
        return None
    if state["spec_hash"] != spec_hash:
        print(f"run {run_id}: checkpoint {path} belongs to another spec "
              f"({state['spec_hash']} != {spec_hash}); starting this run over", file=sys.stderr)
        return None
    return state
