"""`noisykd forget RUN_DIR...`: make the workflow train runs again, from scratch.

A finished run is never redone: its ``metrics.json`` marks it finished, and a copy of its
outputs in ``results/<study>/checkpoints/<run>/finished`` brings them back when Snakemake reruns a
job (so the other runs of a packed job are not retrained). To retrain one run, both must
go: this removes the run folder and its checkpoint folder, after checking every argument
(nothing is removed when one of them is not a run, or a run is training now). The next
``snakemake`` with the same config then trains exactly those runs; the other runs of their
jobs are restored, and students of a forgotten teacher are retrained because their input
changed.

Nothing outside a study is ever removed. Each argument is resolved first (``..`` and every
symlinked parent followed to the real folder), and the real folder must be a run folder
strictly inside a results folder: ``.../results/<study>/runs/<dataset>/<noise>/<setup>/
<method>/seed<N>`` or ``.../results/<study>/teachers/<dataset>/<noise>/<teacher>/seed<N>``
(or the same without ``<study>``, the layout before studies). The run folder and its
checkpoint folder must not themselves be symlinks, and the checkpoint folder must resolve to
``<study>/checkpoints/<the same run path>``. Every check is made for every argument before
anything is removed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import UserError
from .runinfo import RUN_DEPTH
from .runlock import RunLock

SHAPE = ("results/<study>/runs/<dataset>/<noise>/<setup>/<method>/seed<N> or results/<study>/"
         "teachers/<dataset>/<noise>/<teacher>/seed<N>")


def _seed_part(name: str) -> bool:
    return name.startswith("seed") and name[4:].isdigit()


def locate(path: Path) -> tuple[Path, Path, str] | None:
    """(study folder, run path below it, 'student' or 'teacher') of a resolved run folder
    inside a results folder; None for anything else."""
    parts = path.parts
    for kind, depth in RUN_DEPTH.items():
        if len(parts) <= depth or parts[-depth] != kind or not _seed_part(parts[-1]):
            continue
        if any(p in ("", ".", "..") for p in parts[-depth:]):
            continue
        study = Path(*parts[:-depth])
        # the study folder is results/<study> (or results itself, the layout before studies)
        if study.name == "results" or (study.parent.name == "results" and study.name):
            return study, Path(*parts[-depth:]), "student" if kind == "runs" else "teacher"
    return None


def _check(arg: Path) -> tuple[Path, Path, str]:
    """The run folder and checkpoint folder that ``arg`` names, after every check."""
    if arg.is_symlink():
        raise UserError(f"{arg}: is a symlink; forget takes the run folder itself; nothing "
                        "removed")
    real = arg.resolve()  # .. and symlinked parents followed
    found = locate(real)
    if found is None:
        where = f" (resolves to {real})" if real != arg.absolute() else ""
        raise UserError(f"{arg}{where}: not a run folder inside a results folder ({SHAPE}); "
                        "nothing removed")
    study, rel, kind = found
    ckpt = study / "checkpoints" / rel
    if ckpt.is_symlink() or any(p.is_symlink() for p in ckpt.parents
                                if p.is_relative_to(study / "checkpoints")):
        raise UserError(f"{arg}: its checkpoint folder {ckpt} is or lies under a symlink; "
                        "nothing removed")
    if ckpt.exists() and ckpt.resolve() != ckpt:
        raise UserError(f"{arg}: its checkpoint folder {ckpt} resolves to {ckpt.resolve()}, "
                        "outside the study; nothing removed")
    if real.exists() and not real.is_dir():
        raise UserError(f"{arg}: not a folder; nothing removed")
    if not real.exists() and not ckpt.exists():
        raise UserError(f"{arg}: no such run and no checkpoint; nothing removed")
    if RunLock.held(ckpt):
        raise UserError(f"{arg}: is training now (its lock in {ckpt} is held); nothing "
                        "removed")
    return real, ckpt, kind


def forget(run_dirs: list[Path]) -> list[str]:
    """Remove each run's folder and checkpoint folder; returns one line per run."""
    plan = [_check(Path(d)) for d in run_dirs]
    lines = []
    for d, ckpt, kind in plan:
        for path in (d, ckpt):
            if path.exists():
                try:
                    shutil.rmtree(path)
                except OSError as exc:
                    raise UserError(f"{path}: could not be removed ({exc.strerror or exc})"
                                    ) from exc
        note = (" (its students are retrained too: their teacher changed)"
                if kind == "teacher" else "")
        lines.append(f"forgot {d} and {ckpt}{note}")
    return lines
