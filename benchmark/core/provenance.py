"""Where a result came from: the git revision (and whether the tree was dirty), the
versions of the packages that computed it, the device."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path


@functools.lru_cache(maxsize=1)
def git_revision() -> dict:
    """The code's git revision and whether the tree had uncommitted changes (None outside git)."""
    root = Path(__file__).resolve().parents[2]  # the repository
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
