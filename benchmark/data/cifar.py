"""CIFAR-10 and CIFAR-100 in torchvision's on-disk format.

The files are read here with the numpy-only unpickler rather than through
``torchvision.datasets.CIFAR10``: a labels job then needs no torch import (about 5 s a
process on small machines), and the integrity check that torchvision runs (md5 of the
official batches) would refuse the tiny archives tests make. torchvision is still what
downloads, when the user asks for it, and so what defines the layout.
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from benchmark.core.errors import UserError
from benchmark.data.record import make_record
from benchmark.data.registry import default_data_root, register_dataset
from benchmark.data.safe_pickle import as_int_labels, load_numpy_pickle

LAYOUTS = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "archive": "cifar-10-python.tar.gz",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "labels_key": "labels",
        "names_key": "label_names",
        "torchvision": "CIFAR10",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "archive": "cifar-100-python.tar.gz",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "labels_key": "fine_labels",
        "names_key": "fine_label_names",
        "torchvision": "CIFAR100",
    },
}

CIFAR10_HUMAN = {
    "aggre": "aggre_label",
    "worst": "worse_label",
    "random1": "random_label1",
    "random2": "random_label2",
    "random3": "random_label3",
}
CIFAR100_HUMAN = {"noisy": "noisy_label"}


def _extract(archive: Path, root: Path, folder: str) -> None:
    """Unpack a downloaded archive next to itself, so a killed extraction leaves no half folder."""
    with tempfile.TemporaryDirectory(dir=root, prefix=".extract-") as tmp:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        if not (Path(tmp) / folder).is_dir():
            raise UserError(f"{archive}: archive has no {folder}/ folder")
        (Path(tmp) / folder).rename(root / folder)


def _read_batches(folder: Path, names: list[str], labels_key: str):
    xs, ys = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise UserError(f"CIFAR file missing: {path}")
        entry = load_numpy_pickle(path)
        if not isinstance(entry, dict) or "data" not in entry or labels_key not in entry:
            raise UserError(f"{path}: expected a dict with 'data' and '{labels_key}'")
        data = np.asarray(entry["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise UserError(f"{path}: 'data' has shape {data.shape}, expected (N, 3072)")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(as_int_labels(entry[labels_key], f"{path}: '{labels_key}'"))
    return np.concatenate(xs), np.concatenate(ys)


def locate_cifar(name: str, data_root: Path | None, download: bool) -> Path:
    layout = LAYOUTS[name]
    root = data_root if data_root is not None else default_data_root()
    folder = root / layout["folder"]
    if folder.is_dir():
        return folder
    archive = root / layout["archive"]
    if archive.is_file():
        _extract(archive, root, layout["folder"])
        return folder
    if download:
        import torchvision.datasets

        print(f"downloading {name} into {root} (torchvision)", file=sys.stderr)
        root.mkdir(parents=True, exist_ok=True)
        cls = getattr(torchvision.datasets, layout["torchvision"])
        for train in (True, False):
            cls(root=str(root), train=train, download=True)
        return folder
    raise UserError(
        f"{name} not found: expected {folder}/ or {archive} "
        f"(data root {root}; set --data-root / data_root or $NOISYKD_DATA_ROOT). "
        f"It cannot be downloaded offline; on a machine with network pass --download "
        f"(torchvision fetches it), or copy torchvision's {layout['folder']}/ folder there."
    )


def _load(name: str, data_root, download):
    layout = LAYOUTS[name]
    folder = locate_cifar(name, data_root, download)
    train_x, train_y = _read_batches(folder, layout["train"], layout["labels_key"])
    test_x, test_y = _read_batches(folder, layout["test"], layout["labels_key"])
    meta_path = folder / layout["meta"]
    meta = load_numpy_pickle(meta_path) if meta_path.is_file() else None
    if not isinstance(meta, dict) or layout["names_key"] not in meta:
        raise UserError(f"{meta_path}: missing or without '{layout['names_key']}'")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[layout["names_key"]]]
    return make_record(name, train_x, train_y, test_x, test_y, names, "official")


@register_dataset("cifar10", num_classes=10, kind="image", human_variants=CIFAR10_HUMAN,
                  human_file="CIFAR-10_human.pt", description="CIFAR-10 (torchvision format)")
def load_cifar10(data_root=None, download=False):
    return _load("cifar10", data_root, download)


@register_dataset("cifar100", num_classes=100, kind="image", human_variants=CIFAR100_HUMAN,
                  human_file="CIFAR-100_human.pt", description="CIFAR-100 (torchvision format)")
def load_cifar100(data_root=None, download=False):
    return _load("cifar100", data_root, download)
