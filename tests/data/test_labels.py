import json
import subprocess
import time

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.core.errors import UserError
from benchmark.data import load_dataset
from benchmark.data.labels import LabelsRequest, build_labels, read_labels, write_labels
from benchmark.data.noise import NoiseSpec


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def req(seed=0, noise=None, dataset="synthetic", **kw):
    return LabelsRequest(dataset, noise or NoiseSpec("symmetric", 0.4), seed, **kw)


def test_same_inputs_same_bytes_at_another_time(tmp_path, synthetic):
    write_labels(req(noise=NoiseSpec("instance", 0.4)), tmp_path / "a.npz", synthetic)
    time.sleep(2.1)  # zip timestamps have 2 s resolution
    write_labels(req(noise=NoiseSpec("instance", 0.4)), tmp_path / "b.npz")  # reloads the data
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_another_seed_gives_other_split_and_noise(synthetic):
    a, b = build_labels(req(0), synthetic), build_labels(req(1), synthetic)
    assert not np.array_equal(a["train_idx"], b["train_idx"])
    common = np.intersect1d(a["train_idx"], b["train_idx"])
    na = a["train_noisy"][np.searchsorted(a["train_idx"], common)]
    nb = b["train_noisy"][np.searchsorted(b["train_idx"], common)]
    assert np.mean(na != nb) > 0.3


def test_validation_and_test_stay_clean_and_split_is_stratified(synthetic):
    f = build_labels(req(3, NoiseSpec("symmetric", 0.6)), synthetic)
    pool = synthetic.train_y
    np.testing.assert_array_equal(f["val_labels"], pool[f["val_idx"]])
    np.testing.assert_array_equal(f["test_labels"], synthetic.test_y)
    np.testing.assert_array_equal(f["train_clean"], pool[f["train_idx"]])
    assert len(np.intersect1d(f["train_idx"], f["val_idx"])) == 0
    assert len(f["train_idx"]) + len(f["val_idx"]) == len(pool)
    assert (len(f["train_idx"]), len(f["val_idx"])) == (8100, 900)  # the authors' sizes
    val_counts, pool_counts = np.bincount(f["val_labels"]), np.bincount(pool)
    assert np.all(np.abs(val_counts - 0.1 * pool_counts) <= 1)
    assert np.mean(f["train_noisy"] != f["train_clean"]) > 0.5


def test_file_records_realised_noise(tmp_path, synthetic):
    meta = write_labels(req(2, NoiseSpec("symmetric", 0.4, include_true=True)),
                        tmp_path / "l.npz", synthetic)
    lf = read_labels(tmp_path / "l.npz")
    assert lf.meta == meta
    a = lf.arrays
    assert meta["rate_realised"] == pytest.approx(np.mean(a["train_noisy"] != a["train_clean"]))
    assert meta["rate_expected"] == pytest.approx(a["flip_prob"].mean())
    assert meta["rate_expected"] == pytest.approx(int(8100 * 0.4) / 8100 * 19 / 20)
    assert meta["noise"]["id"] == "symmetric-incl_0.40" and meta["rate_requested"] == 0.4
    assert a["transition_realised"].shape == a["transition_expected"].shape == (20, 20)
    lf.check_dataset(synthetic)
    with pytest.raises(UserError, match="labels file is for synthetic"):
        lf.check_dataset(load_dataset("digits"))


def test_every_offline_noise_type_on_digits(tmp_path):
    rec = load_dataset("digits")
    for spec in (NoiseSpec("symmetric", 0.2), NoiseSpec("asymmetric", 0.4),
                 NoiseSpec("pairflip", 0.45), NoiseSpec("instance", 0.4),
                 NoiseSpec("symmetric", 0.4, include_true=True)):
        meta = write_labels(req(0, spec, dataset="digits"), tmp_path / f"{spec.id}.npz", rec)
        assert meta["n_train"] == 1293 and meta["n_val"] == 144 and meta["n_test"] == 360
        assert abs(meta["rate_realised"] - meta["rate_expected"]) < 0.06


def test_read_labels_refuses_other_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.arange(3), meta=np.array(json.dumps({"format": "other"})))
    with pytest.raises(UserError, match="not a NoisyKD labels file"):
        read_labels(tmp_path / "x.npz")
    with pytest.raises(UserError, match="not a readable labels file"):
        read_labels(tmp_path / "missing.npz")


# ---- the command line -------------------------------------------------------------------

BAD_INPUT = [
    (["--dataset", "svhn", "--noise", "symmetric", "--rate", "0.2"], "unknown dataset 'svhn'"),
    (["--dataset", "digits", "--noise", "gauss", "--rate", "0.2"], "unknown noise type 'gauss'"),
    (["--dataset", "digits", "--noise", "symmetric", "--rate", "1.0"], r"rate must be in [0, 1)"),
    (["--dataset", "digits", "--noise", "symmetric", "--rate", "-0.2"], r"rate must be in [0, 1)"),
    (["--dataset", "digits", "--noise", "human", "--variant", "aggre"],
     "dataset 'digits' has no human noisy labels"),
    (["--dataset", "cifar10", "--noise", "human", "--variant", "best"],
     "variant 'best' does not exist for cifar10"),
    (["--dataset", "fashion_mnist", "--noise", "symmetric", "--rate", "0.2", "--data-root", "{e}"],
     "apt-get install dataset-fashion-mnist"),
    (["--dataset", "cifar100", "--noise", "symmetric", "--rate", "0.2", "--data-root", "{e}"],
     "cifar100 not found"),
    (["--dataset", "cifar10", "--noise", "human", "--variant", "aggre", "--cifar-n-dir", "{e}"],
     "CIFAR-10_human.pt not found"),
    (["--dataset", "digits", "--noise", "symmetric", "--rate", "0.2", "--val-fraction", "1.5"],
     "val_fraction must be in (0, 1)"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[m for _, m in BAD_INPUT])
def test_bad_input_one_clear_error_and_nothing_written(tmp_path, capsys, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    out_dir = tmp_path / "out"
    args = [a.replace("{e}", str(empty)) for a in args]
    code = main(["labels", *args, "--seed", "0", "--out", str(out_dir / "l.npz")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("noisykd labels: error: ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_console_script_writes_labels(tmp_path):
    out = tmp_path / "l.npz"
    proc = subprocess.run(
        ["noisykd", "labels", "--dataset", "digits", "--noise", "pairflip", "--rate", "0.2",
         "--seed", "4", "--out", str(out)], capture_output=True, text=True, check=True)
    assert "digits pairflip_0.20 seed 4: requested 0.200" in proc.stdout
    assert read_labels(out).meta["seed"] == 4
    assert [p.name for p in tmp_path.iterdir()] == ["l.npz"]


def test_labels_summary_table(tmp_path, capsys):
    for seed in (0, 1):
        assert main(["labels", "--dataset", "digits", "--noise", "symmetric", "--rate", "0.4",
                     "--include-true", "--seed", str(seed), "--quiet",
                     "--out", str(tmp_path / f"s{seed}.npz")]) == 0
    assert main(["labels-summary", str(tmp_path / "s0.npz"), str(tmp_path / "s1.npz"),
                 "--out", str(tmp_path / "t.md")]) == 0
    table = (tmp_path / "t.md").read_text()
    assert table.count("symmetric-incl_0.40") == 2 and "| 0.400" in table


def test_train_subset_is_a_seeded_stratified_subset_of_the_split(synthetic):
    """train_subset keeps N examples of the training split, class shares intact (counted by a
    naive loop), the validation and test sets untouched, noise drawn on the subset only."""
    full = build_labels(req(5), synthetic)
    sub = build_labels(req(5, train_subset=900), synthetic)
    again = build_labels(req(5, train_subset=900), synthetic)
    other = build_labels(req(6, train_subset=900), synthetic)
    meta = json.loads(str(sub["meta"]))
    assert len(sub["train_idx"]) == 900
    assert set(sub["train_idx"].tolist()) <= set(full["train_idx"].tolist())
    np.testing.assert_array_equal(sub["val_idx"], full["val_idx"])
    np.testing.assert_array_equal(sub["train_clean"], synthetic.train_y[sub["train_idx"]])
    for k in sub:
        if k != "meta":
            np.testing.assert_array_equal(sub[k], again[k])
    assert len(np.intersect1d(sub["train_idx"], other["train_idx"])) < 0.5 * 900
    for c in range(synthetic.num_classes):
        in_split = sum(1 for i in full["train_idx"] if synthetic.train_y[i] == c)
        in_subset = sum(1 for i in sub["train_idx"] if synthetic.train_y[i] == c)
        assert abs(in_subset - 900 * in_split / len(full["train_idx"])) <= 1
    assert (meta["train_subset"], meta["n_train_split"], meta["n_train"]) == (900, 8100, 900)
    assert set(meta["seeds"]) == {"split", "noise", "subset"}
    assert meta["rate_realised"] == pytest.approx(
        np.mean(sub["train_noisy"] != sub["train_clean"]))
    assert 0.3 < meta["rate_realised"] < 0.5
    # without a subset nothing new is recorded: earlier labels files keep their bytes
    full_meta = json.loads(str(full["meta"]))
    assert "train_subset" not in full_meta and set(full_meta["seeds"]) == {"split", "noise"}


@pytest.mark.parametrize(("subset", "message"), [
    (8100, "train_subset 8100 is not smaller than the training split (8100"),
    (0, "train_subset must be a positive integer, got 0"),
    (True, "train_subset must be a positive integer, got True"),
])
def test_train_subset_bad_sizes(synthetic, subset, message):
    with pytest.raises(UserError) as err:
        build_labels(req(0, train_subset=subset), synthetic)
    assert message in str(err.value)


def test_console_script_train_subset(tmp_path, capfd):
    main(["labels", "--dataset", "digits", "--noise", "pairflip", "--rate", "0.3", "--seed",
          "1", "--val-fraction", "0.2", "--train-subset", "400", "--out", str(tmp_path / "l.npz")])
    assert "train 400 of 1149, stratified subset, val 288" in capfd.readouterr().out
    lf = read_labels(tmp_path / "l.npz")
    assert len(lf.arrays["train_idx"]) == 400 and lf.meta["train_subset"] == 400
