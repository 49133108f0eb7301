import pickle

import numpy as np
import pytest

from benchmark.core.errors import UserError
from benchmark.data import load_dataset
from tests.datafiles import CIFAR10_NAMES, Evil, write_cifar10, write_cifar100


def test_cifar10_tiny_folder(tmp_path):
    write_cifar10(tmp_path)
    rec = load_dataset("cifar10", data_root=tmp_path)
    assert rec.train_x.shape == (100, 3, 32, 32) and rec.train_x.dtype == np.uint8
    assert rec.test_x.shape == (20, 3, 32, 32)
    assert rec.class_names == tuple(CIFAR10_NAMES)
    assert rec.test_source == "official"


def test_cifar10_matches_torchvision_reader(tmp_path, monkeypatch):
    """Our numpy reader against torchvision's own CIFAR10 class on the same files (its md5
    integrity check, which only the official batches pass, is switched off)."""
    tv = pytest.importorskip("torchvision.datasets")
    import torchvision.datasets.cifar as tv_cifar

    write_cifar10(tmp_path, seed=3)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    monkeypatch.setattr(tv.CIFAR10, "_check_integrity", lambda self: True)
    ours = load_dataset("cifar10", data_root=tmp_path)
    for train, x, y in ((True, ours.train_x, ours.train_y), (False, ours.test_x, ours.test_y)):
        ref = tv.CIFAR10(str(tmp_path), train=train, download=False)
        np.testing.assert_array_equal(x.transpose(0, 2, 3, 1), ref.data)
        np.testing.assert_array_equal(y, ref.targets)
    assert list(ours.class_names) == ref.classes


def test_cifar10_from_archive(tmp_path):
    write_cifar10(tmp_path / "a", seed=1)
    write_cifar10(tmp_path / "b", seed=1, archive=True)
    assert not (tmp_path / "b" / "cifar-10-batches-py").exists()
    a = load_dataset("cifar10", data_root=tmp_path / "a")
    b = load_dataset("cifar10", data_root=tmp_path / "b")
    np.testing.assert_array_equal(a.train_x, b.train_x)
    assert a.fingerprint() == b.fingerprint()
    assert not list((tmp_path / "b").glob(".extract-*"))


def test_cifar100_tiny_folder(tmp_path):
    write_cifar100(tmp_path)
    rec = load_dataset("cifar100", data_root=tmp_path)
    assert rec.num_classes == 100 and len(rec.train_y) == 200 and len(rec.test_y) == 100
    assert np.bincount(rec.train_y).tolist() == [2] * 100


def test_missing_cifar_says_how_to_get_it(tmp_path):
    with pytest.raises(UserError) as err:
        load_dataset("cifar10", data_root=tmp_path)
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "--download" in msg and str(tmp_path) in msg


def test_tampered_cifar_pickle_is_refused(tmp_path):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as fh:
        pickle.dump({"data": Evil(marker), "labels": [0]}, fh, protocol=2)
    with pytest.raises(UserError, match="refusing to load global"):
        load_dataset("cifar10", data_root=tmp_path)
    assert not marker.exists()


def test_cifar_batch_with_wrong_shape(tmp_path):
    write_cifar10(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as fh:
        pickle.dump({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, fh, protocol=2)
    with pytest.raises(UserError, match=r"test_batch: 'data' has shape \(2, 100\)"):
        load_dataset("cifar10", data_root=tmp_path)
