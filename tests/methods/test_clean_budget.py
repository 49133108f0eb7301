"""The clean-data budget (issue 25): the meta and selection splits of a labels file, the
engine choosing epochs on the selection split only, the clean-budget baselines (ce_clean,
ce_union, kd_union, kd_finetune) against hand-written float64 references, and a teacher
matched by the exact labels file it was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.core.errors import UserError
from benchmark.data.labels import LabelsRequest, build_labels, read_labels
from benchmark.data.noise import NoiseSpec

NOISE = NoiseSpec("symmetric", rate=0.2)


def arrays(select=None, subset=None, seed=0, dataset="digits"):
    return build_labels(LabelsRequest(dataset, NOISE, seed, select_fraction=select,
                                      train_subset=subset))


# -- the splits ---------------------------------------------------------------------------

def test_no_selection_split_keeps_the_file_as_it_was():
    plain, zero = arrays(), arrays(select=0)
    assert sorted(plain) == sorted(zero) and "select_idx" not in plain
    for k in plain:
        assert np.array_equal(plain[k], zero[k]), k


@pytest.mark.parametrize("subset", [None, 600])
def test_the_selection_split_is_disjoint_stratified_and_seeded(subset):
    a = arrays(select=0.1, subset=subset)
    meta = json.loads(str(a["meta"]))
    sel, train, val = a["select_idx"], a["train_idx"], a["val_idx"]
    assert len(np.intersect1d(sel, train)) == 0 and len(np.intersect1d(sel, val)) == 0
    assert len(sel) == meta["n_select"] == round(0.1 * meta["n_pool"])
    from benchmark.data import load_dataset

    pool_y = load_dataset("digits").train_y
    assert np.array_equal(a["select_labels"], pool_y[sel])  # clean labels
    counts = np.bincount(pool_y[sel], minlength=10) / len(sel)
    assert np.abs(counts - np.bincount(pool_y, minlength=10) / len(pool_y)).max() < 0.02
    again, other = arrays(select=0.1, subset=subset), arrays(select=0.1, subset=subset, seed=1)
    assert np.array_equal(again["select_idx"], sel)
    assert not np.array_equal(other["select_idx"], sel)


def test_with_a_subset_training_and_meta_data_are_unchanged():
    """The selection split comes from the pool the subset leaves unused: the training set,
    its noisy labels and the meta split are exactly those of the file without one."""
    plain, fair = arrays(subset=600), arrays(select=0.1, subset=600)
    for k in ("train_idx", "val_idx", "train_noisy", "train_clean", "val_labels"):
        assert np.array_equal(plain[k], fair[k]), k
    assert json.loads(str(fair["meta"]))["select_source"] == "unused training pool"


def test_without_a_subset_the_training_split_gives_it():
    plain, fair = arrays(), arrays(select=0.1)
    assert np.array_equal(plain["val_idx"], fair["val_idx"])
    assert np.array_equal(np.sort(np.concatenate([fair["train_idx"], fair["select_idx"]])),
                          plain["train_idx"])
    assert json.loads(str(fair["meta"]))["select_source"] == "training split"


@pytest.mark.parametrize("bad", [-0.1, 1.0, 0.95, True])
def test_a_bad_select_fraction_is_refused(bad):
    with pytest.raises(UserError, match="select_fraction"):
        LabelsRequest("digits", NOISE, 0, select_fraction=bad).validate()


def test_planner_defaults_suite_disjoint_and_authors_shared():
    from benchmark.plan import grid

    cfg = {"datasets": [{"name": "digits"}], "val_fraction": 0.1}
    assert grid.select_fraction_of(cfg, "digits") == 0.1
    assert grid.select_fraction_of({**cfg, "protocol": "authors"}, "digits") == 0.0
    assert grid.select_fraction_of({**cfg, "select_fraction": 0.05}, "digits") == 0.05
    assert grid.labels_split_args({**cfg, "protocol": "authors"}, "digits") == ""
    assert grid.labels_split_args(cfg, "digits") == "--select-fraction 0.1"


# -- runs: what each method trains on and what chooses its epoch ---------------------------

@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """digits with a selection split, one noisy-label teacher."""
    root = tmp_path_factory.mktemp("clean")
    labels = root / "l.npz"
    assert main(["labels", "--dataset", "digits", "--noise", "symmetric", "--rate", "0.2",
                 "--seed", "0", "--select-fraction", "0.1", "--out", str(labels),
                 "--quiet"]) == 0
    teacher = root / "results/s/teachers/digits/symmetric_0.20/mlp_16/seed0"
    assert main(["teacher", "--dataset", "digits", "--labels", str(labels), "--arch", "mlp_16",
                 "--seed", "0", "--out", str(teacher), "--epochs", "2", "--device",
                 "cpu"]) == 0
    return root, labels, teacher


def spy_run(monkeypatch, study, method, hparams=(), epochs=2):
    """Train one student and record every pool position it trained on, every split that
    anything read, and the splits the engine evaluated."""
    from benchmark.training import device_data, engine

    root, labels, teacher = study
    seen = {"train_pool": set(), "splits": [], "evaluated": []}
    real_train_batch, real_split = device_data.DeviceData.train_batch, device_data.DeviceData._split
    real_evaluate = engine.evaluate

    def train_batch(self, idx, gen):
        seen["train_pool"].update(int(i) for i in np.asarray(self.train_idx)[idx.cpu().numpy()])
        return real_train_batch(self, idx, gen)

    def split(self, name):
        seen["splits"].append(name)
        return real_split(self, name)

    def evaluate(fn, data, name, *a, **kw):
        seen["evaluated"].append(name)
        return real_evaluate(fn, data, name, *a, **kw)

    monkeypatch.setattr(device_data.DeviceData, "train_batch", train_batch)
    monkeypatch.setattr(device_data.DeviceData, "_split", split)
    monkeypatch.setattr(engine, "evaluate", evaluate)
    import uuid

    out = root / f"results/s/runs/digits/symmetric_0.20/{uuid.uuid4().hex[:8]}/{method}/seed0"
    args = ["student", "--dataset", "digits", "--labels", str(labels), "--arch", "mlp_16",
            "--seed", "0", "--out", str(out), "--epochs", str(epochs), "--device", "cpu",
            "--method", method]
    from methods.catalog import CATALOG, method_uses_teachers

    if method_uses_teachers(method, dict(kv.split("=") for kv in hparams)):
        # the per-teacher rules need two: the one teacher twice
        args += ["--teacher", str(teacher)] * max(CATALOG[method].min_teachers, 1)
    for kv in hparams:
        args += ["--hparam", kv]
    assert main(args) == 0
    return seen, json.loads((out / "metrics.json").read_text()), out


ALL_STUDENTS = [("ce", ()), ("kd", ()), ("fixed_alpha", ("alpha=0.5",)),
                ("almkd", ("meta_start=0", "meta_every=1")),
                ("amal", ("meta_start=0", "meta_every=1")),
                ("almkd_v1", ("meta_start=0", "meta_every=1")),
                ("almkd_full", ("full_val_batch=32", "meta_start=0")),
                ("ce_clean", ()), ("ce_union", ()), ("kd_union", ()),
                ("kd_finetune", ("finetune_epochs=1",)), ("l2rw", ()), ("mwnet", ()),
                ("l2rw", ("loss=ce",)), ("mwnet", ("loss=ce",)),
                # the trust-rule zoo (issue 29): no clean data at all
                ("wsld", ()), ("bootstrap", ()), ("proselflc", ()), ("gce_kd", ()),
                ("sce_kd", ()), ("camkd", ()), ("ebkd", ()), ("aekd", ()), ("dkd", ()),
                ("lskd", ()), ("tfkd", ())]


@pytest.mark.parametrize("method, hparams", ALL_STUDENTS,
                         ids=[m + "-".join(("",) + h) for m, h in ALL_STUDENTS])
def test_no_method_is_selected_on_data_it_trained_on(monkeypatch, study, method, hparams):
    seen, metrics, _ = spy_run(monkeypatch, study, method, hparams)
    lf = read_labels(study[1])
    select = set(lf.arrays["select_idx"].tolist())
    assert not seen["train_pool"] & select
    # the selection split is read once per epoch, by the engine's selection, and by nothing
    # else (a method's own clean data is the meta split)
    n_epochs = metrics["epochs"]
    assert seen["evaluated"].count("select") == n_epochs
    assert seen["splits"].count("select") == n_epochs
    assert "val" not in seen["evaluated"] and "meta" not in seen["evaluated"]
    from methods.catalog import CATALOG

    if not CATALOG[method].uses_clean_labels:  # no clean example trained on (the zoo too)
        assert not seen["train_pool"] & set(lf.arrays["val_idx"].tolist())
        assert seen["train_pool"] == set(lf.arrays["train_idx"].tolist())


def test_ce_clean_trains_on_the_meta_split_alone(monkeypatch, study):
    seen, _, _ = spy_run(monkeypatch, study, "ce_clean")
    assert seen["train_pool"] == set(read_labels(study[1]).arrays["val_idx"].tolist())


def test_the_union_methods_train_on_training_and_meta_data(monkeypatch, study):
    lf = read_labels(study[1]).arrays
    seen, _, _ = spy_run(monkeypatch, study, "kd_union")
    assert seen["train_pool"] == set(lf["train_idx"].tolist()) | set(lf["val_idx"].tolist())


def test_the_best_epoch_is_the_best_on_the_selection_split(monkeypatch, study):
    """Against an independent reading of log.csv: val_acc is the selection split's accuracy
    (recomputed from the saved best weights is not possible for students; the engine's own
    best epoch must be the argmax of the logged column, first on ties)."""
    _, metrics, out = spy_run(monkeypatch, study, "kd", epochs=4)
    import pandas as pd

    log = pd.read_csv(out / "log.csv")
    assert metrics["best_epoch"] == int(log["epoch"][int(np.argmax(log["val_acc"].to_numpy()))])
    assert metrics["val_acc_best"] == log["val_acc"].max()


def test_kd_finetune_is_kd_then_ce_on_the_meta_split(monkeypatch, study):
    import pandas as pd

    _, kd, kd_out = spy_run(monkeypatch, study, "kd", epochs=2)
    seen, ft, ft_out = spy_run(monkeypatch, study, "kd_finetune",
                               ("finetune_epochs=2", "finetune_lr=0.05"), epochs=2)
    a, b = pd.read_csv(kd_out / "log.csv"), pd.read_csv(ft_out / "log.csv")
    assert len(b) == 4 and ft["epochs"] == 4
    cols = ["train_loss", "train_acc", "val_acc", "test_acc", "lr"]
    assert a[cols].equals(b[cols].iloc[:2])  # the kd epochs are exactly kd's
    assert list(b["lr"].iloc[2:]) == [0.05, 0.05]
    n_meta = len(read_labels(study[1]).arrays["val_idx"])
    batches = -(-n_meta // 128)  # the fine-tune's batches per epoch (default batch size)
    assert seen["splits"].count("meta") == 2 * batches  # the fine-tune reads the meta split
    assert ft["best_epoch"] == int(b["epoch"][int(np.argmax(b["val_acc"].to_numpy()))])


def test_kd_finetune_schedule_by_hand():
    """finetune_epochs 0: no fine-tune (plain kd); null finetune_lr: a tenth of the base lr."""
    from methods import build_method

    assert build_method("kd_finetune").finetune(0.3) == (3, pytest.approx(0.03, abs=1e-15))
    assert build_method("kd_finetune", finetune_lr=0.07).finetune(0.3) == (3, 0.07)
    assert build_method("kd_finetune", finetune_epochs=2).finetune(0.5)[0] == 2
    assert build_method("kd_finetune", finetune_epochs=0).finetune(0.3) is None


# -- the losses, against float64 by hand --------------------------------------------------

def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _ctx(n, clean, teachers):
    from methods.base import MethodContext

    class Data:
        train_is_clean = torch.tensor(clean)

    return MethodContext(n_train=n, num_classes=3, n_teachers=teachers,
                         device=torch.device("cpu"), seed=0, extras={"data": Data()})


def test_ce_union_weights_clean_examples_by_hand():
    from methods import build_method
    from methods.base import StepOutput

    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(5, 3)), np.array([0, 2, 1, 1, 0])
    clean = [False, True, False, True, False]
    m = build_method("ce_union", clean_weight=3.0)
    m.setup(_ctx(5, clean, 0))
    idx = torch.tensor([4, 1, 0, 3, 2])  # positions in the training set, not in order
    got = m.loss(StepOutput(torch.tensor(logits[idx.numpy()]), torch.zeros(5, 1),
                            torch.tensor(labels[idx.numpy()]), idx))
    ce = -_log_softmax(logits)[np.arange(5), labels]
    w = np.where(clean, 3.0, 1.0)
    assert float(got) == pytest.approx(float((w * ce).mean()), rel=1e-6)  # float32 loss


@pytest.mark.parametrize("protocol, teachers", [("suite", 1), ("suite", 2), ("authors", 2)])
def test_kd_union_trusts_clean_labels_by_hand(protocol, teachers):
    from methods import build_method
    from methods.base import StepOutput

    rng = np.random.default_rng(1)
    B, T, a, cw = 6, 3.0, 0.8, 2.0
    s, t = rng.normal(size=(B, 3)), rng.normal(size=(teachers, B, 3))
    y = rng.integers(0, 3, B)
    clean = [True, False, False, True, False, False]
    m = build_method("kd_union", T=T, kd_weight=a, clean_weight=cw)
    ctx = _ctx(B, clean, teachers)
    ctx.protocol = protocol
    m.setup(ctx)
    got = m.loss(StepOutput(torch.tensor(s), torch.zeros(B, 1), torch.tensor(y),
                            torch.arange(B), torch.tensor(t)))
    ce = -_log_softmax(s)[np.arange(B), y]
    ls = _log_softmax(s / T)
    kd = [(T * T) * (np.exp(_log_softmax(tm / T)) * (_log_softmax(tm / T) - ls)).sum(-1)
          for tm in t]
    each = a / teachers if protocol == "suite" else a
    noisy = (1 - a) * ce + each * sum(kd)
    want = np.where(clean, cw * ce, noisy).mean()
    assert float(got) == pytest.approx(float(want), rel=1e-6)  # float32 weights


# -- a teacher is matched by the labels file itself ----------------------------------------

def test_a_teacher_trained_on_other_labels_with_the_same_metadata_is_refused(study, tmp_path,
                                                                              capsys):
    root, labels, teacher = study
    forged = tmp_path / "forged.npz"
    a = dict(read_labels(labels).arrays)
    a["train_noisy"] = np.roll(a["train_noisy"], 1)  # other labels, the same meta
    meta = read_labels(labels).meta
    from benchmark.core.atomic import write_npz_atomic

    write_npz_atomic(forged, {**a, "meta": np.array(json.dumps(meta, sort_keys=True))})
    out = tmp_path / "student"
    code = main(["student", "--dataset", "digits", "--labels", str(forged), "--arch", "mlp_16",
                 "--seed", "0", "--out", str(out), "--epochs", "1", "--device", "cpu",
                 "--method", "kd", "--teacher", str(teacher)])
    assert code == 2
    err = capsys.readouterr().err
    assert "another labels file" in err and str(forged) in err
    assert not Path(out / "metrics.json").exists()
