"""Methods against independent references: autograd in float64, a naive refresh written the
way the authors' code does it, double backward, and a bisection simplex projection."""

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.optimize import brentq

from benchmark.core.errors import UserError
from benchmark.core.seeds import derive_seed
from methods.alm_refresh import lastlayer_hypergrad, logit_grads
from methods.almkd_full import exact_hypergrad, stats_free_copy
from methods.losses import ce_logit_grad, kd_logit_grad, kd_per_instance, term_losses
from methods.mixing import ClampedMixing, ConvexMixing, project_simplex

T = 4.0


def test_logit_gradients_match_autograd():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(6, 5, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(2, 6, 5, dtype=torch.float64, generator=g)
    y = torch.randint(0, 5, (6,), generator=g)
    ce = F.cross_entropy(s, y, reduction="sum")
    torch.testing.assert_close(torch.autograd.grad(ce, s)[0], ce_logit_grad(s.detach(), y))
    for m in range(2):
        kd = kd_per_instance(s, t, T)[m].sum()
        expected = kd_logit_grad(s.detach(), t, T)[m]
        torch.testing.assert_close(torch.autograd.grad(kd, s)[0], expected)
    # KD term is T^2 KL(softmax(t/T) || softmax(s/T))
    ref = T * T * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t[0] / T, 1), reduction="none").sum(1)
    torch.testing.assert_close(kd_per_instance(s, t, T)[0], ref)


def test_lastlayer_hypergrad_matches_autograd_through_a_virtual_head_step():
    """Two batches (sizes 4 and 3) in one chunk, CE and two KD terms, float64."""
    g = torch.Generator().manual_seed(1)
    dt = torch.float64
    c, d, v, lr = 5, 4, 6, 0.3
    W = torch.randn(c, d, dtype=dt, generator=g, requires_grad=True)
    b = torch.randn(c, dtype=dt, generator=g, requires_grad=True)
    hs = [torch.randn(4, d, dtype=dt, generator=g), torch.randn(3, d, dtype=dt, generator=g)]
    ys = [torch.randint(0, c, (len(h),), generator=g) for h in hs]
    ts = [torch.randn(2, len(h), c, dtype=dt, generator=g) for h in hs]
    hv = torch.randn(v, d, dtype=dt, generator=g)
    yv = torch.randint(0, c, (v,), generator=g)
    w = torch.rand(7, 3, dtype=dt, generator=g, requires_grad=True)
    # reference: explicit virtual SGD step of the head on the chunk's summed batch means
    loss, start = 0.0, 0
    for h, y, t in zip(hs, ys, ts, strict=True):
        terms = term_losses(h @ W.T + b, y, t, T)
        loss = loss + (w[start:start + len(y)].T * terms).mean(1).sum()
        start += len(y)
    gW, gb = torch.autograd.grad(loss, (W, b), create_graph=True)
    val = F.cross_entropy(hv @ (W - lr * gW).T + (b - lr * gb), yv)
    ref = torch.autograd.grad(val, w, retain_graph=True)[0]
    # closed form
    with torch.no_grad():
        gs = torch.cat([logit_grads(h @ W.T + b, y, t, T) for h, y, t in zip(hs, ys, ts,
                                                                          strict=True)], dim=1)
        got, got_val = lastlayer_hypergrad(w.detach(), gs, torch.cat(hs), hv, hv @ W.T + b, yv, lr)
    assert torch.allclose(got, ref, rtol=1e-8, atol=1e-14)
    assert abs(got_val.item() - val.item()) < 1e-12
    # v1's objective: 0.75 x validation CE + 0.25 x the chunk's own training CE at theta'
    h_all, y_all = torch.cat(hs), torch.cat(ys)
    val2 = (0.75 * F.cross_entropy(hv @ (W - lr * gW).T + (b - lr * gb), yv)
            + 0.25 * F.cross_entropy(h_all @ (W - lr * gW).T + (b - lr * gb), y_all))
    ref2 = torch.autograd.grad(val2, w)[0]
    coef = torch.cat([torch.full((v,), 0.75 / v, dtype=dt), torch.full((7,), 0.25 / 7, dtype=dt)])
    with torch.no_grad():
        rows = torch.cat([hv, h_all])
        got2, got_val2 = lastlayer_hypergrad(w.detach(), gs, h_all, rows, rows @ W.T + b,
                                             torch.cat([yv, y_all]), lr, coef)
    assert torch.allclose(got2, ref2, rtol=1e-8, atol=1e-14)
    assert abs(got_val2.item() - val2.item()) < 1e-12
    assert not torch.allclose(got2, got, rtol=1e-3)  # the training rows matter


# ---- almkd_full --------------------------------------------------------------------------

class TinyBNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3, 4)

    def forward_features(self, x):
        return F.relu(self.bn(self.conv(x)))

    def forward_head(self, x, pre_logits=False):
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _tiny_problem():
    torch.manual_seed(0)
    model = TinyBNNet().double()
    with torch.no_grad():  # non-trivial running statistics for the eval-mode validation loss
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    model.train()
    x, y = torch.randn(6, 1, 5, 5, dtype=torch.float64), torch.randint(0, 4, (6,))
    t = torch.randn(2, 6, 4, dtype=torch.float64)
    xv, yv = torch.randn(5, 1, 5, 5, dtype=torch.float64), torch.randint(0, 4, (5,))
    w = torch.rand(6, 3, dtype=torch.float64)
    return model, x, y, t, xv, yv, w


def double_backward_reference(model, x, y, t, xv, yv, w, lr):
    """dL_val(theta')/dw by autograd through an explicit virtual SGD step: train-mode BN
    (batch statistics) for the step, eval-mode BN (the model's running statistics) for L_val."""
    from torch.func import functional_call

    params = dict(model.named_parameters())
    wr = w.clone().requires_grad_(True)
    scratch = {k: v.clone() for k, v in model.named_buffers()}
    logits = functional_call(model, {**params, **scratch}, (x,))  # train mode: batch stats
    loss = (wr.T * term_losses(logits, y, t, T)).mean(1).sum()
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    new = {k: p - lr * g for (k, p), g in zip(params.items(), grads, strict=True)}
    model.eval()
    val = F.cross_entropy(functional_call(model, {**new, **dict(model.named_buffers())}, (xv,)),
                          yv)
    model.train()
    return torch.autograd.grad(val, wr)[0]


@pytest.mark.parametrize("mode", ["double_backward", "jvp"])
def test_exact_hypergradient_equals_double_backward_and_leaves_bn_alone(mode):
    model, x, y, t, xv, yv, w = _tiny_problem()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    got = exact_hypergrad(model, x, y, t, w, 0.2, xv, yv, T, mode=mode, val_bn="eval",
                          stats_free=stats_free_copy(model))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed"
    assert model.training
    ref = double_backward_reference(model, x, y, t, xv, yv, w, 0.2)
    assert torch.allclose(got, ref, rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("mode", ["double_backward", "jvp"])
def test_exact_hypergradient_reusing_the_training_forward(mode):
    """Reusing the training step's own forward (which, like any training step, updates the
    running statistics once) gives the reference computed with those statistics."""
    model, x, y, t, xv, yv, w = _tiny_problem()
    logits = model(x)
    after_forward = {k: v.clone() for k, v in model.state_dict().items()}
    got = exact_hypergrad(model, x, y, t, w, 0.2, xv, yv, T, mode=mode, logits=logits,
                          val_bn="eval", stats_free=stats_free_copy(model))
    for k, v in model.state_dict().items():
        assert torch.equal(v, after_forward[k]), f"{k} changed"
    ref = double_backward_reference(model, x, y, t, xv, yv, w, 0.2)
    assert torch.allclose(got, ref, rtol=1e-8, atol=1e-14)
    logits.sum().backward()  # the training step's graph is still there for the real backward


# ---- mixing ------------------------------------------------------------------------------

def bisection_projection(v: np.ndarray) -> np.ndarray:
    """Independent reference: solve sum(max(v - theta, 0)) = 1 for theta by root finding."""
    theta = brentq(lambda th: np.maximum(v - th, 0).sum() - 1.0, v.min() - 1.0, v.max())
    return np.maximum(v - theta, 0)


def test_simplex_projection_is_exact():
    rng = np.random.default_rng(0)
    v = rng.normal(0, 2, (200, 5))
    v[:5] = [[0.2, 0.3, 0.5, 0, 0], [1, 1, 1, 1, 1], [-3, -3, 10, 0, 0], [0, 0, 0, 0, 0],
             [5, -1, 2, 2, 0.5]]
    got = project_simplex(torch.from_numpy(v)).numpy()
    ref = np.stack([bisection_projection(row) for row in v])
    np.testing.assert_allclose(got, ref, atol=1e-10)
    np.testing.assert_allclose(got[0], [0.2, 0.3, 0.5, 0, 0], atol=1e-12)  # already feasible


def test_mixing_steps_stay_feasible():
    g = torch.Generator().manual_seed(0)
    for k in (2, 4):
        w = ConvexMixing.init(50, k - 1, 0.9, "suite", "cpu")
        np.testing.assert_allclose(w.sum(1).numpy(), 1.0)
        for _ in range(5):
            w = ConvexMixing.step(w, torch.randn(50, k, generator=g), 1.0)
            assert (w >= 0).all() and torch.allclose(w.sum(1), torch.ones(50, dtype=w.dtype))
    w = ClampedMixing.init(50, 2, 0.9, "authors", "cpu")
    assert torch.equal(w[0], torch.tensor([0.1, 0.9, 0.9]))
    for _ in range(5):
        w = ClampedMixing.step(w, torch.randn(50, 3, generator=g) * 10, 1.0)
        assert (w >= 1e-7).all() and (w <= 2 - 1e-7).all()


def test_single_teacher_convex_step_is_the_scalar_a_step():
    w = torch.tensor([[0.3, 0.7]])
    grad = torch.tensor([[0.02, -0.01]])
    # a' = a - lr * (dL/dw_kd - dL/dw_ce), clamped to [0, 1]
    torch.testing.assert_close(ConvexMixing.step(w, grad, 10.0), torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(ConvexMixing.step(w, grad, 1.0), torch.tensor([[0.27, 0.73]]))


def test_almkd_full_meta_step_descends_the_exact_hypergradient():
    """One every_step meta step of almkd_full moves the batch's weights along minus the
    exact hypergradient (double backward reference, on the validation subset its seeded
    generator draws), through the convex rule; a sign flip or a wrong learning rate in the
    method's step fails here. It also records the teacher diagnostics of the step, takes no
    meta step before meta_start, and snapshots weights and diagnostics at due epochs."""
    from methods import build_method
    from methods.base import MethodContext, StepOutput

    model, x, y, t, _, _, _ = _tiny_problem()
    model = model.float()
    x, t = x.float(), t[:1].float()
    g = torch.Generator().manual_seed(3)  # 12 validation examples: which 3 are drawn matters
    xv, yv = torch.randn(12, 1, 5, 5, generator=g), torch.randint(0, 4, (12,), generator=g)

    class Data:
        y_val = yv
        n_train = 6

        @staticmethod
        def batch(split, idx, gen=None):
            return {"val": xv}[split][idx]

    ctx = MethodContext(n_train=6, num_classes=4, n_teachers=1, device=torch.device("cpu"),
                        seed=0, lr=0.2, extras={"model": model, "data": Data})
    idx = torch.arange(6)
    late = build_method("almkd_full", meta_start=1, meta_every=1)
    late.setup(ctx)
    late.on_epoch_start(0, ctx)
    w_before = late.weights.clone()
    late.loss(StepOutput(model(x), torch.zeros(6, 3), y, idx, t, x))
    assert torch.equal(late.weights, w_before)  # epoch 0 < meta_start: no meta step
    assert late.seen.all()  # ... but the diagnostics of every instance are recorded
    assert torch.equal(late.agree[:, 0], t[0].argmax(1) == y)
    torch.testing.assert_close(late.prob_given[:, 0],
                               torch.softmax(t[0], 1)[torch.arange(6), y])
    late.on_epoch_start(1, ctx)  # due: snapshot with real diagnostics
    assert late.history["epoch"] == [1]
    assert torch.equal(late.history["weights"][0], late.weights)
    assert torch.equal(late.history["teacher_agrees"][0], late.agree)
    assert torch.equal(late.history["teacher_prob_given"][0], late.prob_given)
    for ok in ({"schedule": "almkd"}, {"hypergrad": "double_backward"}):
        build_method("almkd_full", **ok).setup(ctx)
    for bad in ({"schedule": "daily"}, {"hypergrad": "finite_differences"},
                {"refresh_mode": "train"}, {"meta_train_share": 0.25}):
        with pytest.raises(UserError):
            build_method("almkd_full", **bad).setup(ctx)

    m = build_method("almkd_full", meta_start=0, full_val_batch=3, meta_lr=3.0)
    m.setup(ctx)
    m.on_epoch_start(0, ctx)
    assert m.history["teacher_agrees"] == []  # nothing seen yet: no diagnostics stored
    w0 = m.weights.clone()
    g = torch.Generator().manual_seed(derive_seed(0, "full_val", 0))
    order = torch.randperm(12, generator=g)[:3]
    logits = model(x)  # the training step's forward (updates the running statistics once)
    ref_grad = double_backward_reference(copy.deepcopy(model).double(), x.double(), y,
                                         t.double(), xv[order].double(), yv[order],
                                         w0.double(), 0.2)
    m.loss(StepOutput(logits, torch.zeros(6, 3), y, idx, t, x))
    a = (w0[:, 1].double() - 3.0 * (ref_grad[:, 1] - ref_grad[:, 0])).clamp(0, 1)
    torch.testing.assert_close(m.weights[:, 1].double(), a, rtol=1e-4, atol=1e-6)
    assert (m.weights - w0).abs().max() > 1e-3


def test_stats_free_copy_leaves_the_model_alone():
    model, *_ = _tiny_problem()
    keys = set(model.state_dict())
    clone = stats_free_copy(model)
    assert set(model.state_dict()) == keys and model.bn.track_running_stats
    assert model.bn.running_mean is not None and clone.bn.running_mean is None
    assert clone.training


def test_exact_hypergradient_jvp_needs_the_stats_free_copy():
    model, x, y, t, xv, yv, w = _tiny_problem()
    with pytest.raises(ValueError, match="stats_free"):
        exact_hypergrad(model, x, y, t, w, 0.2, xv, yv, T, mode="jvp", val_bn="eval",
                        logits=model(x))
    with pytest.raises(ValueError, match="mode 'backward'"):
        exact_hypergrad(model, x, y, t, w, 0.2, xv, yv, T, mode="backward", val_bn="eval",
                        logits=model(x), stats_free=stats_free_copy(model))
    with pytest.raises(ValueError, match="val_bn 'running': one of eval, train$"):
        exact_hypergrad(model, x, y, t, w, 0.2, xv, yv, T, mode="jvp", val_bn="running",
                        logits=model(x), stats_free=stats_free_copy(model))
