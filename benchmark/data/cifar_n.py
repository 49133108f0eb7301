"""CIFAR-10N / CIFAR-100N human label files (Wei et al., ICLR 2022).

The published files are ``torch.save`` archives of dicts of numpy arrays; they are read with
the numpy-only unpickler, so a tampered file cannot run code. Their md5 is compared with the
published one and the result recorded; a file that differs is still read (the unpickler is
what keeps it safe) but is flagged as unverified.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.core.errors import UserError
from benchmark.data.registry import DatasetEntry, default_data_root
from benchmark.data.safe_pickle import as_int_labels, load_numpy_pickle

PUBLISHED_MD5 = {
    "CIFAR-10_human.pt": "96644db5574813cae939af5f7f2a0aec",
    "CIFAR-100_human.pt": "a67b45c1d7992051865b5c755bd68bb1",
}
SOURCE_HINT = ("the UCSC-REAL/cifar-10-100n repository's data/ folder "
               "(Wei et al., ICLR 2022; CC BY-NC 4.0)")


@dataclass(frozen=True)
class HumanLabels:
    clean: np.ndarray
    noisy: np.ndarray
    path: Path
    md5: str
    verified: bool


def read_cifar_n(path: str | Path) -> dict[str, np.ndarray]:
    """All label arrays of one CIFAR-N file, as int64, checked to be of equal length."""
    path = Path(path)
    obj = load_numpy_pickle(path)
    if not isinstance(obj, dict) or "clean_label" not in obj:
        raise UserError(f"{path}: expected a dict with 'clean_label' (the CIFAR-N format)")
    arrays = {str(k): as_int_labels(v, f"{path}: '{k}'") for k, v in obj.items()}
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise UserError(f"{path}: label arrays differ in length: {lengths}")
    return arrays


def search_dirs(cifar_n_dir: Path | None, data_root: Path | None) -> list[Path]:
    if cifar_n_dir is not None:
        return [Path(cifar_n_dir)]
    dirs = []
    if os.environ.get("NOISYKD_CIFARN_DIR"):
        dirs.append(Path(os.environ["NOISYKD_CIFARN_DIR"]))
    root = data_root if data_root is not None else default_data_root()
    dirs += [root / "cifar-n", root / "CIFAR-N", root]
    return dirs


def load_human_labels(entry: DatasetEntry, variant: str, *, cifar_n_dir: Path | None = None,
                      data_root: Path | None = None) -> HumanLabels:
    if variant not in entry.human_variants:
        raise UserError(f"human noise variant {variant!r} does not exist for {entry.name}; "
                        f"variants: {', '.join(entry.human_variants)}")
    dirs = search_dirs(cifar_n_dir, data_root)
    path = next((d / entry.human_file for d in dirs if (d / entry.human_file).is_file()), None)
    if path is None:
        raise UserError(
            f"{entry.human_file} not found for human noise on {entry.name}: looked in "
            f"{', '.join(map(str, dirs))}. Get it from {SOURCE_HINT} and pass --cifar-n-dir "
            "(config key cifar_n_dir) or set $NOISYKD_CIFARN_DIR."
        )
    arrays = read_cifar_n(path)
    key = entry.human_variants[variant]
    if key not in arrays:
        raise UserError(f"{path}: no '{key}' array for variant {variant!r}")
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    verified = PUBLISHED_MD5.get(entry.human_file) == md5
    if not verified:
        print(f"warning: {path} differs from the published {entry.human_file} "
              f"(md5 {md5}); read with the numpy-only unpickler, recorded as unverified",
              file=sys.stderr)
    return HumanLabels(arrays["clean_label"], arrays[key], path, md5, verified)
