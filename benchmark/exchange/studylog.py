"""A study's invocation log: which command ran it, from which code, how long it took.

Every Snakemake invocation that ends (success or error, not a dry run) appends one entry to
``results/<study>/invocations.json``: the command line, start and end in UTC, wall time, the
outcome, the study's runs finished and trained by it, the code revision and the versions.
A results bundle carries the log in its manifest, so a published study says how it was run
and what it cost on what machine, without anyone writing that by hand. Torch-free: written
from the Snakefile's onsuccess/onerror handlers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
from importlib import metadata
from pathlib import Path

from benchmark.core.atomic import atomic_write_text
from benchmark.core.layout import LOG_FILE
from benchmark.core.provenance import git_revision

LOG_NAME = LOG_FILE  # invocations.json
VERSIONED = ("snakemake", "torch", "timm", "numpy", "scipy", "statsmodels")


def _versions() -> dict:
    from benchmark import __version__

    out = {"python": platform.python_version(), "noisykd": __version__}
    for dist in VERSIONED:  # installed versions, read without importing torch
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")


def read_log(root: str | os.PathLike) -> list[dict]:
    path = Path(root) / LOG_NAME
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return data if isinstance(data, list) else []


def entry(argv: list[str], started: float, finished: float, ok: bool, runs_finished: int,
          runs_planned: int, trained_now: int) -> dict:
    """One invocation: the command as typed (program name without its folder)."""
    command = shlex.join([Path(argv[0]).name, *argv[1:]]) if argv else ""
    return {"command": command, "started": _iso(started), "finished": _iso(finished),
            "wall_time_s": round(finished - started, 1), "ok": ok,
            "runs_finished": runs_finished, "runs_planned": runs_planned,
            "trained_now": trained_now, "git": git_revision(), "versions": _versions(),
            "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                     "system": platform.system()}}


def append(root: str | os.PathLike, item: dict) -> Path:
    """Add ``item`` to the study's log (rewritten atomically: a killed write loses nothing)."""
    path = Path(root) / LOG_NAME
    atomic_write_text(path, json.dumps(read_log(root) + [item], indent=1) + "\n")
    return path


def training_invocations(log: list[dict]) -> list[dict]:
    """The invocations that trained something (a rerun that only rebuilt tables is not part
    of what the study cost)."""
    return [e for e in log if e.get("trained_now")]
