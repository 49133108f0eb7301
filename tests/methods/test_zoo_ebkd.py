"""Reference test for ``ebkd`` (Kwon et al., ICASSP 2020, as ported in Rorozhl/CA-MKD @ c2f39a9,
helper/loops.py:204-219): naive float64 loops over instances, teachers and classes, written
from the authors' formula, independent of methods/ebkd.py (only methods.base is imported, here
and in zoo_reference.py).

Per instance i, teacher logits t_mi, student logits s_i:
  H_mi  = -sum_c p_c log p_c,  p = softmax(t_mi)         (entropy at T = 1; 0 log 0 = 0)
  w_mi  = (1 - H_mi / sum_k H_ki) / (M - 1)             (the authors' 1 - H / sum H, which
                                                          sums to M - 1, normalised to 1)
  KD_mi = T^2 sum_c q_c (log q_c - log p_c),  q = softmax(t_mi / T), p = softmax(s_i / T)
loss = ce_weight mean_i CE(s_i, y_i) + kd_weight * scale * (1/B) sum_i sum_m w_mi KD_mi,
scale = M * teacher_share: 1 under protocol suite, M under authors.
"""

import pytest
import torch

from tests.methods import zoo_reference as zoo

torch.set_num_threads(1)


def entropy_naive(z):
    return -sum(float(torch.exp(v)) * float(v) for v in zoo.log_softmax_loop(z))


def weights_naive(t):
    M, B = t.shape[0], t.shape[1]
    w = [[0.0] * B for _ in range(M)]
    for i in range(B):
        h = [entropy_naive(t[m, i]) for m in range(M)]
        for m in range(M):
            w[m][i] = (1.0 - h[m] / sum(h)) / (M - 1)
    return w


def loss_naive(s, t, y, *, w=None, **kw):
    return zoo.weighted_kd_loss(s, t, y, weights_naive(t) if w is None else w, **kw)


def make(M, protocol="suite", C=5, **hp):
    return zoo.setup_method("ebkd", zoo.context(M, C, protocol), **hp)


@pytest.mark.parametrize("B,C,M,T,protocol,cw,kw", zoo.WEIGHTED_KD_CASES)
def test_loss_and_gradient_match_the_naive_formula(B, C, M, T, protocol, cw, kw):
    s, t, y = zoo.batch(B, C, M, seed=B * 100 + C * 10 + M)
    t[0] *= 2.5  # teachers of different confidence
    zoo.assert_weighted_kd_matches(make, loss_naive, s, t, y, T=T, protocol=protocol,
                                   ce_weight=cw, kd_weight=kw)


def test_the_label_only_enters_the_ce_term():
    s, t, y = zoo.batch(5, 6, 3, seed=3)
    s = s.detach()
    y2 = (y + 1) % 6
    method = make(3, "suite", 6, T=4.0, ce_weight=0.8, kd_weight=1.0)
    d = zoo.run(method, s, t, y) - zoo.run(method, s, t, y2)
    ce = sum(zoo.ce_loop(s[i], int(y[i])) - zoo.ce_loop(s[i], int(y2[i])) for i in range(5)) / 5
    torch.testing.assert_close(d, 0.8 * ce, rtol=1e-11, atol=1e-12)


def test_the_confident_teacher_gets_the_larger_weight():
    """M = 2, B = 1: w_0 = 1 - H_0 / (H_0 + H_1), read back from the (linear in w) loss."""
    s = zoo.batch(1, 4, 2, seed=7)[0].detach()
    t = torch.tensor([[[4.0, 0.0, 0.0, 1.0]], [[0.5, 0.0, 0.2, 0.0]]], dtype=torch.float64)
    loss = zoo.run(make(2, "suite", 4, T=4.0, ce_weight=0.0, kd_weight=1.0), s, t,
                   torch.tensor([2])).item()
    kd0, kd1 = zoo.kd_loop(s[0], t[0, 0], 4.0).item(), zoo.kd_loop(s[0], t[1, 0], 4.0).item()
    w0 = (loss - kd1) / (kd0 - kd1)
    h0, h1 = entropy_naive(t[0, 0]), entropy_naive(t[1, 0])
    assert w0 == pytest.approx(1.0 - h0 / (h0 + h1), abs=1e-10) and w0 > 0.5


@pytest.mark.parametrize("protocol", ["suite", "authors"])
@pytest.mark.parametrize("kind", ["permuted", "one_hot"])
def test_uniform_weights_give_kds_convention(protocol, kind):
    """Teachers of equal entropy (permuted logits of one teacher), or all of entropy 0 (one-hot
    to float64's precision: theirs divides 0 by 0 there): w = 1/M, and ebkd(ce 1 - a, kd a) =
    kd(a) under both protocols (ce_weight CE + kd_weight * M * teacher_share * mean_m KD_m)."""
    B, C, M, a, T = 4, 6, 3, 0.7, 3.0
    s, t, y = zoo.batch(B, C, M, seed=11)
    g = torch.Generator().manual_seed(12)
    for i in range(B):
        for m in range(M):
            if kind == "one_hot":
                t[m, i] = 0.0
                t[m, i, (i + m) % C] = 1000.0
            elif m:
                t[m, i] = t[0, i][torch.randperm(C, generator=g)]
    w = weights_naive(t) if kind == "permuted" else [[1.0 / M] * B] * M
    assert all(abs(w[m][i] - 1.0 / M) < 1e-14 for m in range(M) for i in range(B))
    got = zoo.run(make(M, protocol, C, T=T, ce_weight=1 - a, kd_weight=a), s, t, y)
    assert torch.isfinite(got)
    # kd keeps its weights in float32 (methods/kd.py): equal to its rounding
    kd = zoo.kd_loss(s, t, y, T=T, kd_weight=a, protocol=protocol, C=C)
    torch.testing.assert_close(got, kd, rtol=1e-7, atol=0.0)
    scale = zoo.weighted_scale(protocol, M)
    torch.testing.assert_close(got, loss_naive(s, t, y, T=T, ce_weight=1 - a, kd_weight=a,
                                               scale=scale, w=w), rtol=1e-11, atol=1e-12)


def test_a_teacher_whose_probabilities_underflow_gives_a_finite_loss():
    """softmax(t) with zeros in float64 (theirs: 0 * log 0 = NaN): the naive 0 log 0 = 0."""
    s, t, y = zoo.batch(3, 5, 2, seed=5)
    t[0, :, 0] = 900.0
    assert (torch.softmax(t[0], -1) == 0).any()
    got = zoo.run(make(2, "suite", 5, T=4.0, ce_weight=1.0, kd_weight=1.0), s, t, y)
    ref = loss_naive(s, t, y, T=4.0, ce_weight=1.0, kd_weight=1.0, scale=1)
    assert torch.isfinite(got)
    torch.testing.assert_close(got, ref, rtol=1e-11, atol=1e-12)


def test_the_weights_are_constants():
    zoo.assert_weights_are_constants(make)


def test_one_teacher_is_refused_in_one_line():
    zoo.assert_refused_in_one_line("ebkd", 1, "at least 2", C=5, n_train=100)
