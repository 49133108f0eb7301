"""Instance noise as Xia et al. build it (issue 30): raw pixels by default, standardised as an
option, against a naive reference written from their ``get_instance_noisy_label``
(xiaoboxia/Part-dependent-label-noise @ b682527, tools.py:9-61, fed by data.py:16-20)."""

import json

import numpy as np
import pytest
from scipy import stats

from benchmark.cli import main
from benchmark.core.atomic import write_npz_atomic
from benchmark.core.errors import UserError
from benchmark.core.layout import labels_path
from benchmark.core.seeds import derive_seed
from benchmark.data import load_dataset
from benchmark.data.labels import (
    LabelsRequest,
    build_labels,
    noise_features,
    read_labels,
    summary_line,
    write_labels,
)
from benchmark.data.labels_summary import labels_summary_markdown
from benchmark.data.noise import (
    NoiseSpec,
    instance_model,
    instance_noise,
    instance_transition_rows,
    sample_rows,
)
from benchmark.plan import grid
from benchmark.plan.config import noise_specs

RAW = NoiseSpec("instance", 0.4)
STD = NoiseSpec("instance", 0.4, features="standardised")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def xia_reference(n, data, labels, num_classes, feature_size, norm_std, seed):
    """Xia et al.'s get_instance_noisy_label, line by line in numpy (their torch on the GPU
    is float32; here float64): the global numpy seed (tools.py:19), flip rates from a
    truncated normal (:24-25), W ~ randn(C, D, C) (:31), per instance A = x W[y] (:38), A[y]
    masked to -inf (:39), q_i * softmax(A) (:40), plus 1 - q_i on y (:41), the new label by
    np.random.choice (:45). Returns the new labels, the rows P and the flip rates."""
    np.random.seed(int(seed))
    flip_distribution = stats.truncnorm((0 - n) / norm_std, (1 - n) / norm_std, loc=n,
                                        scale=norm_std)
    flip_rate = flip_distribution.rvs(labels.shape[0])
    W = np.random.randn(num_classes, feature_size, num_classes)
    P = []
    for i, (x, y) in enumerate(zip(data, labels, strict=True)):
        A = (x.reshape(1, -1) @ W[y]).squeeze(0)
        A[y] = -np.inf
        e = np.exp(A - A.max())  # F.softmax(A, dim=0): the max is subtracted there too
        A = flip_rate[i] * (e / e.sum())
        A[y] += 1 - flip_rate[i]
        P.append(A)
    P = np.stack(P, 0)
    labels_list = list(range(num_classes))
    new_label = [np.random.choice(labels_list, p=P[i]) for i in range(labels.shape[0])]
    return np.array(new_label), P, flip_rate, W


def sharpness(clean, q, rows, threshold=0.99):
    """Share of instances whose most likely flip target has probability above threshold."""
    flip = rows.copy()
    flip[np.arange(len(clean)), clean] = 0.0
    return float(np.mean(flip.max(axis=1) / q > threshold))


def raw_pixels(record, idx):
    """What Xia et al.'s data.py hands the noise: torch.from_numpy(images).float(), 0..255."""
    return record.train_x[idx].reshape(len(idx), -1).astype(np.float64)


# ---- the model against the reference ------------------------------------------------------

def test_rows_match_the_reference_loop_on_raw_pixels(digits):
    """Same q and W: the vectorised rows equal the per-instance loop, also where raw pixels
    make the scores thousands apart (nearly one-hot softmax)."""
    idx = np.arange(300)
    x, clean = raw_pixels(digits, idx), digits.train_y[idx]
    _, p, q, w = xia_reference(0.4, x, clean, 10, x.shape[1], 0.1, seed=3)
    rows = instance_transition_rows(clean, x, q, 10, lambda y: w[y])
    np.testing.assert_allclose(rows, p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)


def test_distribution_matches_the_reference_on_raw_pixels(digits):
    """Different generators, so compare distributions: flip rates (two-sample KS), realised
    rate, and the share of instances with one flip target above 0.99."""
    idx = np.arange(len(digits.train_y))
    x, clean = raw_pixels(digits, idx), digits.train_y[idx]
    ref_noisy, ref_p, ref_q, _ = xia_reference(0.4, x, clean, 10, x.shape[1], 0.1, seed=1)
    ours = instance_noise(clean, digits.raw_features(digits.train_x), 10, 0.4,
                          np.random.default_rng(1))
    q, rows = instance_model(clean, digits.raw_features(digits.train_x), 10, 0.4,
                             np.random.default_rng(1))
    np.testing.assert_array_equal(q, ours.flip_prob)
    assert stats.ks_2samp(ref_q, q).pvalue > 1e-4
    n = len(clean)
    for noisy, flips in ((ref_noisy, ref_q), (ours.noisy, q)):
        sd = np.sqrt(np.sum(flips * (1 - flips))) / n
        assert abs(np.mean(noisy != clean) - flips.mean()) < 4.5 * sd
    assert sharpness(clean, ref_q, ref_p) > 0.98 and sharpness(clean, q, rows) > 0.98


# ---- what the labels file projects --------------------------------------------------------

def test_default_on_an_image_dataset_projects_raw_pixels(digits):
    """instance_0.40 on digits: the meta says raw, and replaying the file's noise stream on
    the raw pixels gives exactly its flip rates and noisy labels."""
    a = build_labels(LabelsRequest("digits", RAW, 0), digits)
    meta = json.loads(str(a["meta"]))
    assert RAW.id == "instance_0.40" and meta["noise"]["id"] == "instance_0.40"
    assert meta["noise"]["features"] == "raw" == noise_features(meta)
    assert "on raw inputs" in meta["noise_description"]
    rng = np.random.default_rng(meta["seeds"]["noise"])
    q, rows = instance_model(a["train_clean"], raw_pixels(digits, a["train_idx"]), 10, 0.4, rng)
    np.testing.assert_array_equal(q, a["flip_prob"])
    np.testing.assert_array_equal(sample_rows(rows, rng), a["train_noisy"])


def test_standardised_option_gives_the_earlier_labels(digits):
    """instance-std_0.40: what instance_0.40 labels files held before the raw form existed
    (standardised features, the stream seeded by the id instance_0.40); the two forms of one
    seed draw the same flip rates (a paired comparison)."""
    a = build_labels(LabelsRequest("digits", STD, 0), digits)
    raw = build_labels(LabelsRequest("digits", RAW, 0), digits)
    meta = json.loads(str(a["meta"]))
    assert meta["noise"]["id"] == "instance-std_0.40"
    assert meta["noise"]["features"] == "standardised"
    clean = a["train_clean"]
    before = instance_noise(clean, digits.features(digits.train_x[a["train_idx"]]), 10, 0.4,
                            np.random.default_rng(derive_seed(0, "noise", "digits",
                                                              "instance_0.40")))
    np.testing.assert_array_equal(a["train_noisy"], before.noisy)
    np.testing.assert_array_equal(a["transition_expected"], before.expected_transition)
    np.testing.assert_array_equal(a["flip_prob"], raw["flip_prob"])
    assert not np.array_equal(a["train_noisy"], raw["train_noisy"])


def test_raw_pixels_concentrate_flip_targets(digits):
    """The issue's statistic: nearly every instance has one flip target above 0.99 with raw
    pixels (0.99 here), about a third with standardised inputs."""
    shares = {}
    for spec in (RAW, STD):
        a = build_labels(LabelsRequest("digits", spec, 0), digits)
        x = digits.train_x[a["train_idx"]]
        feats = digits.raw_features(x) if spec.features == "raw" else digits.features(x)
        seed = json.loads(str(a["meta"]))["seeds"]["noise"]
        q, rows = instance_model(a["train_clean"], feats, 10, 0.4, np.random.default_rng(seed))
        shares[spec.features] = sharpness(a["train_clean"], q, rows)
    assert shares["raw"] > 0.97
    assert shares["standardised"] < 0.6
    assert shares["raw"] - shares["standardised"] > 0.35


# ---- ids, paths, config and command line ---------------------------------------------------

def test_ids_and_paths_differ_and_round_trip():
    assert NoiseSpec("instance", 0.4, features="raw") == RAW
    assert (RAW.id, STD.id) == ("instance_0.40", "instance-std_0.40")
    assert NoiseSpec.parse("instance-std_0.40") == STD and NoiseSpec.parse(STD.id).id == STD.id
    assert NoiseSpec.parse("instance_0.40").features == "raw"
    assert labels_path("digits", RAW.id, 0) != labels_path("digits", STD.id, 0)
    assert RAW.stream_id == STD.stream_id == "instance_0.40"
    assert grid.labels_cli_args(STD.id) == "--noise instance --rate 0.4 --features standardised"
    assert grid.labels_cli_args(RAW.id) == "--noise instance --rate 0.4 --features raw"
    # other kinds: no features, and their labels metadata keep their keys (and bytes)
    assert NoiseSpec("symmetric", 0.4).features is None
    assert "features" not in NoiseSpec("symmetric", 0.4).to_dict()
    assert grid.labels_cli_args("pairflip_0.45") == "--noise pairflip --rate 0.45"


@pytest.mark.parametrize(("make", "message"), [
    (lambda: NoiseSpec("symmetric", 0.4, features="raw"), "applies to instance noise only"),
    (lambda: NoiseSpec("instance", 0.4, features="pixels"), "must be one of raw, standardised"),
    (lambda: NoiseSpec.parse("symmetric-std_0.40"), r"-std \(standardised features\) is for"),
], ids=["other kind", "unknown form", "id of other kind"])
def test_bad_features(make, message):
    with pytest.raises(UserError, match=message):
        make()


def test_config_features_key():
    specs = noise_specs({"noise": [{"type": "instance", "rates": [0.4]},
                                   {"type": "instance", "rates": [0.4], "features": "raw"},
                                   {"type": "instance", "rates": [0.4],
                                    "features": "standardised"}]})
    assert [s.id for s in specs] == ["instance_0.40", "instance-std_0.40"]
    with pytest.raises(UserError, match=r"config key 'noise\[0\]'.*instance noise only"):
        noise_specs({"noise": [{"type": "symmetric", "rates": [0.4], "features": "raw"}]})


def test_schema_documents_the_key():
    import yaml

    from benchmark.plan.config_check import explain
    from tests.conftest import REPO_ROOT

    schema = yaml.safe_load((REPO_ROOT / "workflows/config/schema.yaml").read_text())
    cfg = yaml.safe_load((REPO_ROOT / "workflows/config/default.yaml").read_text())
    cfg["noise"] = [{"type": "instance", "rates": [0.4], "features": "standardised"}]
    assert explain(cfg, schema) is None
    cfg["noise"] = [{"type": "instance", "rates": [0.4], "features": "pixels"}]
    assert "is not one of raw, standardised" in explain(cfg, schema)
    prop = schema["$defs"]["noise"]["items"]["properties"]["features"]
    assert "default" not in prop  # Snakemake would fill it into every noise entry


def test_command_line_features(tmp_path, capsys):
    out = tmp_path / "l.npz"
    assert main(["labels", "--dataset", "digits", "--noise", "instance", "--rate", "0.4",
                 "--features", "standardised", "--seed", "0", "--out", str(out)]) == 0
    assert "digits instance-std_0.40 (standardised inputs) seed 0" in capsys.readouterr().out
    assert read_labels(out).meta["noise"]["features"] == "standardised"
    code = main(["labels", "--dataset", "digits", "--noise", "symmetric", "--rate", "0.4",
                 "--features", "raw", "--seed", "0", "--out", str(tmp_path / "s.npz")])
    assert code == 2 and "applies to instance noise only" in capsys.readouterr().err
    assert not (tmp_path / "s.npz").exists()


# ---- labels files written before the option ------------------------------------------------

def test_old_labels_file_without_the_field_reads_as_standardised(tmp_path, digits):
    arrays = build_labels(LabelsRequest("digits", STD, 0), digits)
    meta = json.loads(str(arrays["meta"]))
    del meta["noise"]["features"]
    meta["noise"]["id"] = "instance_0.40"
    meta["noise_description"] = "instance (Xia et al. 2020), flip-rate sd 0.1"
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    old = tmp_path / "old.npz"
    write_npz_atomic(old, arrays)
    lf = read_labels(old)
    assert noise_features(lf.meta) == "standardised"
    assert "instance_0.40 (standardised inputs) seed 0" in summary_line(lf.meta)
    new = tmp_path / "new.npz"
    write_labels(LabelsRequest("digits", RAW, 0), new, digits)
    table = labels_summary_markdown([old, new])
    assert "instance_0.40 (standardised inputs)" in table
    assert "instance_0.40 (raw inputs)" in table
    sym = write_labels(LabelsRequest("digits", NoiseSpec("symmetric", 0.4), 0),
                       tmp_path / "s.npz", digits)
    assert noise_features(sym) is None and "inputs" not in summary_line(sym)
