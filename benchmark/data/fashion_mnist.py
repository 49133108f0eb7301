"""Fashion-MNIST from IDX files: the Debian package, a data root, or a torchvision download.

The IDX format is read with numpy (a dozen lines) so that a labels job needs no torch
import; a test checks the reader against torchvision's own IDX reader.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

from benchmark.core.errors import UserError
from benchmark.data.record import make_record
from benchmark.data.registry import default_data_root, register_dataset

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed), as LeCun's MNIST page defines it."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise UserError(f"{path}: cannot read IDX file: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise UserError(f"{path}: IDX header says {shape} but the file has "
                        f"{len(raw) - header} data bytes, not {expected}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def candidate_dirs(data_root: Path | None) -> list[Path]:
    roots = [data_root] if data_root is not None else [default_data_root()]
    dirs = []
    for root in roots:
        dirs += [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    if data_root is None:
        dirs.append(DEBIAN_DIR)
    return dirs


def locate_fashion_mnist(data_root: Path | None, download: bool) -> dict[str, Path]:
    dirs = candidate_dirs(data_root)
    for folder in dirs:
        found = {key: _find(folder, stem) for key, stem in FILES.items()}
        if all(found.values()):
            return found
    if download:
        import torchvision.datasets

        root = data_root if data_root is not None else default_data_root()
        print(f"downloading fashion_mnist into {root} (torchvision)", file=sys.stderr)
        for train in (True, False):
            torchvision.datasets.FashionMNIST(root=str(root), train=train, download=True)
        return locate_fashion_mnist(root, download=False)
    raise UserError(
        "fashion_mnist not found: looked for the four IDX files "
        f"({', '.join(FILES.values())}, optionally .gz) in {', '.join(map(str, dirs))}. "
        "Install them with `apt-get install dataset-fashion-mnist` (Debian, into "
        f"{DEBIAN_DIR}), point --data-root / data_root at a folder that has them, "
        "or pass --download on a machine with network."
    )


@register_dataset("fashion_mnist", num_classes=10, kind="image",
                  description="Fashion-MNIST, 28x28 grey (Debian package or data root)")
def load_fashion_mnist(data_root=None, download=False):
    paths = locate_fashion_mnist(data_root, download)
    arrays = {key: read_idx(p) for key, p in paths.items()}
    for part in ("train", "test"):
        x, y = arrays[f"{part}_x"], arrays[f"{part}_y"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise UserError(f"fashion_mnist {part}: images {x.shape} do not match labels {y.shape} "
                            f"({paths[f'{part}_x']})")
    return make_record(
        "fashion_mnist",
        arrays["train_x"][:, None], arrays["train_y"],
        arrays["test_x"][:, None], arrays["test_y"],
        CLASS_NAMES, "official",
    )
