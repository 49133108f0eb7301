"""The ALM refresh against a naive reference that shares no code with methods/.

The reference materialises every per-example last-layer gradient with autograd, one example
and one loss term at a time, in float64, builds the virtual SGD step of the head explicitly,
differentiates the meta objective with autograd and applies its own feasibility rules
(bisection for the simplex). It reads only the seeds the refresh is specified to use
(``derive_seed`` roles) and a data object with its own seeded augmentation. Settings covered:
a model with BatchNorm, augmented training batches, several validation batches that must
cycle over the chunks, a last training batch smaller than the others, 1 and 3 teachers, and
the released (almkd, amal), protocol-authors and seed-paper v1 (almkd_v1) variants.
"""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.optimize import brentq

from benchmark.core.seeds import derive_seed
from methods.alm_refresh import RefreshSettings, lastlayer_refresh
from methods.mixing import ClampedMixing, ConvexMixing, V1Mixing

C, D, T = 4, 3, 4.0


class BNNet(nn.Module):
    """Conv + BatchNorm backbone with the timm-style head interface the refresh uses."""

    def __init__(self, width=D):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, C)

    def forward_features(self, x):
        return F.relu(self.bn(self.conv(x)))

    def forward_head(self, x, pre_logits=False):
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


class FakeData:
    """What the refresh reads of a dataset, with a seeded augmentation of its own (random
    horizontal flips and a random cyclic shift per batch)."""

    def __init__(self, n_train=50, n_val=30, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x_train = torch.randn(n_train, 1, 5, 5, generator=g)
        self.x_val = torch.randn(n_val, 1, 5, 5, generator=g)
        self.y_train = torch.randint(0, C, (n_train,), generator=g)
        self.y_val = torch.randint(0, C, (n_val,), generator=g)

    @property
    def n_train(self):
        return len(self.y_train)

    @staticmethod
    def _augment(x, gen):
        flip = torch.rand(len(x), generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        shift = int(torch.randint(-1, 2, (1,), generator=gen))
        return torch.roll(x, shift, dims=2)

    def train_batch(self, idx, gen):
        return self._augment(self.x_train[idx], gen)

    def batch(self, split, idx, gen=None):
        x = {"train": self.x_train, "val": self.x_val}[split][idx]
        return x if gen is None else self._augment(x, gen)


# ---- the reference's own feasibility rules ----------------------------------------------

def ref_simplex(v: np.ndarray) -> np.ndarray:
    theta = brentq(lambda th: np.maximum(v - th, 0).sum() - 1.0, v.min() - 1.0, v.max())
    return np.maximum(v - theta, 0)


def ref_convex(w, g, lr):
    if w.shape[1] == 2:
        a = (w[:, 1] - lr * (g[:, 1] - g[:, 0])).clamp(0.0, 1.0)
        return torch.stack([1 - a, a], 1)
    v = (w - lr * g).numpy()
    return torch.from_numpy(np.stack([ref_simplex(r) for r in v]))


def ref_clamped(w, g, lr):
    return (w - lr * g).clamp(1e-7, 2 - 1e-7)


def ref_v1(w, g, lr):
    kd = (w[:, 1:] - lr * (g[:, 1:] - g[:, :1])).clamp(1e-7, 1 - 1e-7)
    return torch.cat([1 - kd.max(1, keepdim=True).values, kd], 1)


# ---- the reference refresh ----------------------------------------------------------------

def reference_refresh(weights, rule, model, teachers, data, s: RefreshSettings, *, lr, seed,
                      epoch, batch):
    model = copy.deepcopy(model).double().train(s.model_mode == "train")
    teachers = [copy.deepcopy(t).double().train(s.teacher_mode == "train") for t in teachers]
    W, b = model.fc.weight.detach(), model.fc.bias.detach()
    n, n_val = data.n_train, len(data.y_val)
    order = np.random.default_rng(derive_seed(seed, "meta_order", epoch)).permutation(n)
    batches = [order[i:i + batch] for i in range(0, n, batch)]
    chunks = [batches[i:i + s.chunk] for i in range(0, len(batches), s.chunk)]
    if s.val_batch is None:
        val_sets = [np.arange(n_val)]
    else:
        vorder = np.random.default_rng(derive_seed(seed, "meta_val", epoch)).permutation(n_val)
        val_sets = [vorder[i:i + s.val_batch]
                    for i in range(0, n_val - s.val_batch + 1, s.val_batch)]
    gen = torch.Generator().manual_seed(derive_seed(seed, "meta_augment", epoch))
    vgen = torch.Generator().manual_seed(derive_seed(seed, "meta_val_augment", epoch))

    def feats(x):
        with torch.no_grad():
            return model.forward_head(model.forward_features(x.double()), pre_logits=True)

    def val_features(idx):
        return feats(data.batch("val", torch.as_tensor(idx), vgen if s.val_augment else None))

    fixed = s.val_batch is None or (s.model_mode == "eval" and not s.val_augment)
    if fixed:
        hv_all = val_features(np.arange(n_val) if s.val_batch is not None else val_sets[0])
    lam = weights.clone().double()
    for j, chunk in enumerate(chunks):
        grads, hs, ys, idxs = [], [], [], []
        for bt in chunk:
            idx = torch.as_tensor(bt)
            x, y = data.train_batch(idx, gen), data.y_train[idx]
            h = feats(x)
            with torch.no_grad():
                t = [tm(x.double()) for tm in teachers]
            for i in range(len(bt)):  # per example, per term: d(term_i / B)/d(W, b)
                row = []
                for k in range(1 + len(teachers)):
                    Wp, bp = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
                    o = h[i] @ Wp.T + bp
                    if k == 0:
                        loss = -F.log_softmax(o, 0)[y[i]]
                    else:
                        q = F.softmax(t[k - 1][i] / T, 0)
                        loss = T * T * (q * (torch.log(q) - F.log_softmax(o / T, 0))).sum()
                    row.append(torch.autograd.grad(loss / len(bt), (Wp, bp)))
                grads.append(row)
            hs.append(h)
            ys.append(y)
            idxs.append(idx)
        idx, h_chunk, y_chunk = torch.cat(idxs), torch.cat(hs), torch.cat(ys)
        vs = val_sets[j % len(val_sets)]
        if s.val_batch is None:
            hv = hv_all
        elif fixed:
            hv = hv_all[torch.as_tensor(vs)]
        else:
            hv = val_features(vs)
        yv = data.y_val[torch.as_tensor(vs)]
        for _ in range(s.steps):
            w = lam[idx].clone().requires_grad_(True)
            gW = sum(w[i, k] * grads[i][k][0] for i in range(len(idx))
                     for k in range(w.shape[1]))
            gb = sum(w[i, k] * grads[i][k][1] for i in range(len(idx))
                     for k in range(w.shape[1]))
            W2, b2 = W - lr * gW, b - lr * gb
            obj = (1 - s.train_share) * F.cross_entropy(hv @ W2.T + b2, yv)
            if s.train_share:
                obj = obj + s.train_share * F.cross_entropy(h_chunk @ W2.T + b2, y_chunk)
            g = torch.autograd.grad(obj, w)[0]
            lam[idx] = rule(lam[idx].detach(), g, s.meta_lr)
    return lam


RELEASED = dict(chunk=2, val_batch=12, steps=5, meta_lr=1500.0)
V1 = dict(chunk=2, val_batch=None, steps=10, meta_lr=2000.0, train_share=0.25,
          model_mode="train")
CASES = {
    # name: (mixing, reference rule, settings, initial weights)
    "almkd-suite": (ConvexMixing, ref_convex, RefreshSettings(**RELEASED), "suite"),
    "amal-suite": (ClampedMixing, ref_clamped, RefreshSettings(**RELEASED), "suite"),
    "amal-authors": (ClampedMixing, ref_clamped,
                     RefreshSettings(**RELEASED, val_augment=True), "authors"),
    "almkd_v1-suite": (V1Mixing, ref_v1, RefreshSettings(**V1), "suite"),
    "almkd_v1-authors": (V1Mixing, ref_v1,
                         RefreshSettings(**V1, val_augment=True, teacher_mode="train"),
                         "authors"),
}


@pytest.mark.parametrize("n_teachers", [1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_refresh_equals_independent_reference(case, n_teachers):
    mixing, rule, settings, protocol = CASES[case]
    torch.manual_seed(0)
    model = BNNet()
    teachers = [BNNet(width=5) for _ in range(n_teachers)]
    with torch.no_grad():  # running statistics unlike any batch's, so eval != train mode
        for net in [model, *teachers]:
            net.bn.running_mean.uniform_(-1.0, 1.0)
            net.bn.running_var.uniform_(0.3, 3.0)
    data = FakeData()
    w0 = mixing.init(data.n_train, n_teachers, 0.9, protocol, "cpu",
                     torch.Generator().manual_seed(5))
    kw = dict(lr=0.001, seed=3, epoch=20)
    slow = reference_refresh(w0, rule, model, teachers, data, settings, batch=8, **kw)
    fast = w0.clone()
    lastlayer_refresh(fast, mixing.step, settings, model=model, teachers=teachers, data=data,
                      T=T, batch_size=8, **kw)
    moved = (fast - w0).abs()
    assert moved.max() > 1e-3, "the refresh did not move the weights"
    torch.testing.assert_close(fast.double(), slow, rtol=1e-4, atol=2e-6)
    # the comparison is not decided by the bounds alone
    bounds = {"almkd": (0.0, 1.0), "amal": (1e-7, 2 - 1e-7), "almkd_v1": (1e-7, 1 - 1e-7)}
    lo, hi = bounds[case.split("-")[0]]
    inside = ((slow > lo + 1e-6) & (slow < hi - 1e-6) & (moved > 1e-6)).double().mean()
    assert inside > 0.5, f"only {inside:.0%} of the weights moved and stayed inside the bounds"


def test_reference_sees_what_the_settings_change():
    """The reference itself distinguishes the settings the refresh must honour (else the
    comparison above could pass with the wrong setting on both sides)."""
    torch.manual_seed(0)
    model, teachers, data = BNNet(), [BNNet(width=5)], FakeData()
    with torch.no_grad():
        for net in [model, *teachers]:
            net.bn.running_mean.uniform_(-1.0, 1.0)
            net.bn.running_var.uniform_(0.3, 3.0)
    w0 = ClampedMixing.init(data.n_train, 1, 0.9, "suite", "cpu")
    kw = dict(lr=0.001, seed=3, epoch=20, batch=8)
    base = reference_refresh(w0, ref_clamped, model, teachers, data,
                             RefreshSettings(**RELEASED), **kw)
    for change in (dict(val_augment=True), dict(model_mode="train"), dict(teacher_mode="train"),
                   dict(train_share=0.25), dict(val_batch=None)):
        other = reference_refresh(w0, ref_clamped, model, teachers, data,
                                  RefreshSettings(**{**RELEASED, **change}), **kw)
        assert (other - base).abs().max() > 1e-4, change


@pytest.mark.parametrize(("method", "rule", "protocol"), [
    ("almkd", ref_convex, "suite"), ("amal", ref_clamped, "authors"),
    ("almkd_v1", ref_v1, "suite"), ("almkd_v1", ref_v1, "authors")])
def test_method_refresh_uses_its_context(method, rule, protocol):
    """A method's scheduled refresh passes the run's learning rate, seed, epoch, batch size,
    temperature and its settings (from hyper-parameters and protocol) to the refresh: the
    result equals the reference run with those values; nothing happens off schedule."""
    from methods import build_method
    from methods.base import MethodContext

    torch.manual_seed(0)
    model, teachers, data = BNNet(), [BNNet(width=5), BNNet(width=5)], FakeData()
    hp = {"meta_chunk": 2, "meta_start": 4, "meta_every": 3, "meta_batch": 8, "T": 3.0}
    if method != "almkd_v1":
        hp["meta_val_batch"] = 12
    m = build_method(method, **hp)
    c = MethodContext(n_train=data.n_train, num_classes=C, n_teachers=2,
                      device=torch.device("cpu"), seed=11, protocol=protocol, lr=0.001,
                      extras={"model": model, "teachers": teachers, "data": data})
    m.setup(c)
    w0 = m.weights.clone()
    for epoch in (0, 3, 5, 6):  # none due: start 4, then 4, 7, 10, ...
        m.on_epoch_start(epoch, c)
    assert torch.equal(m.weights, w0) and m.history["epoch"] == []
    global T
    saved, T = T, 3.0  # the reference reads the module's temperature
    try:
        ref = reference_refresh(w0, rule, model, teachers, data, m.settings, lr=0.001, seed=11,
                                epoch=7, batch=8)
    finally:
        T = saved
    m.on_epoch_start(7, c)
    assert m.history["epoch"] == [7]
    assert torch.equal(m.history["weights"][0], m.weights.float())
    agree, prob = m.history["teacher_agrees"][0], m.history["teacher_prob_given"][0]
    assert agree.shape == (data.n_train, 2) and agree.dtype == torch.bool
    assert ((prob > 0) & (prob < 1)).all()
    assert (m.weights - w0).abs().max() > 1e-3
    torch.testing.assert_close(m.weights.double(), ref, rtol=1e-4, atol=2e-6)


def test_refresh_schedule_and_validation_batches():
    from methods.alm_refresh import refresh_due, refresh_plan

    due = [e for e in range(40) if refresh_due(e, 10, 10)]
    assert due == [10, 20, 30]
    assert [e for e in range(12) if refresh_due(e, 4, 3)] == [4, 7, 10]
    for n_val, v in ((30, 12), (24, 12), (25, 12), (23, 12), (900, 1000), (12, 12)):
        plan = refresh_plan(50, n_val, 3, 20, 8, 2, v)
        size = min(v, n_val)
        assert len(plan.val_batches) == n_val // size, (n_val, v)
        assert all(len(b) == size for b in plan.val_batches)
        flat = np.concatenate(plan.val_batches)
        assert len(set(flat)) == len(flat) and flat.max() < n_val
    whole = refresh_plan(50, 30, 3, 20, 8, 2, None)
    assert len(whole.val_batches) == 1 and np.array_equal(whole.val_batches[0], np.arange(30))
    # training batches: a permutation cut into batches of 8 (the last smaller), chunks of 2
    assert np.array_equal(np.sort(np.concatenate(whole.batches)), np.arange(50))
    assert [len(b) for b in whole.batches] == [8] * 6 + [2]
    assert whole.chunks == [(0, 2), (2, 4), (4, 6), (6, 7)]
