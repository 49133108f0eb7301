"""Protocols and the one multi-teacher convention: every method's initial weights, the
refresh settings each method and protocol wires up, the authors' presets (chunk, cosine
period, raw features, teacher modes), the learning rate reaching the refresh, and exact
resumption when teachers' BatchNorm statistics change (protocol authors)."""

import numpy as np
import pytest
import torch

from benchmark.core.errors import UserError
from benchmark.data import load_dataset
from benchmark.data.labels import LabelsRequest, read_labels, write_labels
from benchmark.data.noise import NoiseSpec
from benchmark.plan.specs import RunSpec
from benchmark.spec.protocol import authors_chunk, resolve_hparams
from benchmark.spec.trainconfig import TrainConfig
from benchmark.training import engine
from benchmark.training.device_data import DeviceData
from benchmark.training.run import run
from methods import build_method
from methods.base import MethodContext
from tests.conftest import killed_then_resumed

KD_METHODS = [("kd", {}), ("fixed_alpha", {"alpha": 0.3}), ("almkd", {}), ("amal", {}),
              ("almkd_full", {})]


def ctx(n_teachers, protocol="suite", n=40, seed=0):
    return MethodContext(n_train=n, num_classes=5, n_teachers=n_teachers,
                         device=torch.device("cpu"), seed=seed, protocol=protocol,
                         extras={"model": torch.nn.Linear(2, 5)})


def initial(method, hp, n_teachers, protocol, seed=0):
    m = build_method(method, **hp)
    m.setup(ctx(n_teachers, protocol, seed=seed))
    w = m.weights
    return (w if w.dim() == 2 else w[None]).double()


@pytest.mark.parametrize("n_teachers", [1, 4])
@pytest.mark.parametrize(("method", "hp"), KD_METHODS)
def test_suite_convention_one_total_kd_weight(method, hp, n_teachers):
    """suite: CE 1 - a and a / M per teacher, for every method (a = 0.9; fixed_alpha 0.3)."""
    a = hp.get("alpha", 0.9)
    w = initial(method, hp, n_teachers, "suite")
    expected = torch.tensor([1 - a] + [a / n_teachers] * n_teachers, dtype=torch.float64)
    torch.testing.assert_close(w, expected.expand_as(w), rtol=0, atol=1e-7)


@pytest.mark.parametrize("n_teachers", [1, 4])
@pytest.mark.parametrize(("method", "hp"), [("kd", {}), ("fixed_alpha", {"alpha": 0.3}),
                                            ("amal", {})])
def test_authors_convention_each_teacher_the_full_weight(method, hp, n_teachers):
    """authors: CE 1 - a and a for every teacher (their lambdas = full(lam), CE 1 - max)."""
    a = hp.get("alpha", 0.9)
    w = initial(method, hp, n_teachers, "authors")
    expected = torch.tensor([1 - a] + [a] * n_teachers, dtype=torch.float64)
    torch.testing.assert_close(w, expected.expand_as(w), rtol=0, atol=1e-7)


def test_convex_methods_refuse_the_authors_multi_teacher_convention():
    for method in ("almkd", "almkd_full"):
        with pytest.raises(UserError, match="simplex"):
            initial(method, {}, 4, "authors")
        assert torch.allclose(initial(method, {}, 1, "authors")[0],
                              torch.tensor([0.1, 0.9], dtype=torch.float64))


@pytest.mark.parametrize("n_teachers", [1, 3])
def test_almkd_v1_starts_uniform_random_with_ce_one_minus_max(n_teachers):
    w = initial("almkd_v1", {}, n_teachers, "suite", seed=0)
    kd = w[:, 1:]
    assert (kd >= 0).all() and (kd < 1).all() and kd.std() > 0.2  # U(0, 1): sd 0.289
    torch.testing.assert_close(w[:, 0], 1 - kd.max(1).values)
    again = initial("almkd_v1", {}, n_teachers, "suite", seed=0)
    other = initial("almkd_v1", {}, n_teachers, "suite", seed=1)
    assert torch.equal(w, again) and not torch.equal(w, other)
    assert torch.equal(w, initial("almkd_v1", {}, n_teachers, "authors", seed=0))


@pytest.mark.parametrize("protocol", ["suite", "authors"])
def test_refresh_settings_per_method_and_protocol(protocol):
    authors = protocol == "authors"
    m = build_method("almkd_v1")
    m.setup(ctx(1, protocol))
    s = m.settings
    assert (s.val_batch, s.steps, s.meta_lr, s.train_share, s.model_mode, s.chunk) == (
        None, 10, 2000.0, 0.25, "train", 3)
    assert s.val_augment is authors and s.teacher_mode == ("train" if authors else "eval")
    for name in ("almkd", "amal"):
        m = build_method(name)
        m.setup(ctx(1, protocol))
        s = m.settings
        assert (s.val_batch, s.steps, s.meta_lr, s.train_share, s.model_mode, s.chunk) == (
            1000, 5, 1500.0, 0.0, "eval", 3)
        assert s.val_augment is authors and s.teacher_mode == "eval"
    m = build_method("amal", meta_val_batch=None, meta_train_share=0.5, refresh_mode="train")
    m.setup(ctx(1, protocol))
    assert (m.settings.val_batch, m.settings.train_share, m.settings.model_mode) == (
        None, 0.5, "train")
    for bad in ({"refresh_mode": "test"}, {"meta_train_share": 1.5}, {"meta_val_batch": 0}):
        with pytest.raises(UserError):
            build_method("amal", **bad).setup(ctx(1, protocol))


def test_authors_refresh_chunk_per_setting():
    assert authors_chunk("synthetic", 1) == 2
    assert authors_chunk("cifar100", 1) == 3 and authors_chunk("fashion_mnist", 1) == 3
    assert authors_chunk("synthetic", 2) == 4 and authors_chunk("cifar100", 4) == 4
    assert resolve_hparams("amal", {}, "authors", "synthetic", 1) == {"meta_chunk": 2}
    assert resolve_hparams("almkd_v1", {}, "authors", "cifar100", 4) == {"meta_chunk": 4}
    assert resolve_hparams("amal", {"meta_chunk": 7}, "authors", "synthetic", 1) == {
        "meta_chunk": 7}
    assert resolve_hparams("amal", {}, "suite", "synthetic", 1) == {}
    assert resolve_hparams("kd", {}, "authors", "synthetic", 1) == {}


def test_cosine_period_is_epochs_plus_one_under_authors():
    lrs = {}
    for protocol in ("suite", "authors"):
        cfg = TrainConfig(epochs=4, lr=1.0, schedule="cosine", protocol=protocol)
        opt, sched = engine.build_optimizer(torch.nn.Linear(1, 1), cfg)
        seen = []
        for _ in range(4):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        lrs[protocol] = seen
    period = {"suite": 4, "authors": 5}
    for protocol, seen in lrs.items():
        ref = [0.5 * (1 + np.cos(np.pi * e / period[protocol])) for e in range(4)]
        np.testing.assert_allclose(seen, ref, atol=1e-12)


def test_raw_features_under_authors(tmp_path):
    path = tmp_path / "l.npz"
    write_labels(LabelsRequest("synthetic", NoiseSpec("symmetric", 0.2), 0), path)
    record, lf = load_dataset("synthetic"), read_labels(path)
    raw = DeviceData(record, lf, torch.device("cpu"), raw_features=True)
    std = DeviceData(record, lf, torch.device("cpu"))
    idx = torch.arange(5)
    pool = record.train_x[lf.arrays["train_idx"][:5]]
    np.testing.assert_array_equal(raw.batch("train", idx).numpy(), pool)
    expected = (pool - np.asarray(record.mean, np.float32)) / np.asarray(record.std, np.float32)
    np.testing.assert_allclose(std.batch("train", idx).numpy(), expected, rtol=1e-6)
    assert np.abs(pool.mean(0)).max() > 0.05 or np.abs(pool.std(0) - 1).max() > 0.05


# ---- engine: the learning rate reaching the refresh, teacher modes, resume -----------------

@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("p") / "results"
    labels = root / "labels" / "digits.npz"
    write_labels(LabelsRequest("digits", NoiseSpec("symmetric", 0.3), 0), labels)
    teachers = {}
    for protocol in ("suite", "authors"):
        cfg = TrainConfig(epochs=2, batch_size=64, lr=0.1, milestones=(1,), protocol=protocol)
        t = RunSpec(kind="teacher", dataset="digits", labels=labels,
                       arch="cifar_resnet8", seed=0, out=root / "teachers" / protocol, train=cfg)
        run(t)
        teachers[protocol] = t.out
    return {"root": root, "labels": labels, "teachers": teachers}


def student(d, method, protocol, name, hparams=None, epochs=4, milestones=(2,)):
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=0.1, milestones=milestones, gamma=0.1,
                      protocol=protocol)
    return RunSpec(kind="student", dataset="digits", labels=d["labels"],
                      arch="cifar_resnet8", seed=0, out=d["root"] / "runs" / name, train=cfg,
                      method=method, hparams={"meta_start": 1, "meta_every": 1} | (hparams or {}),
                      teachers=[d["teachers"][protocol]])


@pytest.mark.slow
def test_learning_rate_decay_reaches_the_refresh_and_teacher_modes(digits, monkeypatch):
    """lr x 0.1 at epoch 2 is what the refreshes of epochs 2 and 3 use; teachers are in eval
    mode throughout under suite; under authors in train mode until the first released
    refresh calls .eval() (their code), and in train mode throughout with v1 or kd."""
    from methods import alm_base

    seen = []
    real_refresh = alm_base.lastlayer_refresh

    def spy_refresh(weights, step, settings, **kw):
        seen.append(("refresh", kw["epoch"], kw["lr"], [t.training for t in kw["teachers"]]))
        return real_refresh(weights, step, settings, **kw)

    real_mixed = alm_base.mixed_loss

    def spy_loss(w, terms):
        seen.append(("step",))
        return real_mixed(w, terms)

    monkeypatch.setattr(alm_base, "lastlayer_refresh", spy_refresh)
    monkeypatch.setattr(alm_base, "mixed_loss", spy_loss)
    modes = {}
    real_init = engine.Trainer._train_epoch

    def spy_epoch(self, epoch):
        modes.setdefault(self.run_id, []).append([t.training for t in self.teachers])
        return real_init(self, epoch)

    monkeypatch.setattr(engine.Trainer, "_train_epoch", spy_epoch)
    for protocol in ("suite", "authors"):
        for method in ("amal", "almkd_v1"):
            seen.clear()
            req = student(digits, method, protocol, f"{method}-{protocol}")
            run(req)
            refreshes = [s for s in seen if s[0] == "refresh"]
            assert [(e, round(lr, 10)) for _, e, lr, _ in refreshes] == [
                (1, 0.1), (2, 0.01), (3, 0.01)]
            per_epoch = modes["runs/" + req.out_dir.name]
            if protocol == "suite":
                assert per_epoch == [[False]] * 4
            elif method == "amal":
                assert per_epoch == [[True], [False], [False], [False]]
            else:
                assert per_epoch == [[True]] * 4
    kd_run = RunSpec(kind="student", dataset="digits", labels=digits["labels"],
                        arch="cifar_resnet8", seed=0, out=digits["root"] / "runs" / "kd-authors",
                        train=TrainConfig(epochs=2, batch_size=64, lr=0.1, milestones=(1,),
                                        protocol="authors"),
                        method="kd", teachers=[digits["teachers"]["authors"]])
    run(kd_run)
    assert modes["runs/kd-authors"] == [[True], [True]]


@pytest.mark.slow
def test_authors_protocol_resumes_exactly_with_changing_teacher_statistics(digits, monkeypatch):
    whole = run(student(digits, "almkd_v1", "authors", "v1-whole"))
    cut = student(digits, "almkd_v1", "authors", "v1-cut")
    resumed = killed_then_resumed(monkeypatch, cut, 2)
    for key in ("test_acc_last", "train_loss_last", "val_acc_best"):
        assert resumed[key] == whole[key], key
    a = np.load(digits["root"] / "runs" / "v1-whole" / "alpha.npz")
    b = np.load(cut.out_dir / "alpha.npz")
    np.testing.assert_array_equal(a["weights"], b["weights"])
    assert whole["method_hparams"]["meta_chunk"] == 3
    assert whole["spec"]["train"]["protocol"] == "authors"


# ---- unit checks the mutation run showed were missing -------------------------------------

def test_method_setup_checks_and_defaults():
    with pytest.raises(UserError, match="unknown hyper-parameter"):
        build_method("kd", temperature=2)
    for bad in (-0.1, 1.5, None):
        with pytest.raises(UserError, match=r"alpha in \[0, 1\]"):
            build_method("fixed_alpha", alpha=bad).setup(ctx(1))
    for edge in (0.0, 1.0):  # both ends are valid alphas
        build_method("fixed_alpha", alpha=edge).setup(ctx(1))
    ok = build_method("amal", meta_chunk=1, meta_steps=1, meta_every=1, meta_val_batch=1,
                      meta_train_share=1.0)
    ok.setup(ctx(1))
    assert ok.settings.train_share == 1.0 and ok.settings.chunk == 1
    cfg = TrainConfig(epochs=10, batch_size=64)
    c = ctx(1)
    c.extras["cfg"] = cfg
    m = build_method("amal")
    with pytest.raises(UserError, match=r"epochs \(10\) must exceed meta_start \(10\)"):
        m.setup(c)
    m = build_method("amal", meta_start=9)
    m.setup(c)
    assert m.batch_size == 64  # the training batch size when meta_batch is unset
    m = build_method("amal")
    m.setup(ctx(1))
    assert m.batch_size == 128  # no training config: the authors' 128
    # several teachers whose authors' total (1.9 with 2) exceeds the simplex: refused
    with pytest.raises(UserError, match="simplex"):
        initial("almkd", {}, 2, "authors")


def test_alm_loss_is_the_weighted_mean_of_ce_and_each_kd_term():
    """The training loss of an ALM method: batch mean of sum_k w_ik term_ik with its own
    per-instance weights (reference: F.cross_entropy and F.kl_div, float64)."""
    import torch.nn.functional as F

    from methods.base import StepOutput

    g = torch.Generator().manual_seed(0)
    m = build_method("amal", T=3.0)
    m.setup(ctx(2, n=10))
    m.weights = torch.rand(10, 3, generator=g, dtype=torch.float64)
    s = torch.randn(4, 5, dtype=torch.float64, generator=g)
    t = torch.randn(2, 4, 5, dtype=torch.float64, generator=g)
    y = torch.tensor([0, 3, 1, 4])
    idx = torch.tensor([7, 2, 9, 0])
    got = m.loss(StepOutput(s, torch.zeros(4, 2), y, idx, t))
    w = m.weights[idx]
    ref = 0.0
    for i in range(4):
        term = w[i, 0] * F.cross_entropy(s[i:i + 1], y[i:i + 1])
        for k in range(2):
            kl = F.kl_div(F.log_softmax(s[i] / 3.0, 0), F.softmax(t[k, i] / 3.0, 0),
                          reduction="sum")
            term = term + w[i, k + 1] * 9.0 * kl
        ref = ref + term / 4
    torch.testing.assert_close(got, ref)


def test_teacher_diagnostics_against_a_loop():
    from methods.alm_refresh import teacher_diagnostics

    g = torch.Generator().manual_seed(1)
    t = torch.randn(3, 8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    y[0] = t[0, 0].argmax()  # at least one agreement
    agree, prob = teacher_diagnostics(t, y)
    assert agree.shape == (8, 3) and prob.shape == (8, 3)
    for i in range(8):
        for m in range(3):
            assert bool(agree[i, m]) == (int(t[m, i].argmax()) == int(y[i]))
            p = torch.exp(t[m, i, y[i]]) / torch.exp(t[m, i]).sum()
            assert abs(float(prob[i, m]) - float(p)) < 1e-6
    assert agree.any() and not agree.all()
