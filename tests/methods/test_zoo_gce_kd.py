"""gce_kd against a naive float64 reference written from Zhang and Sabuncu (NeurIPS 2018),
eq. (6): L_q = (1 - p_y^q) / q, inside kd's split (1 - a) * label + a * KD per teacher
(suite: a / M each, authors: a each), KD_m = T^2 KL(softmax(t_m/T) || softmax(s/T)).
Loops over instances and classes (tests/methods/zoo_reference.py); gradients by central
finite differences and by the paper's closed form (GCE gradient = p_y^q x CE gradient)."""

import math

import numpy as np
import pytest
import torch

from tests.methods import zoo_reference as zoo

torch.set_num_threads(1)


def naive_loss(s, y, t, q, T, a, protocol):
    """s [B, C], y [B], t [M, B, C] as nested lists / arrays; the batch mean."""
    def gce(row, label):
        return (1.0 - zoo.softmax(row)[label] ** q) / q
    return zoo.kd_split_loss(s, y, t, gce, T, a, protocol)


def method_loss(s, y, t, protocol="suite", **hp):
    method = zoo.setup_method("gce_kd", zoo.context(t.shape[0], s.shape[1], protocol), **hp)
    return zoo.loss_and_grad(method, s, t, y)


def data(B, C, M, seed):
    s, t, y = zoo.batch(B, C, M, seed, scale=2.0, grad=False)
    return s, y, t


@pytest.mark.parametrize("protocol", ["suite", "authors"])
@pytest.mark.parametrize("B,C,M,T,q,a", [(5, 4, 1, 4.0, 0.7, 0.9), (7, 10, 2, 2.0, 0.7, 0.9),
                                         (3, 6, 3, 1.0, 0.3, 0.5), (4, 5, 2, 4.0, 1.0, 0.2)])
def test_loss_and_gradient_match_the_naive_reference(protocol, B, C, M, T, q, a):
    s, y, t = data(B, C, M, seed=B * 100 + C)
    loss, grad = method_loss(s, y, t, protocol, q=q, T=T, kd_weight=a)
    args = (y.tolist(), t.tolist(), q, T, a, protocol)
    assert loss == pytest.approx(naive_loss(s.tolist(), *args), rel=1e-12, abs=1e-12)
    zoo.assert_grad_matches_central_diff(grad, lambda v: naive_loss(v.tolist(), *args), s.numpy())


def test_the_catalog_defaults_are_q_07_a_09_T_4():
    s, y, t = data(6, 8, 1, seed=3)
    loss, _ = method_loss(s, y, t)
    ref = naive_loss(s.tolist(), y.tolist(), t.tolist(), 0.7, 4.0, 0.9, "suite")
    assert loss == pytest.approx(ref, rel=1e-12)


def test_gce_gradient_is_p_y_to_the_q_times_the_ce_gradient():
    """kd_weight 0: the label term alone; per instance d/ds (1 - p_y^q)/q = p_y^q (p - e_y)."""
    B, C, q = 6, 7, 0.7
    s, y, t = data(B, C, 2, seed=11)
    loss, grad = method_loss(s, y, t, q=q, kd_weight=0.0)
    expected = np.zeros((B, C))
    for i in range(B):
        p = zoo.softmax(s[i].tolist())
        for k in range(C):
            expected[i, k] = p[y[i]] ** q * (p[k] - (1.0 if k == y[i] else 0.0)) / B
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-14)


def test_teacher_terms_and_the_protocols():
    """kd_weight 1: only the teachers; suite shares a among M, authors gives each a."""
    s, y, t = data(5, 6, 3, seed=5)
    zoo.assert_kd_split_teacher_terms(method_loss, s, y, t, T=4.0)


def test_q_limits_ce_and_mae():
    """q -> 0: CE; q = 1: 1 - p_y (half the MAE of the one-hot against p)."""
    s, y, t = data(6, 5, 1, seed=7)
    small, _ = method_loss(s, y, t, q=1e-7, kd_weight=0.0)
    ce = np.mean([-math.log(zoo.softmax(s[i].tolist())[y[i]]) for i in range(6)])
    assert small == pytest.approx(ce, rel=1e-5)
    one, _ = method_loss(s, y, t, q=1.0, kd_weight=0.0)
    assert one == pytest.approx(np.mean([1 - zoo.softmax(s[i].tolist())[y[i]] for i in range(6)]),
                                rel=1e-12)


def test_a_label_the_student_finds_impossible_gives_finite_values():
    """p_y underflows to 0 in float64: loss 1/q, gradient finite (and ~0 on that row)."""
    s, y, t = data(3, 4, 1, seed=9)
    s[0] = torch.tensor([0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    s[0, y[0]] = -2000.0
    loss, grad = method_loss(s, y, t, q=0.7, kd_weight=0.0)
    assert np.isfinite(loss) and np.isfinite(grad).all()
    np.testing.assert_allclose(grad[0], 0.0, atol=1e-300)
    rest = np.mean([(1 - zoo.softmax(s[i].tolist())[y[i]] ** 0.7) / 0.7 for i in (1, 2)])
    assert loss == pytest.approx((1 / 0.7 + 2 * rest) / 3, rel=1e-12)


def test_needs_a_teacher():
    zoo.setup_refusal("gce_kd", 0)
