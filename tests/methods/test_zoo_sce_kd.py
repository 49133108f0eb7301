"""sce_kd against a naive float64 reference written from the SCE authors' Keras loss
(YisenWang/symmetric_cross_entropy_for_noisy_labels @ ec778df, loss.py:9-21):
alpha * mean(-sum_k y_k log clip(p_k, 1e-7, 1)) + beta * mean(-sum_k p_k log clip(y_k, 1e-4, 1)),
y the one-hot given label, p the softmax; inside kd's split (1 - a) * SCE + a * KD per
teacher (suite: a / M each, authors: a each), KD_m = T^2 KL(softmax(t_m/T) || softmax(s/T)).
Loops over instances and classes (tests/methods/zoo_reference.py); gradients by central
finite differences and closed form."""

import math

import numpy as np
import pytest
import torch

from tests.methods import zoo_reference as zoo

torch.set_num_threads(1)
A_CODE = math.log(1e-4)  # their clip of the one-hot at 1e-4, natural log


def clip(v, lo, hi):
    return min(max(v, lo), hi)


def naive_sce(p, y, alpha, beta, A):
    """One instance. A None: the authors' literal clip of the one-hot; else log 0 := A."""
    C = len(p)
    onehot = [1.0 if k == y else 0.0 for k in range(C)]
    ce = -sum(onehot[k] * math.log(clip(p[k], 1e-7, 1.0)) for k in range(C))
    if A is None:
        rce = -sum(p[k] * math.log(clip(onehot[k], 1e-4, 1.0)) for k in range(C))
    else:
        rce = -sum(p[k] * (0.0 if k == y else A) for k in range(C))
    return alpha * ce + beta * rce


def naive_loss(s, y, t, alpha, beta, A, T, a, protocol):
    def sce(row, label):
        return naive_sce(zoo.softmax(row), label, alpha, beta, A)
    return zoo.kd_split_loss(s, y, t, sce, T, a, protocol)


def method_loss(s, y, t, protocol="suite", **hp):
    hp = {"A": A_CODE, **hp}  # the code's A (the catalog's default until the lead updates it)
    method = zoo.setup_method("sce_kd", zoo.context(t.shape[0], s.shape[1], protocol), **hp)
    return zoo.loss_and_grad(method, s, t, y)


def data(B, C, M, seed, scale=2.0):
    s, t, y = zoo.batch(B, C, M, seed, scale=scale, grad=False)
    return s, y, t


@pytest.mark.parametrize("protocol", ["suite", "authors"])
@pytest.mark.parametrize("B,C,M,T,alpha,beta,A,a", [
    (5, 4, 1, 4.0, 6.0, 0.1, None, 0.9),  # CIFAR-100 alpha, beta; the literal clip
    (7, 10, 2, 2.0, 0.1, 1.0, None, 0.9),  # their CIFAR-10 alpha, beta
    (3, 6, 3, 1.0, 1.0, 0.5, -4.0, 0.5),  # the paper's A = -4
    (4, 5, 2, 4.0, 0.0, 2.0, -1.5, 0.2),  # RCE alone
])
def test_loss_and_gradient_match_the_naive_reference(protocol, B, C, M, T, alpha, beta, A, a):
    s, y, t = data(B, C, M, seed=B * 100 + C)
    hp = {"alpha": alpha, "beta": beta, "T": T, "kd_weight": a}
    loss, grad = method_loss(s, y, t, protocol, **hp, **({} if A is None else {"A": A}))
    args = (y.tolist(), t.tolist(), alpha, beta, A, T, a, protocol)
    assert loss == pytest.approx(naive_loss(s.tolist(), *args), rel=1e-12, abs=1e-12)
    zoo.assert_grad_matches_central_diff(grad, lambda v: naive_loss(v.tolist(), *args), s.numpy())


def test_the_defaults_are_their_cifar100_alpha_6_beta_01_and_a_09_T_4():
    s, y, t = data(6, 8, 1, seed=3)
    loss, _ = method_loss(s, y, t)
    ref = naive_loss(s.tolist(), y.tolist(), t.tolist(), 6.0, 0.1, None, 4.0, 0.9, "suite")
    assert loss == pytest.approx(ref, rel=1e-12)


def test_label_term_gradient_closed_form_and_the_clip_of_p():
    """kd_weight 0. Per instance: alpha (p - e_y) [p_y >= 1e-7] + beta A p_y (e_y - p); a row
    whose p_y is below 1e-7 has CE = -log(1e-7) and no CE gradient (tf.clip_by_value)."""
    B, C, alpha, beta, A = 6, 7, 6.0, 0.1, A_CODE
    s, y, t = data(B, C, 1, seed=11)
    s[0] = 0.0
    s[0, y[0]] = -30.0  # p_y ~ 1e-13 < 1e-7
    loss, grad = method_loss(s, y, t, alpha=alpha, beta=beta, A=A, kd_weight=0.0)
    expected, ref = np.zeros((B, C)), 0.0
    for i in range(B):
        p = zoo.softmax(s[i].tolist())
        yi = int(y[i])
        clipped = p[yi] < 1e-7
        assert clipped == (i == 0)
        ref += alpha * -math.log(max(p[yi], 1e-7)) - beta * A * (1.0 - p[yi])
        for k in range(C):
            e = 1.0 if k == yi else 0.0
            ce_g = 0.0 if clipped else p[k] - e
            expected[i, k] = (alpha * ce_g + beta * A * p[yi] * (e - p[k])) / B
    assert loss == pytest.approx(ref / B, rel=1e-12)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-14)
    assert np.abs(grad[0]).max() < 1e-10  # the clipped row: only RCE's tiny pull


def test_teacher_terms_and_the_protocols():
    """kd_weight 1: only the teachers; suite shares a among M, authors gives each a."""
    s, y, t = data(5, 6, 3, seed=5)
    zoo.assert_kd_split_teacher_terms(method_loss, s, y, t, T=4.0)


def test_rce_is_minus_A_times_one_minus_p_y_and_bounded():
    """RCE alone (alpha 0, beta 1): -A (1 - p_y) in [0, -A], the paper's closed form."""
    s, y, t = data(8, 5, 1, seed=13, scale=5.0)
    loss, _ = method_loss(s, y, t, alpha=0.0, beta=1.0, A=-4.0, kd_weight=0.0)
    p_y = [zoo.softmax(s[i].tolist())[y[i]] for i in range(8)]
    assert loss == pytest.approx(np.mean([4.0 * (1 - v) for v in p_y]), rel=1e-12)
    assert 0.0 <= loss <= 4.0


def test_needs_a_teacher():
    zoo.setup_refusal("sce_kd", 0, A=A_CODE)
