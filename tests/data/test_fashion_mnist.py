import numpy as np
import pytest

from benchmark.core.errors import UserError
from benchmark.data import load_dataset
from benchmark.data.fashion_mnist import read_idx
from tests.datafiles import write_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_reader_matches_torchvision(tmp_path, suffix):
    mnist = pytest.importorskip("torchvision.datasets.mnist")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 7).astype(np.uint8)
    write_idx(tmp_path / f"img{suffix}", images)
    write_idx(tmp_path / f"lab{suffix}", labels)
    np.testing.assert_array_equal(read_idx(tmp_path / f"img{suffix}"), images)
    if not suffix:  # torchvision's reader takes uncompressed files only
        ref = mnist.read_image_file(str(tmp_path / "img")).numpy()
        np.testing.assert_array_equal(read_idx(tmp_path / "img"), ref)
        np.testing.assert_array_equal(read_idx(tmp_path / "lab"),
                                      mnist.read_label_file(str(tmp_path / "lab")).numpy())


def test_idx_reader_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(UserError, match="bad magic"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "short", np.zeros((4, 2, 2), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-3])
    with pytest.raises(UserError, match="IDX header says"):
        read_idx(tmp_path / "short")


def test_torchvision_layout_under_data_root(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (30, 28, 28), dtype=np.uint8))
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(30, dtype=np.uint8) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8))
    rec = load_dataset("fashion_mnist", data_root=tmp_path)
    assert rec.train_x.shape == (30, 1, 28, 28) and rec.test_y.tolist() == list(range(10))


def test_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(UserError) as err:
        load_dataset("fashion_mnist", data_root=tmp_path)
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "--download" in msg and str(tmp_path) in msg


def test_debian_fashion_mnist(fashion_mnist_dir):
    rec = load_dataset("fashion_mnist")
    assert rec.train_x.shape == (60_000, 1, 28, 28) and rec.test_x.shape == (10_000, 1, 28, 28)
    assert np.bincount(rec.train_y).tolist() == [6000] * 10
    assert np.bincount(rec.test_y).tolist() == [1000] * 10
    assert rec.class_names[0] == "T-shirt/top" and rec.class_names[9] == "Ankle boot"
    assert abs(rec.mean[0] - 0.2860) < 1e-3 and abs(rec.std[0] - 0.3530) < 1e-3
