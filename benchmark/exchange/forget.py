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

import os
import shutil
from pathlib import Path

from benchmark.core.errors import UserError
from benchmark.core.layout import FOLDERS, RUN_DEPTH
from benchmark.core.runlock import RunLock

SHAPE = ("results/<study>/runs/<dataset>/<noise>/<setup>/<method>/seed<N> or results/<study>/"
         "teachers/<dataset>/<noise>/<teacher>/seed<N>")


#: folder names of a study's own layout: a "study" of that name is part of another layout
RESERVED = FOLDERS


def _seed_part(name: str) -> bool:
    return name.startswith("seed") and name[4:].isdigit()


def locate(path: Path) -> tuple[Path, Path, str] | None:
    """(study folder, run path below it, 'student' or 'teacher') of a run folder inside a
    results folder (``path`` absolute and normalised); None for anything else."""
    parts = path.parts
    for kind, depth in RUN_DEPTH.items():
        if len(parts) <= depth or parts[-depth] != kind or not _seed_part(parts[-1]):
            continue
        if any(p in ("", ".", "..") for p in parts[-depth:]):
            continue
        study = Path(*parts[:-depth])
        # the study folder is results/<study> (or results itself, the layout before studies)
        if study.name == "results" or (study.parent.name == "results"
                                       and study.name not in RESERVED):
            return study, Path(*parts[-depth:]), "student" if kind == "runs" else "teacher"
    return None


def _symlink_below(top: Path, rel: Path) -> Path | None:
    """The first folder or file from ``top`` down along ``rel`` that is a symlink."""
    here = top
    for part in rel.parts:
        here = here / part
        if here.is_symlink():
            return here
    return None


def _check(arg: Path) -> tuple[Path, Path, str]:
    """The run folder and checkpoint folder that ``arg`` names, after every check.

    The study is found on the path as written (``..`` taken lexically), so a study or a
    results folder that is itself a symlink (results/big -> /scratch/big) is a study like
    any other; below the study nothing may be a symlink, and the path must resolve to the
    very folder it names there."""
    lexical = Path(os.path.normpath(arg.absolute()))
    found = locate(lexical)
    if found is None:
        raise UserError(f"{arg}: not a run folder inside a results folder ({SHAPE}); "
                        "nothing removed")
    study, rel, kind = found
    link = _symlink_below(study, rel)
    if link is not None:
        raise UserError(f"{arg}: {link} is a symlink; forget removes only the folders "
                        "themselves; nothing removed")
    real = arg.resolve()
    if real != study.resolve() / rel:
        raise UserError(f"{arg}: resolves to {real}, not to the run folder {study / rel} it "
                        "names (a symlink or .. on the way); nothing removed")
    ckpt = study / "checkpoints" / rel
    link = _symlink_below(study, Path("checkpoints") / rel)
    if link is not None:
        raise UserError(f"{arg}: its checkpoint folder {ckpt} is or lies under a symlink "
                        f"({link}); nothing removed")
    for path, what in ((real, "not a folder"), (ckpt, "its checkpoint path is not a folder")):
        if path.exists() and not path.is_dir():
            raise UserError(f"{arg}: {what} ({path}); nothing removed")
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
