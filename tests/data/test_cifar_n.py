import io
import pickle
import zipfile

import numpy as np
import pytest

from benchmark.core.errors import UserError
from benchmark.data import get_entry
from benchmark.data.cifar_n import load_human_labels, read_cifar_n
from benchmark.data.labels import LabelsRequest, build_labels
from benchmark.data.noise import NoiseSpec
from tests.datafiles import Evil, write_cifar10


def write_cifar10n(path, clean, seed=0, flip=0.3):
    """A file in the published format: torch.save of a dict of numpy int64 arrays."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    out = {"clean_label": np.asarray(clean, dtype=np.int64)}
    for key in ("aggre_label", "worse_label", "random_label1", "random_label2", "random_label3"):
        noisy = out["clean_label"].copy()
        flip_idx = rng.random(len(noisy)) < flip
        noisy[flip_idx] = (noisy[flip_idx] + 1 + rng.integers(0, 9, flip_idx.sum())) % 10
        out[key] = noisy
    torch.save(out, path)
    return out


def test_parser_reads_published_format(tmp_path):
    made = write_cifar10n(tmp_path / "CIFAR-10_human.pt", np.arange(50) % 10)
    got = read_cifar_n(tmp_path / "CIFAR-10_human.pt")
    assert set(got) == set(made)
    for k in made:
        np.testing.assert_array_equal(got[k], made[k])


def test_made_file_is_flagged_unverified(tmp_path, capsys):
    write_cifar10n(tmp_path / "CIFAR-10_human.pt", np.arange(50) % 10)
    human = load_human_labels(get_entry("cifar10"), "worst", cifar_n_dir=tmp_path)
    assert not human.verified
    assert "differs from the published" in capsys.readouterr().err


def _torch_zip(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/version", "3\n")


def test_tampered_pt_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    _torch_zip(tmp_path / "CIFAR-10_human.pt",
               pickle.dumps({"clean_label": Evil(marker)}, protocol=2))
    with pytest.raises(UserError, match="refusing to load global"):
        read_cifar_n(tmp_path / "CIFAR-10_human.pt")
    assert not marker.exists()


def test_torch_tensors_are_refused(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"clean_label": torch.arange(5)}, tmp_path / "t.pt")
    with pytest.raises(UserError, match="refusing"):
        read_cifar_n(tmp_path / "t.pt")


def test_unequal_lengths_are_refused(tmp_path):
    buf = io.BytesIO()
    pickle.dump({"clean_label": np.zeros(3, np.int64), "aggre_label": np.zeros(4, np.int64)},
                buf, protocol=2)
    (tmp_path / "x.pkl").write_bytes(buf.getvalue())
    with pytest.raises(UserError, match="differ in length"):
        read_cifar_n(tmp_path / "x.pkl")


def test_missing_file_names_where_to_get_it(tmp_path):
    with pytest.raises(UserError) as err:
        load_human_labels(get_entry("cifar10"), "aggre", cifar_n_dir=tmp_path)
    assert "CIFAR-10_human.pt" in str(err.value) and "cifar-10-100n" in str(err.value)


@pytest.mark.parametrize(("name", "key", "rate"), [
    ("CIFAR-10_human.pt", "aggre_label", 0.0901),
    ("CIFAR-10_human.pt", "worse_label", 0.4021),
    ("CIFAR-100_human.pt", "noisy_label", 0.4020),
])
def test_real_files_realise_published_rates(cifar_n_dir, name, key, rate):
    arrays = read_cifar_n(cifar_n_dir / name)
    assert len(arrays["clean_label"]) == 50_000
    assert round(float(np.mean(arrays[key] != arrays["clean_label"])), 4) == rate


def test_real_random_variants_and_checksums(cifar_n_dir):
    arrays = read_cifar_n(cifar_n_dir / "CIFAR-10_human.pt")
    for k in ("random_label1", "random_label2", "random_label3"):
        assert 0.16 < np.mean(arrays[k] != arrays["clean_label"]) < 0.19
    for variant, entry in (("aggre", "cifar10"), ("noisy", "cifar100")):
        assert load_human_labels(get_entry(entry), variant, cifar_n_dir=cifar_n_dir).verified


def test_human_labels_file_pipeline(tmp_path):
    """Tiny CIFAR-10 plus a matching CIFAR-N file: another seed gives another split, the same
    human label for every training-pool image, and clean validation/test labels."""
    from benchmark.data import load_dataset

    write_cifar10(tmp_path / "data", per_batch=40, n_test=20)
    record = load_dataset("cifar10", data_root=tmp_path / "data")
    made = write_cifar10n(tmp_path / "CIFAR-10_human.pt", record.train_y, seed=2)
    files = [build_labels(LabelsRequest("cifar10", NoiseSpec("human", variant="worst"), seed,
                                        data_root=tmp_path / "data", cifar_n_dir=tmp_path))
             for seed in (0, 1)]
    for f in files:
        np.testing.assert_array_equal(f["train_noisy"], made["worse_label"][f["train_idx"]])
        np.testing.assert_array_equal(f["val_labels"], record.train_y[f["val_idx"]])
        np.testing.assert_array_equal(f["test_labels"], record.test_y)
    assert not np.array_equal(files[0]["train_idx"], files[1]["train_idx"])


def test_human_file_of_another_dataset_copy_is_refused(tmp_path):
    write_cifar10(tmp_path / "data", per_batch=40, n_test=20)
    write_cifar10n(tmp_path / "CIFAR-10_human.pt", np.zeros(200, np.int64))
    req = LabelsRequest("cifar10", NoiseSpec("human", variant="aggre"), 0,
                        data_root=tmp_path / "data", cifar_n_dir=tmp_path)
    with pytest.raises(UserError, match="does not match cifar10's training labels"):
        build_labels(req)
