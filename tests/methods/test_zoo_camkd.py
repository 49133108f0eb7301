"""Reference test for ``camkd`` (Zhang, Chen, Wang, ICASSP 2022; Rorozhl/CA-MKD @ c2f39a9,
helper/loops.py:220-229, the logit part): naive float64 loops over instances, teachers and
classes, written from the authors' formula, independent of methods/camkd.py (only
methods.base is imported, here and in zoo_reference.py).

Per instance i with GIVEN label y_i, teacher logits t_mi, student logits s_i:
  CE_mi = -log softmax(t_mi)[y_i]                         (teacher's CE at T = 1)
  w_mi  = (1 - exp(CE_mi) / sum_k exp(CE_ki)) / (M - 1)   (softmax over the teachers)
  KD_mi = T^2 sum_c q_c (log q_c - log p_c),  q = softmax(t_mi / T), p = softmax(s_i / T)
loss = ce_weight mean_i CE(s_i, y_i) + kd_weight * scale * (1/B) sum_i sum_m w_mi KD_mi,
scale = M * teacher_share: 1 under protocol suite, M under authors.
"""

import math

import pytest
import torch

from tests.methods import zoo_reference as zoo

torch.set_num_threads(1)


def weights_naive(t, y):
    M, B = t.shape[0], t.shape[1]
    w = [[0.0] * B for _ in range(M)]
    for i in range(B):
        e = [math.exp(float(zoo.ce_loop(t[m, i], int(y[i])))) for m in range(M)]
        for m in range(M):
            w[m][i] = (1.0 - e[m] / sum(e)) / (M - 1)
    return w


def loss_naive(s, t, y, **kw):
    return zoo.weighted_kd_loss(s, t, y, weights_naive(t, y), **kw)


def make(M, protocol="suite", C=5, **hp):
    return zoo.setup_method("camkd", zoo.context(M, C, protocol), **hp)


@pytest.mark.parametrize("B,C,M,T,protocol,cw,kw", zoo.WEIGHTED_KD_CASES)
def test_loss_and_gradient_match_the_naive_formula(B, C, M, T, protocol, cw, kw):
    s, t, y = zoo.batch(B, C, M, seed=B * 100 + C * 10 + M)
    zoo.assert_weighted_kd_matches(make, loss_naive, s, t, y, T=T, protocol=protocol,
                                   ce_weight=cw, kd_weight=kw)


def test_the_teacher_right_on_the_given_label_gets_the_larger_weight():
    """M = 2, B = 1: w_0 = sigmoid(CE_1 - CE_0), read back from the (linear in w) loss."""
    s = zoo.batch(1, 4, 2, seed=7)[0].detach()
    t = torch.tensor([[[4.0, 0.0, 0.0, 0.0]], [[0.0, 3.0, 0.0, 0.0]]], dtype=torch.float64)
    for y, first_wins in ((0, True), (1, False)):
        yy = torch.tensor([y])
        method = make(2, "suite", 4, T=4.0, ce_weight=0.0, kd_weight=1.0)
        loss = float(zoo.run(method, s, t, yy))
        kd0, kd1 = float(zoo.kd_loop(s[0], t[0, 0], 4.0)), float(zoo.kd_loop(s[0], t[1, 0], 4.0))
        w0 = (loss - kd1) / (kd0 - kd1)
        ce0, ce1 = float(zoo.ce_loop(t[0, 0], y)), float(zoo.ce_loop(t[1, 0], y))
        assert w0 == pytest.approx(1.0 / (1.0 + math.exp(ce0 - ce1)), abs=1e-10)
        assert (w0 > 0.5) == first_wins


@pytest.mark.parametrize("protocol", ["suite", "authors"])
def test_uniform_weights_give_kds_convention(protocol):
    """Teachers with equal CE on the label (the same label logit, the others permuted): w =
    1/M, and camkd(ce 1 - a, kd a) = kd(a) under both protocols (ce_weight CE + kd_weight *
    M * teacher_share * mean_m KD_m)."""
    B, C, M, a, T = 4, 6, 3, 0.7, 3.0
    s, t, y = zoo.batch(B, C, M, seed=11)
    g = torch.Generator().manual_seed(12)
    for i in range(B):
        others = [c for c in range(C) if c != int(y[i])]
        for m in range(1, M):
            perm = torch.randperm(C - 1, generator=g)
            t[m, i, others] = t[0, i, others][perm]
        t[:, i, int(y[i])] = t[0, i, int(y[i])]
    w = weights_naive(t, y)
    assert all(abs(w[m][i] - 1.0 / M) < 1e-14 for m in range(M) for i in range(B))
    got = zoo.run(make(M, protocol, C, T=T, ce_weight=1 - a, kd_weight=a), s, t, y)
    # kd keeps its weights in float32 (methods/kd.py): equal to its rounding
    kd = zoo.kd_loss(s, t, y, T=T, kd_weight=a, protocol=protocol, C=C)
    torch.testing.assert_close(got, kd, rtol=1e-7, atol=0.0)
    scale = zoo.weighted_scale(protocol, M)
    mean_kd = sum(zoo.kd_loop(s[i], t[m, i], T) for m in range(M) for i in range(B)) / (B * M)
    ce = zoo.mean_ce_loop(s, y)
    torch.testing.assert_close(got, (1 - a) * ce + a * scale * mean_kd, rtol=1e-11, atol=1e-12)


def test_authors_protocol_is_m_times_the_suites_kd_term():
    s, t, y = zoo.batch(5, 6, 3, seed=21)
    s = s.detach()
    ce = float(zoo.run(make(3, "suite", 6, T=4.0, ce_weight=1.0, kd_weight=0.0), s, t, y))
    suite = float(zoo.run(make(3, "suite", 6, T=4.0, ce_weight=1.0, kd_weight=1.0), s, t, y))
    authors = float(zoo.run(make(3, "authors", 6, T=4.0, ce_weight=1.0, kd_weight=1.0), s, t, y))
    assert authors - ce == pytest.approx(3 * (suite - ce), rel=1e-12)


def test_the_weights_are_constants():
    zoo.assert_weights_are_constants(make)


def test_one_teacher_is_refused_in_one_line():
    zoo.assert_refused_in_one_line("camkd", 1, "at least 2")
