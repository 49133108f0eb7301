"""wsld against a naive float64 reference written from the authors' formula
(bellymonster/Weighted-Soft-Label-Distillation @ 67820dd, knowledge_distiller.py:53-85):

    loss = ce_weight * CE + kd_weight * share * sum_m T^2 (1/B) sum_i w_im H_im
    H_im = -sum_c softmax(t_mi / T)_c log softmax(s_i / T)_c   (soft-target cross-entropy)
    w_im = 1 - exp(-max(CE(s_i, y_i) / (CE(t_mi, y_i) + 1e-7), 0))   (T = 1, no gradient)

Plain Python loops over instances and classes (tests/methods/zoo_reference.py); gradients by
central differences with the weights w held fixed (the authors detach them)."""

import math

import numpy as np
import pytest
import torch

from methods.base import build_method
from tests.methods import zoo_reference as zoo


def naive_weights(s, t, y):
    """[M][B] the authors' focal weights, from the label, at temperature 1."""
    out = []
    for tm in t:
        row = []
        for i in range(len(y)):
            ce_s, ce_t = zoo.cross_entropy(s[i], y[i]), zoo.cross_entropy(tm[i], y[i])
            row.append(1.0 - math.exp(-max(ce_s / (ce_t + 1e-7), 0.0)))
        out.append(row)
    return out


def naive_loss(s, t, y, T, ce_w, kd_w, share, weights=None):
    B, C = s.shape
    w = naive_weights(s, t, y) if weights is None else weights
    ce = sum(zoo.cross_entropy(s[i], y[i]) for i in range(B)) / B
    kd = 0.0
    for m, tm in enumerate(t):
        acc = 0.0
        for i in range(B):
            lq = zoo.log_softmax([x / T for x in tm[i]])
            lp = zoo.log_softmax([x / T for x in s[i]])
            soft = -sum(math.exp(lq[c]) * lp[c] for c in range(C))
            acc += w[m][i] * soft
        kd += share * T * T * acc / B
    return ce_w * ce + kd_w * kd


def assert_fd_grad(grad, s, t, y, T, ce_w, kd_w, share):
    """d loss / d s with the weights fixed at s (detached in the authors' code)."""
    w = naive_weights(s, t, y)
    zoo.assert_grad_matches_central_diff(
        grad, lambda v: naive_loss(v, t, y, T, ce_w, kd_w, share, w), s)


def method_loss(s, t, y, protocol="suite", **hp):
    method = zoo.setup_method("wsld", zoo.context(t.shape[0], s.shape[1], protocol), **hp)
    return zoo.loss_and_grad(method, s, t, y)


CASES = [  # B, C, M, T, ce_weight, kd_weight, protocol
    (5, 4, 1, 4.0, 1.0, 2.25, "suite"),
    (7, 10, 1, 2.0, 0.7, 2.5, "suite"),
    (3, 6, 2, 1.0, 1.0, 2.25, "suite"),
    (6, 5, 3, 3.0, 0.5, 1.3, "suite"),
    (4, 7, 2, 4.0, 1.0, 2.25, "authors"),
    (5, 3, 3, 0.5, 1.2, 0.8, "authors"),
]


@pytest.mark.parametrize("B,C,M,T,ce_w,kd_w,protocol", CASES)
def test_value_and_gradient_match_the_naive_reference(B, C, M, T, ce_w, kd_w, protocol):
    torch.set_num_threads(1)
    s, t, y = zoo.np_batch(B, C, M, seed=B * 100 + C * 10 + M)
    share = zoo.teacher_share(protocol, M)
    value, grad = method_loss(s, t, y, protocol, T=T, ce_weight=ce_w, kd_weight=kd_w)
    assert value == pytest.approx(naive_loss(s, t, y, T, ce_w, kd_w, share), rel=1e-10)
    assert_fd_grad(grad, s, t, y, T, ce_w, kd_w, share)


def test_weights_are_detached_not_differentiated():
    """The full derivative (through w) differs from the method's gradient."""
    s, t, y = zoo.np_batch(4, 5, 1, seed=3)
    hp = dict(T=4.0, ce_weight=1.0, kd_weight=2.25)
    _, grad = method_loss(s, t, y, **hp)
    full = zoo.central_diff(lambda v: naive_loss(v, t, y, 4.0, 1.0, 2.25, 1.0), s)
    assert np.abs(full - grad).max() > 1e-3
    assert_fd_grad(grad, s, t, y, 4.0, 1.0, 2.25, 1.0)


def test_defaults_are_the_cifar100_setting():
    assert build_method("wsld").hparams == {"T": 4.0, "ce_weight": 1.0, "kd_weight": 2.25}
    s, t, y = zoo.np_batch(6, 8, 1, seed=11)
    value, _ = method_loss(s, t, y)
    assert value == pytest.approx(naive_loss(s, t, y, 4.0, 1.0, 2.25, 1.0), rel=1e-10)


def test_each_teacher_weighted_by_its_own_ce_and_shared_by_protocol():
    """Teacher 0 right on the label (w ~ 1), teacher 1 wrong (w small); suite = mean of the
    single-teacher KD terms, authors = their sum."""
    B, C, T = 4, 5, 4.0
    s, t, y = zoo.np_batch(B, C, 2, seed=5, scale=1.0)
    for i in range(B):
        t[0, i, y[i]] += 12.0
        t[1, i, y[i]] -= 12.0
    w = naive_weights(s, t, y)
    assert min(w[0]) > 0.99 and max(w[1]) < 0.2
    hp = dict(T=T, ce_weight=1.0, kd_weight=2.25)
    ce = naive_loss(s, t[:0], y, T, 1.0, 2.25, 1.0)
    single = zoo.assert_shared_by_protocol(method_loss, s, t, y, ce, **hp)
    assert single[0] > 3 * single[1]


def test_weight_uses_the_given_label():
    """Moving the label changes w (and so the loss) although the teachers stay the same."""
    s, t, y = zoo.np_batch(5, 6, 1, seed=8)
    y2 = [(v + 1) % 6 for v in y]
    hp = dict(T=4.0, ce_weight=0.0, kd_weight=1.0)
    a, _ = method_loss(s, t, y, **hp)
    b, _ = method_loss(s, t, y2, **hp)
    assert a == pytest.approx(naive_loss(s, t, y, 4.0, 0.0, 1.0, 1.0), rel=1e-10)
    assert b == pytest.approx(naive_loss(s, t, y2, 4.0, 0.0, 1.0, 1.0), rel=1e-10)
    assert abs(a - b) > 1e-3


def test_soft_term_is_the_cross_entropy_not_the_kl():
    """Student = teacher: the KL would be 0; theirs keeps the teacher's entropy."""
    s, _, y = zoo.np_batch(3, 4, 1, seed=2, scale=1.0)
    t = s[None].copy()
    value, _ = method_loss(s, t, y, T=2.0, ce_weight=0.0, kd_weight=1.0)
    assert value > 0.1
    assert value == pytest.approx(naive_loss(s, t, y, 2.0, 0.0, 1.0, 1.0), rel=1e-10)


def test_eps_when_the_teacher_ce_is_zero():
    """Teacher CE exactly 0 in float64: ratio = CE_s / 1e-7 (their eps), so a student with
    CE_s = 1e-7 gets w = 1 - exp(-1), not 1."""
    C = 5
    y = [2, 0]
    t = np.zeros((1, 2, C))
    t[0, 0, 2] = t[0, 1, 0] = 60.0  # log_softmax at the label rounds to 0
    d = math.log((C - 1) / 1e-7)  # student margin for CE_s ~ 1e-7
    s = np.zeros((2, C))
    s[0, 2] = s[1, 0] = d
    w = naive_weights(s, t, y)
    assert w[0][0] == pytest.approx(1 - math.exp(-1), rel=1e-6)
    value, grad = method_loss(s, t, y, T=4.0, ce_weight=1.0, kd_weight=2.25)
    assert value == pytest.approx(naive_loss(s, t, y, 4.0, 1.0, 2.25, 1.0), rel=1e-9)
    assert np.isfinite(grad).all()


def test_a_confident_right_student_ignores_the_teacher():
    """CE_s ~ 0 -> w ~ 0: only the CE remains."""
    y = [1, 3]
    s = np.zeros((2, 4))
    s[0, 1] = s[1, 3] = 50.0
    t = np.random.default_rng(0).normal(size=(1, 2, 4))
    value, _ = method_loss(s, t, y, T=4.0, ce_weight=1.0, kd_weight=2.25)
    ce = naive_loss(s, t[:0], y, 4.0, 1.0, 2.25, 1.0)
    assert value == pytest.approx(ce, abs=1e-15)


def test_needs_a_teacher():
    zoo.setup_refusal("wsld", 0)
