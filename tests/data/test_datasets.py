import numpy as np
import pytest

from benchmark.core.errors import UserError
from benchmark.data import dataset_names, get_entry, load_dataset
from benchmark.data.record import DatasetRecord


def test_registry_lists_every_dataset():
    assert dataset_names() == ["cifar10", "cifar100", "digits", "fashion_mnist", "imagefolder",
                               "mnist", "synthetic"]
    assert get_entry("cifar10").human_variants and not get_entry("digits").human_variants


def test_unknown_dataset():
    with pytest.raises(UserError, match="unknown dataset 'svhn'; known datasets: cifar10"):
        load_dataset("svhn")


def test_synthetic_is_the_authors_task():
    rec = load_dataset("synthetic")
    assert rec.train_x.shape == (9000, 14) and rec.test_x.shape == (1000, 14)
    assert rec.train_x.dtype == np.float32 and rec.num_classes == 20
    assert np.bincount(rec.test_y).tolist() == [50] * 20  # stratified, balanced classes
    again = load_dataset("synthetic")
    np.testing.assert_array_equal(rec.train_x, again.train_x)


def test_digits_has_a_fixed_stratified_test_split():
    rec = load_dataset("digits")
    assert rec.train_x.shape == (1437, 1, 8, 8) and rec.test_x.shape == (360, 1, 8, 8)
    assert rec.train_x.dtype == np.uint8 and rec.train_x.max() == 255
    assert rec.fingerprint() == load_dataset("digits").fingerprint()
    counts = np.bincount(rec.test_y)
    assert counts.min() >= 35 and counts.max() <= 37


def test_features_are_normalised():
    rec = load_dataset("digits")
    f = rec.features(rec.train_x)
    assert f.shape == (1437, 64)
    assert abs(f.mean()) < 1e-4 and abs(f.std() - 1) < 1e-3


def _png_tree(root, classes, per_class, size=12):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size + 3, 3), dtype=np.uint8)).save(
                root / c / f"{i}.png")


def test_imagefolder_with_test_folder(tmp_path):
    _png_tree(tmp_path / "train", ["cat", "dog"], 5)
    _png_tree(tmp_path / "test", ["cat", "dog"], 2)
    rec = load_dataset("imagefolder", data_root=tmp_path, image_size=16)
    assert rec.train_x.shape == (10, 3, 16, 16) and rec.test_x.shape == (4, 3, 16, 16)
    assert rec.class_names == ("cat", "dog") and rec.test_source.startswith("official")


def test_imagefolder_carves_test_split(tmp_path):
    _png_tree(tmp_path, ["a", "b", "c"], 10)
    rec = load_dataset("imagefolder", data_root=tmp_path)
    assert len(rec.train_y) == 24 and np.bincount(rec.test_y).tolist() == [2, 2, 2]


def test_imagefolder_errors(tmp_path):
    with pytest.raises(UserError, match="needs data_root"):
        load_dataset("imagefolder")
    _png_tree(tmp_path / "train", ["cat", "dog"], 2)
    _png_tree(tmp_path / "test", ["cat", "cow"], 1)
    with pytest.raises(UserError, match="differ from the training classes"):
        load_dataset("imagefolder", data_root=tmp_path)


def test_record_rejects_inconsistent_arrays():
    x = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match="labels outside"):
        DatasetRecord("t", x, np.array([0, 1, 5]), x, np.array([0, 1, 1]), ("a", "b"),
                      (0.0, 0.0), (1.0, 1.0), "official")


def test_channel_stats_match_a_naive_float64_loop():
    """The integer-sum statistics of uint8 images against a naive per-channel loop in
    float64 (population std; a constant channel gets std 1 so normalising divides by 1: its
    exact variance is 0, where summing floats leaves 1e-15 to divide by)."""
    from benchmark.data.record import channel_stats

    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(37, 3, 5, 4), dtype=np.uint8)
    x[:, 1] //= 7  # a channel with another range
    x[:, 2] = 200  # a constant channel
    mean, std = channel_stats(x)
    for c in range(3):
        vals = [float(v) / 255.0 for v in x[:, c].ravel()]
        m = sum(vals) / len(vals)
        s = (sum((v - m) ** 2 for v in vals) / len(vals)) ** 0.5
        assert mean[c] == pytest.approx(m, rel=1e-13)
        assert std[c] == pytest.approx(s if s > 1e-9 else 1.0, rel=1e-12)  # float noise
    assert std[2] == 1.0 and mean[2] == pytest.approx(200 / 255, rel=1e-15)
    feats = rng.normal(2.0, 3.0, size=(50, 4))
    fmean, fstd = channel_stats(feats)  # tabular features: per column, no 255 scale
    np.testing.assert_allclose(fmean, feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(fstd, feats.std(0), rtol=1e-12)
