"""Checkpoints and resume (the per-run lock is in runlock.py, re-exported here).

Checkpoints live outside a run's declared outputs (``results/<study>/checkpoints/<run>`` for
a run in ``results/<study>/<run>``): Snakemake deletes the declared outputs of an incomplete
job before it reruns it, and the checkpoint must survive that to be resumed from.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from benchmark.core.atomic import atomic_path
from benchmark.core.layout import default_checkpoint_dir  # noqa: F401 (re-exported)
from benchmark.core.runlock import RunLock  # noqa: F401 (re-exported)

CHECKPOINT_NAME = "checkpoint.pt"
REQUIRED_KEYS = ("spec_hash", "epoch", "model", "optimizer", "scheduler", "method", "history")


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
