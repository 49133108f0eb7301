"""Any class-per-folder image tree (fine-grained sets and the like).

Layout: ``ROOT/train/<class>/*`` with an optional ``ROOT/test/<class>/*``; without a test
folder (or with a single ``ROOT/<class>/*`` tree) a stratified test split is carved once
with a fixed seed. Images are resized to ``image_size`` squares (RGB) so the whole set can
live on the training device as one uint8 tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.core.errors import UserError
from benchmark.data.record import carve_test_split, make_record
from benchmark.data.registry import register_dataset
from benchmark.data.tabular import CARVED_TEST_SEED

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGEFOLDER_TEST_FRACTION = 0.2


def _scan(tree: Path, classes: list[str] | None = None):
    found = sorted(d.name for d in tree.iterdir() if d.is_dir() and not d.name.startswith("."))
    if classes is None:
        classes = found
    elif found != classes:
        raise UserError(f"{tree}: class folders {found} differ from the training classes {classes}")
    files, labels = [], []
    for label, name in enumerate(classes):
        for f in sorted((tree / name).rglob("*")):
            if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file():
                files.append(f)
                labels.append(label)
    if not files:
        raise UserError(f"{tree}: no images ({', '.join(IMAGE_EXTENSIONS)}) in class folders")
    return classes, files, np.asarray(labels, dtype=np.int64)


def _read_images(files: list[Path], size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("RGB").resize((size, size), Image.BILINEAR)
        except OSError as exc:
            raise UserError(f"{f}: cannot read image: {exc}") from None
        out[i] = np.asarray(im).transpose(2, 0, 1)
    return out


@register_dataset("imagefolder", num_classes=None, kind="image",
                  description="class-per-folder image tree (needs data_root)")
def load_imagefolder(data_root=None, download=False, image_size: int = 32):
    if data_root is None:
        raise UserError("imagefolder needs data_root (--data-root): the folder of class folders")
    root = Path(data_root)
    if not root.is_dir():
        raise UserError(f"imagefolder: data_root {root} is not a folder")
    if not isinstance(image_size, int) or image_size < 8:
        raise UserError(f"imagefolder: image_size must be an integer >= 8, got {image_size!r}")
    train_tree = root / "train" if (root / "train").is_dir() else root
    classes, files, labels = _scan(train_tree)
    images = _read_images(files, image_size)
    if (root / "test").is_dir():
        _, test_files, test_y = _scan(root / "test", classes)
        test_x = _read_images(test_files, image_size)
        source = "official (test/ folder)"
        train_x, train_y = images, labels
    else:
        train_x, train_y, test_x, test_y = carve_test_split(
            images, labels, IMAGEFOLDER_TEST_FRACTION, CARVED_TEST_SEED)
        source = f"carved: stratified {IMAGEFOLDER_TEST_FRACTION:.0%}, seed {CARVED_TEST_SEED}"
    return make_record("imagefolder", train_x, train_y, test_x, test_y, classes, source)
