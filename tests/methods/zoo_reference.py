"""The shared scaffolding of the trust-rule zoo's reference tests (tests/methods/test_zoo_*.py).

- Independent float64 reference primitives, written with plain Python loops: over lists of
  floats (``softmax``, ``log_softmax``, ``cross_entropy``, ``kl_logits``, ``kd_split_loss``;
  gradients by ``central_diff``) and over torch scalars, so that autograd gives the reference
  gradient (``softmax_loop``, ``log_softmax_loop``, ``ce_loop``, ``mean_ce_loop``, ``kd_loop``,
  ``teacher_mean_loop``, ``weighted_kd_loss``).
  The protocols' factors: ``teacher_share``, ``weighted_scale``.
- Seeded random batches: ``batch`` (torch), ``np_batch`` (numpy); ``WEIGHTED_KD_CASES``.
- The wrappers around a method: ``context``, ``setup_method``, ``setup_refusal``, ``run``,
  ``loss_and_grad``, ``kd_loss``.
- The checks: ``assert_loss_and_grad`` (value and autograd gradient against a reference built
  from the same student logits), ``assert_grad_matches_central_diff``, and the checks that
  several methods' tests make alike: ``assert_kd_split_teacher_terms`` (gce_kd, sce_kd),
  ``assert_shared_by_protocol`` (wsld, lskd), ``assert_weighted_kd_matches`` and
  ``assert_weights_are_constants`` (camkd, ebkd), ``assert_refused_in_one_line``.

Nothing here imports from methods/ but methods.base (build_method, MethodContext,
StepOutput): the references stay independent of the code they check.
"""

import math

import numpy as np
import pytest
import torch

from benchmark.core.errors import UserError
from methods.base import MethodContext, StepOutput, build_method

CPU = torch.device("cpu")


# -- plain floats (lists or arrays of Python / numpy floats) ---------------------------------

def softmax(v):
    m = max(v)
    e = [math.exp(x - m) for x in v]
    tot = sum(e)
    return [x / tot for x in e]


def log_softmax(v):
    m = max(v)
    log_z = math.log(sum(math.exp(x - m) for x in v))
    return [(x - m) - log_z for x in v]


def cross_entropy(v, y):
    """-log softmax(v)[y] of one row of logits."""
    return -log_softmax(list(v))[y]


def kl_logits(s, t, T):
    """KL(softmax(t / T) || softmax(s / T)) of one student and one teacher row of logits."""
    lp = log_softmax([x / T for x in s])
    lq = log_softmax([x / T for x in t])
    return sum(math.exp(lq[c]) * (lq[c] - lp[c]) for c in range(len(lp)))


def teacher_share(protocol, M):
    """What each of M teachers' terms weighs: protocol suite shares one among M, authors 1."""
    return 1.0 / M if protocol == "suite" else 1.0


def weighted_scale(protocol, M):
    """M * teacher_share, what the teacher-weighted KD methods (camkd, ebkd, aekd) put on their
    weighted sum of the M teachers' KD: 1 under protocol suite, M under authors."""
    return M if protocol == "authors" else 1


def kd_split_loss(s, y, t, label_loss, T, a, protocol):
    """kd's split, the batch mean of (1 - a) label_loss(s_i, y_i) + sum_m a share T^2 KL_mi
    (KL_mi = kl_logits(s_i, t_mi, T)); s [B][C], y [B], t [M][B][C] as nested lists."""
    each = a * teacher_share(protocol, len(t))
    total = 0.0
    for i in range(len(s)):
        total += (1.0 - a) * label_loss(s[i], y[i])
        for tm in t:
            total += each * T * T * kl_logits(s[i], tm[i], T)
    return total / len(s)


def central_diff(f, s, h=1e-6):
    """d f / d s by central differences, f a float function of a [B, C] float64 array."""
    s = np.array(s, dtype=np.float64)
    g = np.zeros_like(s)
    for i in range(s.shape[0]):
        for c in range(s.shape[1]):
            sp, sm = s.copy(), s.copy()
            sp[i, c] += h
            sm[i, c] -= h
            g[i, c] = (f(sp) - f(sm)) / (2 * h)
    return g


def assert_grad_matches_central_diff(grad, f, s):
    """A method's gradient (array) against the central differences of the reference f at s."""
    np.testing.assert_allclose(grad, central_diff(f, s), rtol=1e-6, atol=1e-8)


# -- torch scalars (autograd through the loops) ----------------------------------------------

def softmax_loop(z, T=1.0):
    e = [torch.exp(z[j] / T) for j in range(len(z))]
    tot = sum(e)
    return [v / tot for v in e]


def log_softmax_loop(z, T=1.0):
    a = [z[j] / T for j in range(len(z))]
    top = max(float(v.detach()) for v in a)
    lse = top + torch.log(sum(torch.exp(v - top) for v in a))
    return [v - lse for v in a]


def ce_loop(z, y):
    return -log_softmax_loop(z)[y]


def mean_ce_loop(s, y):
    """The batch mean of ce_loop(s_i, y_i)."""
    B = s.shape[0]
    return sum(ce_loop(s[i], int(y[i])) for i in range(B)) / B


def kd_loop(s, t, T):
    """T^2 KL(softmax(t / T) || softmax(s / T)) of one student and one teacher row."""
    lp, lq = log_softmax_loop(s, T), log_softmax_loop(t, T)
    return T * T * sum(torch.exp(lq[c]) * (lq[c] - lp[c]) for c in range(len(s)))


def teacher_mean_loop(t, i):
    """Mean over teachers of softmax(t_m[i]), as plain floats (a constant target)."""
    M, C = t.shape[0], t.shape[2]
    probs = [softmax_loop(t[m, i].detach()) for m in range(M)]
    return [sum(float(probs[m][c]) for m in range(M)) / M for c in range(C)]


def weighted_kd_loss(s, t, y, w, *, T, ce_weight, kd_weight, scale):
    """ce_weight mean_i CE_i + kd_weight scale (1/B) sum_i sum_m w[m][i] kd_loop(s_i, t_mi)."""
    M, B = t.shape[0], s.shape[0]
    kd = sum(w[m][i] * kd_loop(s[i], t[m, i], T) for m in range(M) for i in range(B)) / B
    return ce_weight * mean_ce_loop(s, y) + kd_weight * scale * kd


# B, C, M, T, protocol, ce_weight, kd_weight: the cases of camkd and ebkd
WEIGHTED_KD_CASES = [
    (5, 4, 2, 4.0, "suite", 1.0, 1.0),
    (3, 7, 3, 2.0, "authors", 0.5, 1.5),
    (6, 5, 4, 1.0, "suite", 1.0, 0.7),
    (4, 10, 3, 8.0, "authors", 1.0, 1.0),
    (1, 3, 2, 4.0, "authors", 0.0, 2.0),
]


# -- seeded batches ---------------------------------------------------------------------------

def batch(B, C, M, seed, scale=3.0, dtype=torch.float64, grad=True):
    """Student logits s [B, C] (requiring grad unless told), teacher logits t [M, B, C] (None
    for M None: none drawn) and labels y [B], in that order from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    s = (scale * torch.randn(B, C, generator=g, dtype=dtype)).requires_grad_(grad)
    t = None if M is None else scale * torch.randn(M, B, C, generator=g, dtype=dtype)
    y = torch.randint(0, C, (B,), generator=g)
    return s, t, y


def np_batch(B, C, M, seed, scale=3.0, shift=False):
    """numpy s [B, C], t [M, B, C] (shift: plus a random offset per teacher row) and y a list."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(B, C)) * scale
    t = rng.normal(size=(M, B, C)) * scale
    if shift:
        t = t + rng.normal(size=(M, B, 1))
    y = [int(v) for v in rng.integers(0, C, size=B)]
    return s, t, y


# -- the method's side ------------------------------------------------------------------------

def context(M, C=5, protocol="suite", n_train=100, **kw):
    return MethodContext(n_train=n_train, num_classes=C, n_teachers=M, device=CPU, seed=0,
                         protocol=protocol, **kw)


def setup_method(name, ctx, **hp):
    method = build_method(name, **hp)
    method.setup(ctx)
    return method


def setup_refusal(name, M, match=None, C=3, n_train=10, **hp):
    """The message of the UserError that setting ``name`` up with M teachers raises."""
    method = build_method(name, **hp)
    with pytest.raises(UserError, match=match) as e:
        method.setup(context(M, C, n_train=n_train))
    return str(e.value)


def assert_refused_in_one_line(name, M, match, **kw):
    """setup_refusal(name, M, match, **kw) gives a one-line message that names the method."""
    message = setup_refusal(name, M, match, **kw)
    assert "\n" not in message and name in message


def run(method, s, t, y):
    """method.loss of one step: student logits s, teacher logits t (None: none), labels y."""
    out = StepOutput(logits=s, features=s.detach(), labels=y, index=torch.arange(len(y)),
                     teacher_logits=t)
    return method.loss(out)


def loss_and_grad(method, s, t, y):
    """run on float64 tensors of s, t and y (arrays, lists or tensors): the loss and its
    gradient with respect to s, as a float and an array."""
    st = torch.as_tensor(s, dtype=torch.float64).clone().requires_grad_(True)
    loss = run(method, st, torch.as_tensor(t, dtype=torch.float64), torch.as_tensor(y))
    (grad,) = torch.autograd.grad(loss, st)
    return loss.item(), grad.numpy()


def kd_loss(s, t, y, *, T, kd_weight, protocol, C):
    """The plain ``kd`` method's loss of the step (what uniform teacher weights must give)."""
    return run(setup_method("kd", context(t.shape[0], C, protocol), T=T, kd_weight=kd_weight),
               s, t, y)


# -- checks -----------------------------------------------------------------------------------

def assert_loss_and_grad(got, want, s, *, rtol=1e-10, atol=1e-12, grad_rtol=1e-9,
                         grad_atol=1e-12, close=False, retain_graph=False):
    """The method's loss ``got`` against the reference ``want``, both float64 graphs from s:
    the values by pytest.approx (rel rtol, abs atol), or by torch.testing.assert_close where
    ``close``; the gradients with respect to s by assert_close (grad_rtol, grad_atol)."""
    (g_got,) = torch.autograd.grad(got, s, retain_graph=retain_graph)
    (g_want,) = torch.autograd.grad(want, s)
    if close:
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol)
    else:
        assert got.dtype == torch.float64
        assert got.item() == pytest.approx(want.item(), rel=rtol, abs=atol)
    torch.testing.assert_close(g_got, g_want, rtol=grad_rtol, atol=grad_atol)


def assert_kd_split_teacher_terms(method_loss, s, y, t, T=4.0):
    """kd_weight 1 in kd's split (gce_kd, sce_kd): only the teachers. Suite shares a among the
    M teachers, authors gives each a; the gradient is the closed form of KD's, T (softmax(s/T)
    - softmax(t_m/T)) / B per teacher; with one teacher both protocols agree.
    method_loss(s, y, t, protocol, **hp) -> (loss, gradient array)."""
    (M, B, C) = t.shape
    suite, g_suite = method_loss(s, y, t, "suite", kd_weight=1.0)
    authors, g_authors = method_loss(s, y, t, "authors", kd_weight=1.0)
    assert authors == pytest.approx(M * suite, rel=1e-12)
    np.testing.assert_allclose(g_authors, M * g_suite, rtol=1e-12)
    expected = np.zeros((B, C))
    for i in range(B):
        ps = softmax((s[i] / T).tolist())
        for m in range(M):
            pt = softmax((t[m, i] / T).tolist())
            for k in range(C):
                expected[i, k] += T * (ps[k] - pt[k]) / B
    np.testing.assert_allclose(g_authors, expected, rtol=1e-10, atol=1e-14)
    one = t[:1]
    assert method_loss(s, y, one, "suite")[0] == pytest.approx(
        method_loss(s, y, one, "authors")[0], rel=1e-14)


def assert_weighted_kd_matches(make, loss_naive, s, t, y, *, T, protocol, ce_weight, kd_weight):
    """A teacher-weighted KD method (camkd, ebkd) against its reference on one batch:
    make(M, protocol, C, **hp) builds it, loss_naive(s, t, y, T=, ce_weight=, kd_weight=,
    scale=) is the naive loss; value and gradient in float64."""
    M, C = t.shape[0], t.shape[2]
    hp = dict(T=T, ce_weight=ce_weight, kd_weight=kd_weight)
    got = run(make(M, protocol, C, **hp), s, t, y)
    ref = loss_naive(s, t, y, **hp, scale=weighted_scale(protocol, M))
    assert_loss_and_grad(got, ref, s, rtol=1e-11, grad_rtol=1e-10, close=True)


def assert_weights_are_constants(make):
    """A teacher-weighted KD method (camkd, ebkd; make as above): the weights computed from the
    teachers pass no gradient to them, the student gets one."""
    s, t, y = batch(4, 5, 3, seed=31)
    t.requires_grad_(True)
    run(make(3, "suite", 5, T=4.0, ce_weight=1.0, kd_weight=1.0), s, t, y).backward()
    assert t.grad is None and s.grad is not None


def assert_shared_by_protocol(method_loss, s, t, y, ce, **hp):
    """The teachers' part of the loss, method_loss(s, t, y, protocol, **hp)[0] less the label
    term ce: suite is the mean of the single teachers' parts, authors their sum. Returns the
    single teachers' parts."""
    M = len(t)
    single = [method_loss(s, t[m:m + 1], y, **hp)[0] - ce for m in range(M)]
    suite = method_loss(s, t, y, "suite", **hp)[0] - ce
    authors = method_loss(s, t, y, "authors", **hp)[0] - ce
    assert suite == pytest.approx(sum(single) / M, rel=1e-10)
    assert authors == pytest.approx(sum(single), rel=1e-10)
    return single
