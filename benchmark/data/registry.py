"""Dataset registry: every dataset is reachable by name, like timm's models.

An entry carries what planning needs without loading any data (class count, which human
noise variants exist, which asymmetric class map applies), so a config can be checked
before any job starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.core.errors import UserError
from benchmark.data.record import DatasetRecord


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    loader: Callable[..., DatasetRecord]
    num_classes: int | None  # None: known only after reading the files (imagefolder)
    kind: str  # "image" or "tabular"
    human_variants: dict[str, str] = field(default_factory=dict)  # variant -> key in CIFAR-N file
    human_file: str | None = None  # CIFAR-N file name
    description: str = ""


_REGISTRY: dict[str, DatasetEntry] = {}


def register_dataset(name: str, *, num_classes, kind, description="", human_variants=None,
                     human_file=None):
    """Decorator that registers a loader ``f(data_root, download, **options) -> DatasetRecord``."""

    def wrap(loader):
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} registered twice")
        _REGISTRY[name] = DatasetEntry(name, loader, num_classes, kind, dict(human_variants or {}),
                                       human_file, description)
        return loader

    return wrap


def dataset_names() -> list[str]:
    return sorted(_REGISTRY)


def get_entry(name: str) -> DatasetEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(
            f"unknown dataset {name!r}; known datasets: {', '.join(dataset_names())}"
        ) from None


def default_data_root() -> Path:
    """Where datasets live unless told otherwise: $NOISYKD_DATA_ROOT, else ./data."""
    return Path(os.environ.get("NOISYKD_DATA_ROOT", "data"))


def load_dataset(name: str, data_root: str | os.PathLike | None = None, download: bool = False,
                 **options) -> DatasetRecord:
    entry = get_entry(name)
    root = Path(data_root) if data_root is not None else None
    return entry.loader(data_root=root, download=download, **options)
