"""Tiny dataset files in the exact on-disk formats, made by the tests (never downloaded)."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]


def _batch(rng, n, num_classes, labels_key, label):
    labels = (np.arange(n) % num_classes)
    rng.shuffle(labels)
    entry = {
        "batch_label": label,
        labels_key: [int(v) for v in labels],
        "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        "filenames": [f"img_{i}.png" for i in range(n)],
    }
    if labels_key == "fine_labels":
        entry["coarse_labels"] = [int(v) // 5 for v in labels]
    return entry


def write_cifar10(root: Path, per_batch: int = 20, n_test: int = 20, seed: int = 0,
                  archive: bool = False) -> Path:
    """torchvision's cifar-10-batches-py/ layout (or its .tar.gz) with tiny batches."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        _dump(folder / f"data_batch_{i}",
              _batch(rng, per_batch, 10, "labels", f"training batch {i} of 5"))
    _dump(folder / "test_batch", _batch(rng, n_test, 10, "labels", "testing batch 1 of 1"))
    _dump(folder / "batches.meta", {"num_cases_per_batch": per_batch,
                                     "label_names": CIFAR10_NAMES, "num_vis": 3072})
    if archive:
        _to_archive(root, folder, "cifar-10-python.tar.gz")
    return root


def write_cifar100(root: Path, n_train: int = 200, n_test: int = 100, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    _dump(folder / "train", _batch(rng, n_train, 100, "fine_labels", "training batch 1 of 1"))
    _dump(folder / "test", _batch(rng, n_test, 100, "fine_labels", "testing batch 1 of 1"))
    _dump(folder / "meta", {"fine_label_names": [f"fine_{i}" for i in range(100)],
                            "coarse_label_names": [f"coarse_{i}" for i in range(20)]})
    return root


def _dump(path: Path, obj) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def _to_archive(root: Path, folder: Path, name: str) -> None:
    with tarfile.open(root / name, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX as LeCun's page defines it (uint8 data), gzip-compressed when the name ends .gz."""
    import gzip

    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        fh.write(raw)


class Evil:
    """A pickle payload that would create ``marker`` if it were ever unpickled naively."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))
