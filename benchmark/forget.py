"""`noisykd forget RUN_DIR...`: make the workflow train runs again, from scratch.

A finished run is never redone: its ``metrics.json`` marks it finished, and a copy of its
outputs in ``results/<study>/checkpoints/<run>/finished`` brings them back when Snakemake reruns a
job (so the other runs of a packed job are not retrained). To retrain one run, both must
go: this removes the run folder and its checkpoint folder, after checking every argument
(nothing is removed when one of them is not a run, or a run is training now). The next
``snakemake`` with the same config then trains exactly those runs; the other runs of their
jobs are restored, and students of a forgotten teacher are retrained because their input
changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import UserError
from .runinfo import default_checkpoint_dir, split_run
from .runlock import RunLock


def _is_run(path: Path) -> str | None:
    """'student' or 'teacher' when ``path`` is a run folder of a study."""
    split = split_run(path)
    if split is None:
        return None
    return "student" if split[1].parts[0] == "runs" else "teacher"


def forget(run_dirs: list[Path]) -> list[str]:
    """Remove each run's folder and checkpoint folder; returns one line per run."""
    plan = []
    for d in run_dirs:
        d = Path(d)
        kind = _is_run(d)
        ckpt = default_checkpoint_dir(d)
        if kind is None:
            raise UserError(f"{d}: not a run folder (results/<study>/runs/<dataset>/<noise>/"
                            "<setup>/<method>/seed<N> or results/<study>/teachers/<dataset>/"
                            "<noise>/<teacher>/seed<N>); nothing removed")
        if not d.exists() and not ckpt.exists():
            raise UserError(f"{d}: no such run and no checkpoint; nothing removed")
        if RunLock.held(ckpt):
            raise UserError(f"{d}: is training now (its lock in {ckpt} is held); nothing "
                            "removed")
        plan.append((d, ckpt, kind))
    lines = []
    for d, ckpt, kind in plan:
        for path in (d, ckpt):
            if path.exists():
                shutil.rmtree(path)
        note = (" (its students are retrained too: their teacher changed)"
                if kind == "teacher" else "")
        lines.append(f"forgot {d} and {ckpt}{note}")
    return lines
