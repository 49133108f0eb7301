"""lskd against a naive float64 reference written from the authors' formula
(sunshangquan/logit-standardization-KD @ f6e5aa5, mdistiller/distillers/KD.py:7-41):

    loss = ce_weight * CE(s, y) + kd_weight * share * sum_m T^2 (1/B) sum_i KL(q_mi || p_i)
    z(v) = (v - mean(v)) / (1e-7 + sqrt(sum_c (v_c - mean)^2 / (C - 1)))
    p_i = softmax(z(s_i) / T), q_mi = softmax(z(t_mi) / T); CE on the raw logits

Plain Python loops over instances and classes (tests/methods/zoo_reference.py); gradients by
central differences of the whole naive loss (the z-score of the student is differentiated
through)."""

import math

import numpy as np
import pytest
import torch

from methods.base import build_method
from tests.methods import zoo_reference as zoo


def zscore(v):
    C = len(v)
    mean = sum(v) / C
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (C - 1))
    return [(x - mean) / (1e-7 + std) for x in v]


def naive_loss(s, t, y, T, ce_w, kd_w, share):
    B = len(s)
    ce = sum(zoo.cross_entropy(s[i], y[i]) for i in range(B)) / B
    kd = 0.0
    for tm in t:
        acc = sum(zoo.kl_logits(zscore(list(s[i])), zscore(list(tm[i])), T) for i in range(B))
        kd += share * T * T * acc / B
    return ce_w * ce + kd_w * kd


def method_loss(s, t, y, protocol="suite", **hp):
    method = zoo.setup_method("lskd", zoo.context(t.shape[0], s.shape[1], protocol), **hp)
    return zoo.loss_and_grad(method, s, t, y)


def data(B, C, M, seed):
    return zoo.np_batch(B, C, M, seed, shift=True)


CASES = [  # B, C, M, T, ce_weight, kd_weight, protocol
    (5, 4, 1, 2.0, 0.1, 9.0, "suite"),
    (7, 10, 1, 3.0, 0.1, 9.0, "suite"),
    (3, 6, 2, 1.0, 1.0, 2.0, "suite"),
    (6, 5, 3, 4.0, 0.5, 12.0, "suite"),
    (4, 7, 2, 2.0, 0.1, 9.0, "authors"),
    (5, 3, 3, 0.5, 1.2, 0.8, "authors"),
    (4, 2, 1, 2.0, 0.1, 9.0, "suite"),
]


@pytest.mark.parametrize("B,C,M,T,ce_w,kd_w,protocol", CASES)
def test_value_and_gradient_match_the_naive_reference(B, C, M, T, ce_w, kd_w, protocol):
    torch.set_num_threads(1)
    s, t, y = data(B, C, M, seed=B * 100 + C * 10 + M)
    ref = (T, ce_w, kd_w, zoo.teacher_share(protocol, M))
    value, grad = method_loss(s, t, y, protocol, T=T, ce_weight=ce_w, kd_weight=kd_w)
    assert value == pytest.approx(naive_loss(s, t, y, *ref), rel=1e-10)
    zoo.assert_grad_matches_central_diff(grad, lambda v: naive_loss(v, t, y, *ref), s)


def test_defaults_are_their_cifar100_kd_ls_setting():
    assert build_method("lskd").hparams == {"T": 2.0, "ce_weight": 0.1, "kd_weight": 9.0}
    s, t, y = data(6, 8, 1, seed=11)
    value, _ = method_loss(s, t, y)
    assert value == pytest.approx(naive_loss(s, t, y, 2.0, 0.1, 9.0, 1.0), rel=1e-10)


def test_kd_term_ignores_scale_and_shift_of_the_logits_but_not_the_ce():
    """The z-score: a*s + b (a > 0) per instance leaves the KD term (up to the 1e-7 eps); the
    CE on the raw logits changes."""
    s, t, y = data(4, 6, 1, seed=4)
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.5, 3.0, size=(4, 1)), rng.normal(size=(4, 1)) * 5
    kd_only = dict(T=2.0, ce_weight=0.0, kd_weight=9.0)
    v1, _ = method_loss(s, t, y, **kd_only)
    v2, _ = method_loss(a * s + b, 2.0 * t - 1.0, y, **kd_only)
    assert v1 == pytest.approx(v2, rel=1e-6)
    ce_only = dict(T=2.0, ce_weight=1.0, kd_weight=0.0)
    assert abs(method_loss(s, t, y, **ce_only)[0]
               - method_loss(a * s + b, t, y, **ce_only)[0]) > 1e-3


def test_several_teachers_shared_by_protocol():
    B, C, T = 5, 6, 2.0
    s, t, y = data(B, C, 3, seed=9)
    hp = dict(T=T, ce_weight=0.1, kd_weight=9.0)
    ce = naive_loss(s, t[:0], y, T, 0.1, 9.0, 1.0)
    zoo.assert_shared_by_protocol(method_loss, s, t, y, ce, **hp)


def test_trust_does_not_read_the_label():
    """Only the CE moves with the label."""
    s, t, y = data(5, 6, 2, seed=8)
    y2 = [(v + 1) % 6 for v in y]
    kd_only = dict(T=2.0, ce_weight=0.0, kd_weight=9.0)
    assert method_loss(s, t, y, **kd_only)[0] == pytest.approx(
        method_loss(s, t, y2, **kd_only)[0], rel=1e-12)
    both = dict(T=2.0, ce_weight=0.1, kd_weight=9.0)
    assert method_loss(s, t, y2, **both)[0] == pytest.approx(
        naive_loss(s, t, y2, 2.0, 0.1, 9.0, 0.5), rel=1e-10)


def test_constant_teacher_logits_give_a_uniform_target():
    """std 0: the eps keeps z finite (0), the target is uniform."""
    s, t, y = data(3, 5, 1, seed=6)
    t[0, 1, :] = 7.0
    value, grad = method_loss(s, t, y, T=2.0, ce_weight=0.1, kd_weight=9.0)
    assert value == pytest.approx(naive_loss(s, t, y, 2.0, 0.1, 9.0, 1.0), rel=1e-10)
    assert np.isfinite(grad).all()


def test_needs_a_teacher():
    zoo.setup_refusal("lskd", 0)
