"""The one in-memory form every dataset takes, whatever its source format."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class DatasetRecord:
    """A dataset's training pool and test set, before any split or noise.

    ``train_*`` is the pool the clean validation set is later carved from; ``test_*`` is the
    official test set, or, for datasets without one, a stratified split carved once with a
    fixed seed (``test_source`` says which), so it is the same for every run seed.

    Images are uint8 NCHW; tabular data are float32 [N, D]. ``mean``/``std`` are per channel
    on the [0, 1] scale for images and per feature for tabular data, computed on the pool.
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test_source: str

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            x, y = getattr(self, f"{part}_x"), getattr(self, f"{part}_y")
            if len(x) != len(y):
                raise ValueError(f"{self.name}: {part} has {len(x)} inputs but {len(y)} labels")
            if y.dtype != np.int64:
                raise TypeError(f"{self.name}: {part} labels must be int64, got {y.dtype}")
            if x.dtype not in (np.uint8, np.float32):
                raise TypeError(f"{self.name}: {part} inputs must be uint8 or float32")
            if len(y) and (y.min() < 0 or y.max() >= self.num_classes):
                raise ValueError(f"{self.name}: {part} labels outside [0, {self.num_classes})")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_image(self) -> bool:
        return self.train_x.ndim == 4

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    def features(self, x: np.ndarray) -> np.ndarray:
        """Inputs as normalised float32 vectors [N, D] (what ``instance-std`` noise projects)."""
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if self.is_image:
            xf = x.astype(np.float32) / 255.0
            xf = (xf - mean[None, :, None, None]) / std[None, :, None, None]
        else:
            xf = (x.astype(np.float32) - mean) / std
        return xf.reshape(len(x), -1)

    def raw_features(self, x: np.ndarray) -> np.ndarray:
        """Inputs as stored, flattened to float32 vectors [N, D] (what ``instance`` noise
        projects): pixel values 0..255 for images, not divided by 255, in NCHW order, as
        Xia et al. feed ``torch.from_numpy(images).float()`` to their noise (data.py @ b682527);
        the stored feature values for tabular data. float32 holds 0..255 exactly."""
        return x.astype(np.float32).reshape(len(x), -1)

    def fingerprint(self) -> str:
        """A short hash of what identifies the data: shapes, classes and labels.

        Labels files store it, so a labels file can be refused when used with another
        dataset (or another version of the same one).
        """
        h = hashlib.sha256()
        h.update(self.name.encode())
        h.update(repr((self.train_x.shape, self.test_x.shape, self.class_names)).encode())
        h.update(self.train_y.tobytes())
        h.update(self.test_y.tobytes())
        return h.hexdigest()[:16]


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (population, ddof 0) on the [0, 1] scale for uint8 NCHW, per
    feature otherwise.

    uint8 images are summarised from exact integer sums (the variance as (n*S2 - S1^2) / n^2,
    its numerator exact in Python integers): the same statistics as over the float64 pixels,
    to rounding (relative 1e-15; the loaders hand on their float32 rounding), in 0.06 s
    instead of 0.37 s for Fashion-MNIST's training set (scripts/bench_startup.py, idle
    2-core machine; 2.1 s beside the test suite), and every training job loads its data."""
    if x.ndim == 4 and x.dtype == np.uint8:
        mean, std = [], []
        for c in range(x.shape[1]):
            xc = x[:, c]
            n = xc.size
            s1 = int(xc.sum(dtype=np.int64))
            s2 = int(np.square(xc, dtype=np.uint16).sum(dtype=np.int64))
            mean.append(s1 / n / 255.0)
            std.append(float(np.sqrt((n * s2 - s1 * s1) / (n * n))) / 255.0)
        mean, std = np.array(mean), np.array(std)
    else:
        axes = (0, 2, 3) if x.ndim == 4 else (0,)
        xf = x.astype(np.float64) / (255.0 if x.ndim == 4 else 1.0)
        mean = xf.mean(axis=axes)
        std = xf.std(axis=axes)
    std = np.where(std > 0, std, 1.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def make_record(name, train_x, train_y, test_x, test_y, class_names, test_source) -> DatasetRecord:
    mean, std = channel_stats(train_x)
    return DatasetRecord(
        name=name,
        train_x=np.ascontiguousarray(train_x),
        train_y=np.asarray(train_y, dtype=np.int64),
        test_x=np.ascontiguousarray(test_x),
        test_y=np.asarray(test_y, dtype=np.int64),
        class_names=tuple(str(c) for c in class_names),
        mean=mean,
        std=std,
        test_source=test_source,
    )


def carve_test_split(x, y, test_fraction: float, seed: int):
    """A stratified test split fixed by ``seed`` (not by the run seed) for datasets without one."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    pool, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    pool, test = np.sort(pool), np.sort(test)
    return x[pool], y[pool], x[test], y[test]
