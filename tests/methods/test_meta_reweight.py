"""The meta-reweighting rivals (issue 25): ``l2rw`` and ``mwnet`` against references written
here from scratch in float64 (a tiny MLP with BatchNorm as explicit tensors, its losses by
hand, a hand-written virtual SGD step and plain double backward; a hand-written Adam and
Nesterov SGD for the weight net), a hand-made L2RW case whose weights are known, exact
resumption, and short runs on the synthetic task with and without a teacher."""

from __future__ import annotations

import io
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from benchmark.data.labels import LabelsRequest, write_labels
from benchmark.data.noise import NoiseSpec
from benchmark.plan.specs import RunSpec
from benchmark.spec.trainconfig import TrainConfig
from benchmark.training.run import run
from methods import build_method
from methods.base import MethodContext, StepOutput
from methods.catalog import method_uses_teachers
from tests.conftest import interrupt_after

DT = torch.float64
T, A, LR, DECAY = 3.0, 0.7, 0.3, 0.02  # not the defaults: each must reach the numbers
B, NV, C = 6, 7, 4


# ---- the model, and the same model by hand -----------------------------------------------

class TinyMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Linear(5, C)

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def ref_params(model):
    return [p.detach().clone().requires_grad_(True) for p in
            (model.fc1.weight, model.fc1.bias, model.bn.weight, model.bn.bias,
             model.fc2.weight, model.fc2.bias)]


def ref_forward(P, x, running=None):
    """Batch statistics (biased variance) when ``running`` is None, else (mean, var)."""
    W1, b1, g, beta, W2, b2 = P
    h = x @ W1.T + b1
    if running is None:
        mu = h.mean(0)
        var = ((h - mu) ** 2).mean(0)
    else:
        mu, var = running
    h = (h - mu) / torch.sqrt(var + 1e-5) * g + beta
    return torch.clamp(h, min=0) @ W2.T + b2


def log_softmax(z):
    return z - torch.logsumexp(z, 1, keepdim=True)


def ref_mix(z, y, t):
    """CE; with M teachers (1 - a) CE + sum_m (a / M) T^2 KL(q_m || p) (protocol suite)."""
    ce = -log_softmax(z)[torch.arange(len(y)), y]
    if t is None:
        return ce
    kd = [T * T * (torch.exp(log_softmax(tm / T)) * (log_softmax(tm / T) - log_softmax(z / T)))
          .sum(1) for tm in t]
    return (1 - A) * ce + sum(A / len(t) * k for k in kd)


def ref_meta_ce(P, xv, yv, running):
    return (-log_softmax(ref_forward(P, xv, running))[torch.arange(len(yv)), yv]).mean()


def problem(n_teachers, seed=1):
    torch.manual_seed(seed)
    model = TinyMLP().double().train()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.bn.weight.uniform_(0.5, 1.5)
        model.bn.bias.uniform_(-0.3, 0.3)
    x, y = torch.randn(B, 3, dtype=DT), torch.randint(0, C, (B,))
    t = torch.randn(n_teachers, B, C, dtype=DT) * 2 if n_teachers else None
    xv, yv = torch.randn(NV, 3, dtype=DT), torch.randint(0, C, (NV,))
    # near meta examples, two with their labels and two with others: weights of both signs
    x[:2], y[:2] = xv[:2] + 0.1, yv[:2]
    x[2], y[2] = xv[0] + 0.1, (yv[0] + 1) % C
    x[3], y[3] = xv[1] - 0.1, (yv[1] + 2) % C
    return model, x, y, t, xv, yv


class MetaData:
    """The engine's data as the methods see it: the clean meta split is ``val``."""

    def __init__(self, xv, yv):
        self.xv, self.y_val, self.splits = xv, yv, []

    def batch(self, split, idx, gen=None):
        self.splits.append(split)
        return self.xv[idx]


def method_for(name, model, xv, yv, n_teachers, seed=0, **hp):
    loss = "kd" if n_teachers else "ce"
    m = build_method(name, loss=loss, T=T, kd_weight=A, **{"meta_batch": NV, **hp})
    ctx = MethodContext(n_train=B, num_classes=C, n_teachers=n_teachers,
                        device=torch.device("cpu"), seed=seed, lr=LR,
                        extras={"model": model, "data": MetaData(xv, yv),
                                "cfg": SimpleNamespace(batch_size=B, weight_decay=DECAY)})
    m.setup(ctx)
    m.on_epoch_start(0, ctx)
    return m, ctx


def step_output(model, x, y, t):
    logits = model(x)  # the training step's forward (train mode: running statistics move once)
    return StepOutput(logits, torch.zeros(B, 1, dtype=DT), y, torch.arange(B), t, x)


def running(model):
    return model.bn.running_mean.clone(), model.bn.running_var.clone()


TEACHERS = [0, 1, 2]  # 0: loss ce, no teacher; 1, 2: loss kd


# ---- l2rw -------------------------------------------------------------------------------

def ref_l2rw_hypergrad(P, x, y, t, xv, yv, lr, decay, run_stats):
    """eps = 0 on each example's weight of the batch mean, one virtual SGD step, meta cost
    mean CE + decay / 2 ||theta'||^2 (the authors' cost with its L2 term), by double backward."""
    eps = torch.zeros(len(y), dtype=DT, requires_grad=True)
    loss = (eps * ref_mix(ref_forward(P, x), y, t)).sum() / len(y)
    grads = torch.autograd.grad(loss, P, create_graph=True)
    P1 = [p - lr * g for p, g in zip(P, grads, strict=True)]
    meta = ref_meta_ce(P1, xv, yv, run_stats) + decay / 2 * sum((p * p).sum() for p in P1)
    return torch.autograd.grad(meta, eps)[0]


@pytest.mark.parametrize("meta_bn", ["train", "eval"])
@pytest.mark.parametrize("n_teachers", TEACHERS)
def test_l2rw_hypergradient_weights_and_loss_match_double_backward(n_teachers, meta_bn):
    model, x, y, t, xv, yv = problem(n_teachers)
    m, _ = method_for("l2rw", model, xv, yv, n_teachers, meta_bn=meta_bn)
    out = step_output(model, x, y, t)
    after_forward = {k: v.clone() for k, v in model.state_dict().items()}
    from methods.l2rw import l2rw_hypergrad

    got_h = l2rw_hypergrad(model, m.stats_free, x,
                           lambda z: m.per_example(z, y, t), LR, xv, yv, decay=DECAY,
                           batch_stats=m.val_stats())
    loss = m.loss(out)
    for k, v in model.state_dict().items():  # the look-ahead moved no parameter, no buffer
        assert torch.equal(v, after_forward[k]), k
    P = ref_params(model)
    stats = None if meta_bn == "train" else running(model)
    ref_h = ref_l2rw_hypergrad(P, x, y, t, xv, yv, LR, DECAY, stats)
    torch.testing.assert_close(got_h, ref_h, rtol=1e-9, atol=1e-15)
    assert (ref_h < 0).sum() >= 2 and (ref_h > 0).sum() >= 2  # clamp and sign matter
    ref_w = torch.clamp(-ref_h, min=0) / torch.clamp(-ref_h, min=0).sum()
    with torch.no_grad():
        ref_loss = (ref_w * ref_mix(ref_forward(P, x), y, t)).sum()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-10, atol=0)
    assert set(m.ctx.extras["data"].splits) == {"val"}  # the clean meta split, nothing else
    loss.backward()  # the training forward's graph is intact for the real step


def test_l2rw_meta_decay_null_is_the_runs_weight_decay_and_zero_drops_it():
    model, x, y, t, xv, yv = problem(1)
    P = ref_params(model)
    for decay, want in ((None, DECAY), (0.0, 0.0)):
        m, _ = method_for("l2rw", model, xv, yv, 1, meta_decay=decay)
        assert m.decay == want
    ref0 = ref_l2rw_hypergrad(P, x, y, t, xv, yv, LR, 0.0, None)
    refd = ref_l2rw_hypergrad(P, x, y, t, xv, yv, LR, DECAY, None)
    assert not torch.allclose(ref0, refd, rtol=1e-6)  # the L2 term changes the weights


def linear_case(labels, inputs):
    """Softmax regression without bias, 2 classes, weights 0: every example's p = (1/2, 1/2)
    and its gradient (p - e_y) x^T; the meta set is one example, x_v = e_1, label 0."""
    model = nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        model.weight.zero_()
    x = torch.tensor(inputs, dtype=DT)
    y = torch.tensor(labels)
    xv, yv = torch.tensor([[1.0, 0, 0]], dtype=DT), torch.tensor([0])
    m = build_method("l2rw", loss="ce", meta_batch=1)
    ctx = MethodContext(n_train=len(y), num_classes=2, n_teachers=0, device=torch.device("cpu"),
                        seed=0, lr=LR, extras={"model": model, "data": MetaData(xv, yv),
                                               "cfg": SimpleNamespace(batch_size=4,
                                                                      weight_decay=5e-4)})
    m.setup(ctx)
    m.on_epoch_start(0, ctx)
    return m, StepOutput(model(x), torch.zeros(len(y), 1, dtype=DT), y, torch.arange(len(y)),
                         None, x)


def test_l2rw_weights_on_a_hand_made_case():
    """The meta example itself (gradient aligned: weight ∝ 0.5 |x|), the same with twice the
    input (∝ 1.0), the same input with the other label (its gradient is exactly opposite to
    the meta gradient: weight 0) and an orthogonal input (inner product 0: weight 0). So
    1/3, 2/3, 0, 0; the training loss is their weighted sum of CE = log 2."""
    m, out = linear_case([0, 0, 1, 0], [[1.0, 0, 0], [2.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0]])
    w = m.weights(out)
    torch.testing.assert_close(w, torch.tensor([1 / 3, 2 / 3, 0, 0], dtype=DT), rtol=1e-12,
                               atol=1e-15)
    assert w[2] == 0 and w[3] == 0
    torch.testing.assert_close(m.loss(out), torch.tensor(math.log(2), dtype=DT))


def test_l2rw_all_weights_zero_stays_zero():
    m, out = linear_case([1, 1], [[1.0, 0, 0], [3.0, 0, 0]])  # both opposite to the meta one
    w = m.weights(out)
    assert torch.equal(w, torch.zeros(2, dtype=DT))
    loss = m.loss(out)
    assert loss.item() == 0 and torch.isfinite(loss)


def test_l2rw_weights_do_not_depend_on_the_step_size():
    """The positive factor lr / B cancels in the normalisation (their step size is 1)."""
    model, x, y, t, xv, yv = problem(1)
    from methods.l2rw import l2rw_weights

    P = ref_params(model)
    w1 = l2rw_weights(ref_l2rw_hypergrad(P, x, y, t, xv, yv, 0.3, 0.0, None))
    w2 = l2rw_weights(ref_l2rw_hypergrad(P, x, y, t, xv, yv, 0.003, 0.0, None))
    torch.testing.assert_close(w1, w2, rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(w1.sum(), torch.tensor(1.0, dtype=DT))


# ---- mwnet ------------------------------------------------------------------------------

def ref_net(Phi, cost):
    A1, c1, A2, c2 = Phi
    h = torch.clamp(cost[:, None] @ A1.T + c1, min=0)
    return (1 / (1 + torch.exp(-(h @ A2.T + c2)))).squeeze(1)


def ref_batch_loss(v, losses, normalise):
    """MW-Net.py: sum(cost * v) / B; train_WRN-28-10_Meta_PGC.py: sum(cost * v / sum v)."""
    if normalise == "sum":
        return (losses * (v / v.sum())).sum()
    return (losses * v).sum() / len(v)


def ref_mwnet_grad(P, Phi, x, y, t, xv, yv, lr, normalise, run_stats):
    """d L_meta(theta'(phi)) / d phi by double backward through a hand-written SGD step."""
    losses = ref_mix(ref_forward(P, x), y, t)
    v = ref_net(Phi, losses.detach())
    grads = torch.autograd.grad(ref_batch_loss(v, losses, normalise), P, create_graph=True)
    P1 = [p - lr * g for p, g in zip(P, grads, strict=True)]
    return torch.autograd.grad(ref_meta_ce(P1, xv, yv, run_stats), Phi)


def net_params(m):
    net = m.net
    return [p.detach().clone().requires_grad_(True) for p in
            (net[0].weight, net[0].bias, net[2].weight, net[2].bias)]


def ref_adam(p, g, st, lr, wd, b1=0.9, b2=0.999, eps=1e-8):
    g = g + wd * p
    st["t"] += 1
    st["m"] = b1 * st["m"] + (1 - b1) * g
    st["v"] = b2 * st["v"] + (1 - b2) * g * g
    mhat, vhat = st["m"] / (1 - b1 ** st["t"]), st["v"] / (1 - b2 ** st["t"])
    return p - lr * mhat / (torch.sqrt(vhat) + eps)


def ref_nesterov(p, g, st, lr, wd, mu=0.9):
    d = g + wd * p
    st["buf"] = d if st["buf"] is None else mu * st["buf"] + d
    return p - lr * (d + mu * st["buf"])


@pytest.mark.parametrize("meta_bn", ["train", "eval"])
@pytest.mark.parametrize("normalise", ["none", "sum"])
@pytest.mark.parametrize("n_teachers", TEACHERS)
def test_mwnet_hypergradient_matches_double_backward(n_teachers, normalise, meta_bn):
    from methods.mwnet import mwnet_hypergrad

    model, x, y, t, xv, yv = problem(n_teachers)
    m, _ = method_for("mwnet", model, xv, yv, n_teachers, normalise=normalise, meta_bn=meta_bn,
                      hidden=8)
    m.net.double()
    logits = model(x)
    stats = None if meta_bn == "train" else running(model)
    cost = m.per_example(logits, y, t).detach()
    got = mwnet_hypergrad(model, m.stats_free, m.net, x, y, t, m.coef, cost, LR, xv, yv, T,
                          normalise=normalise, logits=logits, val_bn=meta_bn)
    ref = ref_mwnet_grad(ref_params(model), net_params(m), x, y, t, xv, yv, LR, normalise, stats)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-15)
        assert r.abs().max() > 1e-6  # every parameter of the net gets a real gradient


@pytest.mark.parametrize("meta_bn", ["train", "eval"])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("normalise", ["none", "sum"])
@pytest.mark.parametrize("n_teachers", [0, 2])
def test_mwnet_net_steps_and_loss_match_a_hand_written_optimizer(n_teachers, normalise,
                                                                  optimizer, meta_bn):
    """Two training steps: each takes the net's step (its optimizer by hand: Adam with L2
    weight decay and bias correction, or Nesterov SGD with momentum 0.9; L_meta on the clean
    batch's BatchNorm statistics or on the running ones), then returns the batch loss with
    the weights of the updated net."""
    model, x, y, t, xv, yv = problem(n_teachers)
    lr_net, wd_net = 0.05, 0.01
    m, _ = method_for("mwnet", model, xv, yv, n_teachers, normalise=normalise, hidden=8,
                      meta_optimizer=optimizer, meta_lr=lr_net, meta_weight_decay=wd_net,
                      meta_bn=meta_bn)
    m.net.double()
    Phi = [p.detach().clone() for p in net_params(m)]
    states = [{"t": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p), "buf": None}
              for p in Phi]
    update = ref_adam if optimizer == "adam" else ref_nesterov
    for _ in range(2):
        out = step_output(model, x, y, t)
        loss = m.loss(out)
        P = ref_params(model)
        stats = None if meta_bn == "train" else running(model)  # after the step's forward
        g = ref_mwnet_grad(P, [p.clone().requires_grad_(True) for p in Phi], x, y, t, xv, yv,
                           LR, normalise, stats)
        Phi = [update(p, gp, st, lr_net, wd_net) for p, gp, st in zip(Phi, g, states,
                                                                      strict=True)]
        with torch.no_grad():
            losses = ref_mix(ref_forward(P, x), y, t)
            ref_loss = ref_batch_loss(ref_net(Phi, losses), losses, normalise)
        for got, want in zip(net_params(m), Phi, strict=True):
            torch.testing.assert_close(got.detach(), want, rtol=1e-9, atol=1e-14)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-10, atol=0)
        loss.backward()
        model.zero_grad()


def test_mwnet_normalisation_by_hand():
    """As the batch mean uses them: B v / sum v (their sum_i l_i v_i / sum v), v itself summed
    when the sum is 0 (B v in the mean), never NaN."""
    from methods.mwnet import normalised

    v = torch.tensor([1.0, 3.0], dtype=DT)
    assert torch.equal(normalised(v, "none"), v)
    torch.testing.assert_close(normalised(v, "sum"), torch.tensor([0.5, 1.5], dtype=DT))
    zero = torch.zeros(3, dtype=DT)
    assert torch.equal(normalised(zero, "sum"), zero)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_mwnet_state_round_trip_is_exact(optimizer):
    model, x, y, t, xv, yv = problem(1)
    a, ctx = method_for("mwnet", model, xv, yv, 1, meta_optimizer=optimizer)
    for _ in range(2):
        a.loss(step_output(model, x, y, t))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)  # as the engine's checkpoint, read back weights-only
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    b, ctx_b = method_for("mwnet", model, xv, yv, 1, meta_optimizer=optimizer)  # the resume
    fresh, _ = method_for("mwnet", model, xv, yv, 1, meta_optimizer=optimizer)
    b.load_state_dict(state)
    for m, c in ((a, ctx), (b, ctx_b), (fresh, ctx_b)):
        m.on_epoch_start(1, c)  # the epoch a resumed run starts with
    out = step_output(model, x, y, t)
    la, lb, lf = a.loss(out), b.loss(out), fresh.loss(out)
    assert torch.equal(la, lb)
    for pa, pb in zip(a.net.parameters(), b.net.parameters(), strict=True):
        assert torch.equal(pa, pb)
    for sa, sb in zip(a.opt.state.values(), b.opt.state.values(), strict=True):
        for key in sa:
            assert torch.equal(torch.as_tensor(sa[key]), torch.as_tensor(sb[key])), key
    assert not torch.equal(la, lf)  # without the state, the step differs


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_mwnet_state_dict_is_a_snapshot(optimizer):
    """A state taken for a checkpoint does not move with the later steps."""
    import copy

    model, x, y, t, xv, yv = problem(1)
    m, _ = method_for("mwnet", model, xv, yv, 1, meta_optimizer=optimizer)
    m.loss(step_output(model, x, y, t))
    state = m.state_dict()
    kept = copy.deepcopy(state)
    m.loss(step_output(model, x, y, t))
    for key, st in kept["optimizer"]["state"].items():
        assert st, "the optimizer keeps a state per parameter"
        for name, v in st.items():
            assert torch.equal(torch.as_tensor(state["optimizer"]["state"][key][name]),
                               torch.as_tensor(v)), (key, name)
    moved = m.opt.state_dict()["state"]
    assert any(not torch.equal(torch.as_tensor(moved[k][n]), torch.as_tensor(v))
               for k, st in kept["optimizer"]["state"].items() for n, v in st.items())


@pytest.mark.parametrize("name", ["l2rw", "mwnet"])
def test_the_clean_batches_are_drawn_per_seed_and_epoch(name):
    """Each epoch draws its own clean batches from the meta split; the same seed and epoch
    draw the same ones (what a resumed run relies on)."""
    model, x, y, t, xv, yv = problem(1)

    def draws(epoch, seed=0):
        m, ctx = method_for(name, model, xv, yv, 1, seed=seed, meta_batch=3)
        m.on_epoch_start(epoch, ctx)
        got = [m.meta_batch() for _ in range(2)]
        assert set(ctx.extras["data"].splits) == {"val"}
        assert all(len(yb) == 3 for _, yb in got)
        return torch.cat([xb.flatten() for xb, _ in got])

    first = draws(0)
    assert torch.equal(first, draws(0))
    assert not torch.equal(first, draws(1))
    assert not torch.equal(first, draws(0, seed=1))
    assert not torch.equal(draws(1), draws(2))


class Scaled(nn.Module):
    """A linear layer times a buffer that is no BatchNorm's (it changes as training goes)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, C)
        self.register_buffer("scale", torch.ones(C))

    def forward(self, x):
        return self.fc(x) * self.scale


def test_buffers_other_than_batchnorms_are_the_models_not_the_copys():
    """The look-ahead and the JVP read a non-BatchNorm buffer from the model as it is now,
    not from the stats-free copy made at setup; references by hand with autograd."""
    from methods.lookahead import lookahead_direction, per_instance_jvp, stats_free_copy

    torch.manual_seed(3)
    model = Scaled().double()
    stale = stats_free_copy(model)
    with torch.no_grad():
        model.scale.copy_(torch.tensor([2.0, 0.5, 1.5, 3.0], dtype=DT))
    x, y = torch.randn(B, 3, dtype=DT), torch.randint(0, C, (B,))
    xv, yv = torch.randn(NV, 3, dtype=DT), torch.randint(0, C, (NV,))
    W, b, s = model.fc.weight.detach(), model.fc.bias.detach(), model.scale
    grads = [torch.randn_like(W), torch.randn_like(b)]
    W1 = (W - LR * grads[0]).requires_grad_(True)
    b1 = (b - LR * grads[1]).requires_grad_(True)
    ref = torch.autograd.grad(-log_softmax((xv @ W1.T + b1) * s)[torch.arange(NV), yv].mean(),
                              (W1, b1))
    got = lookahead_direction(model, grads, LR, xv, yv, batch_stats=stale)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-14)

    def ce(z):
        return -log_softmax(z)[torch.arange(len(y)), y]

    _, dl = per_instance_jvp(model, stale, x, ce, list(ref))
    for i in range(B):
        Wi, bi = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
        gi = torch.autograd.grad(-log_softmax((x[i:i + 1] @ Wi.T + bi) * s)[0, y[i]],
                                 (Wi, bi))
        want = sum((a * d).sum() for a, d in zip(gi, ref, strict=True))
        torch.testing.assert_close(dl[i], want, rtol=1e-10, atol=1e-14)


def test_the_loss_says_whether_teachers_are_taken():
    from benchmark.core.errors import UserError

    for name in ("l2rw", "mwnet"):
        assert build_method(name).uses_teachers and method_uses_teachers(name)
        assert not build_method(name, loss="ce").uses_teachers
        assert not method_uses_teachers(name, {"loss": "ce"})
        assert build_method(name).uses_clean_labels
        with pytest.raises(UserError, match="uses no teacher"):
            _setup_with(name, "ce", 1)
        with pytest.raises(UserError, match="needs at least one teacher"):
            _setup_with(name, "kd", 0)


def _setup_with(name, loss, n_teachers):
    model, x, y, t, xv, yv = problem(0)
    m = build_method(name, loss=loss)
    ctx = MethodContext(n_train=B, num_classes=C, n_teachers=n_teachers,
                        device=torch.device("cpu"), seed=0, lr=LR,
                        extras={"model": model, "data": MetaData(xv, yv),
                                "cfg": SimpleNamespace(batch_size=B, weight_decay=DECAY)})
    m.setup(ctx)


# ---- end to end on the synthetic task ------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta") / "results"
    labels = root / "labels" / "synthetic.npz"
    write_labels(LabelsRequest("synthetic", NoiseSpec("symmetric", 0.3), 0, train_subset=1500,
                               select_fraction=0.1), labels)
    cfg = TrainConfig(epochs=5, batch_size=64, lr=0.1, milestones=(4,))
    teacher = RunSpec(kind="teacher", dataset="synthetic", labels=labels, arch="mlp_80",
                         seed=0, out=root / "teachers" / "t", train=cfg)
    run(teacher)
    return {"root": root, "labels": labels, "teacher": teacher.out, "cfg": cfg}


def student(d, method, loss, name, cfg=None):
    return RunSpec(kind="student", dataset="synthetic", labels=d["labels"],
                      arch="mlp_50", seed=0, out=d["root"] / "runs" / name,
                      train=cfg or d["cfg"], method=method, hparams={"loss": loss},
                      teachers=[d["teacher"]] if loss == "kd" else [])


@pytest.mark.parametrize("loss", ["kd", "ce"])
@pytest.mark.parametrize("method", ["l2rw", "mwnet"])
def test_each_learns_the_synthetic_task_on_the_meta_split_only(synthetic, monkeypatch, method,
                                                               loss):
    from benchmark.training import device_data

    reads = []
    real_split = device_data.DeviceData._split

    def split(self, name):
        reads.append(name)
        return real_split(self, name)

    monkeypatch.setattr(device_data.DeviceData, "_split", split)
    m = run(student(synthetic, method, loss, f"{method}-{loss}"))
    assert m["test_acc_best_val"] > 0.3, m["test_acc_best_val"]  # chance 0.05; kd: 0.41
    assert m["method_hparams"]["loss"] == loss
    # one clean meta batch per training step; the selection split only for the engine's
    # epoch choice (once per epoch)
    from benchmark.data.labels import read_labels

    steps = -(-len(read_labels(synthetic["labels"]).arrays["train_idx"]) // 64)
    assert reads.count("select") == m["epochs"]
    assert reads.count("val") == m["epochs"] * steps


@pytest.mark.parametrize("method", ["l2rw", "mwnet"])
def test_a_resumed_run_gives_the_same_numbers(synthetic, monkeypatch, method):
    import pandas as pd

    whole = run(student(synthetic, method, "kd", f"{method}-whole"))
    cut = student(synthetic, method, "kd", f"{method}-cut")
    interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(cut)
    monkeypatch.undo()
    resumed = run(cut)
    assert resumed["test_acc_last"] == whole["test_acc_last"]
    a = pd.read_csv(synthetic["root"] / "runs" / f"{method}-whole" / "log.csv")
    b = pd.read_csv(cut.out_dir / "log.csv")
    cols = ["train_loss", "train_acc", "val_acc", "test_acc"]
    assert a[cols].equals(b[cols])
    assert np.isfinite(a["train_loss"]).all()


def test_the_cli_runs_the_ce_form_without_a_teacher_and_refuses_one(synthetic, capsys):
    from benchmark.cli import main

    base = ["student", "--dataset", "synthetic", "--labels", str(synthetic["labels"]),
            "--arch", "mlp_50", "--seed", "0", "--epochs", "1", "--device", "cpu",
            "--method", "l2rw", "--hparam", "loss=ce"]
    out = synthetic["root"] / "runs" / "cli-ce"
    assert main(base + ["--out", str(out)]) == 0
    assert (out / "metrics.json").exists()
    code = main(base + ["--out", str(out) + "-t", "--teacher", str(synthetic["teacher"])])
    assert code == 2 and "uses no teacher" in capsys.readouterr().err
