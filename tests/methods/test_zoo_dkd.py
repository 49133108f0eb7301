"""Reference test for ``dkd`` (Zhao et al., CVPR 2022; megvii-research/mdistiller @ a08d46f,
mdistiller/distillers/DKD.py): naive float64 loops over instances and classes, written from
the authors' formula, independent of methods/dkd.py (only methods.base is imported, here and
in zoo_reference.py).

Per instance i with given label y, p = softmax(z / T) for student (s) and teacher (t):
  b = [p_y, sum_{j != y} p_j]                   (binary target / non-target distribution)
  q_j = p_j / sum_{k != y} p_k for j != y        (renormalised non-target distribution)
  TCKD_i = T^2 sum_k b_t[k] log(b_t[k] / b_s[k]),  NCKD_i = T^2 sum_j q_t[j] log(q_t[j] / q_s[j])
loss = ce_weight * mean_i CE_i + warm(epoch) * share * sum_m mean_i (alpha TCKD_im + beta NCKD_im)
warm: their epoch counts from 1 (trainer.py:78), ctx.epoch from 0: min((ctx.epoch + 1) / W, 1).
"""

import math

import pytest
import torch

from methods.base import build_method
from tests.methods import zoo_reference as zoo

torch.set_num_threads(1)


def tckd_nckd_naive(s, t, y, T):
    """Per-instance (TCKD, NCKD) by loops over the classes (torch scalars: autograd works)."""
    C = len(s)
    ps, pt = zoo.softmax_loop(s, T), zoo.softmax_loop(t, T)
    bs = [ps[y], sum(ps[j] for j in range(C) if j != y)]
    bt = [pt[y], sum(pt[j] for j in range(C) if j != y)]
    tckd = sum(bt[k] * (torch.log(bt[k]) - torch.log(bs[k])) for k in range(2))
    zs = sum(ps[j] for j in range(C) if j != y)
    zt = sum(pt[j] for j in range(C) if j != y)
    nckd = 0.0
    for j in range(C):
        if j == y:
            continue
        qs, qt = ps[j] / zs, pt[j] / zt
        nckd = nckd + qt * (torch.log(qt) - torch.log(qs))
    return T * T * tckd, T * T * nckd


def loss_naive(s, t, y, *, T, alpha, beta, ce_weight, warm, share):
    B, M = s.shape[0], t.shape[0]
    kd = 0.0
    for m in range(M):
        per = 0.0
        for i in range(B):
            tc, nc = tckd_nckd_naive(s[i], t[m, i], int(y[i]), T)
            per = per + alpha * tc + beta * nc
        kd = kd + per / B
    return ce_weight * zoo.mean_ce_loop(s, y) + warm * share * kd


def make(M, protocol="suite", epoch=0, C=7, **hp):
    ctx = zoo.context(M, C, protocol, epoch=epoch)
    return zoo.setup_method("dkd", ctx, **hp), ctx


def check(method, s, t, y, **ref):
    zoo.assert_loss_and_grad(zoo.run(method, s, t, y), loss_naive(s, t, y, **ref), s)


def test_defaults_are_the_authors():
    # mdistiller @ a08d46f mdistiller/engine/cfg.py:163-167 (res32x4_res8x4.yaml keeps them)
    method = build_method("dkd")
    assert method.hparams == {"T": 4.0, "ce_weight": 1.0, "alpha": 1.0, "beta": 8.0,
                              "warmup": 20}


@pytest.mark.parametrize("B,C,M,T,alpha,beta,ce_weight,seed", [
    (5, 7, 1, 4.0, 1.0, 8.0, 1.0, 0),
    (3, 4, 1, 1.0, 0.7, 3.0, 0.5, 1),
    (6, 10, 2, 2.0, 1.3, 6.0, 1.0, 2),
    (4, 5, 3, 4.0, 0.4, 2.0, 2.0, 3),
    (2, 3, 2, 8.0, 1.0, 8.0, 0.0, 4),
])
@pytest.mark.parametrize("protocol", ["suite", "authors"])
def test_loss_and_grad_match_naive(B, C, M, T, alpha, beta, ce_weight, seed, protocol):
    hp = dict(T=T, alpha=alpha, beta=beta, ce_weight=ce_weight, warmup=1)
    method, _ = make(M, protocol, epoch=3, C=C, **hp)
    s, t, y = zoo.batch(B, C, M, seed)
    share = 1.0 / M if protocol == "suite" else 1.0
    check(method, s, t, y, T=T, alpha=alpha, beta=beta, ce_weight=ce_weight, warm=1.0,
          share=share)


# their epoch = ctx.epoch + 1: the first epoch has factor 1 / warmup, epoch warmup - 1 has 1
@pytest.mark.parametrize("warmup,epoch,warm", [
    (20, 0, 1 / 20), (20, 4, 5 / 20), (20, 18, 19 / 20), (20, 19, 1.0), (20, 20, 1.0),
    (20, 150, 1.0), (3, 0, 1 / 3), (3, 1, 2 / 3), (1, 0, 1.0), (0, 0, 1.0), (0, 7, 1.0),
])
def test_warmup_factor(warmup, epoch, warm):
    M, C = 2, 6
    hp = dict(T=4.0, alpha=1.0, beta=8.0, ce_weight=1.0, warmup=warmup)
    method, ctx = make(M, "authors", epoch=0, C=C, **hp)
    ctx.epoch = epoch  # the engine sets it after setup, before each epoch
    s, t, y = zoo.batch(4, C, M, seed=epoch + 10 * warmup)
    check(method, s, t, y, T=4.0, alpha=1.0, beta=8.0, ce_weight=1.0, warm=warm, share=1.0)


def test_multi_teacher_shares():
    # suite: the sum of M teacher terms weighs like one; authors: M times the suite's KD part
    C, M = 5, 3
    s, t, y = zoo.batch(4, C, M, seed=7)
    hp = dict(T=4.0, alpha=1.0, beta=8.0, ce_weight=1.0, warmup=1)
    ce = zoo.mean_ce_loop(s, y).item()
    kd_suite = zoo.run(make(M, "suite", C=C, **hp)[0], s, t, y).item() - ce
    kd_authors = zoo.run(make(M, "authors", C=C, **hp)[0], s, t, y).item() - ce
    assert kd_authors == pytest.approx(M * kd_suite, rel=1e-10)
    same = t[:1].expand(M, -1, -1)  # M copies of one teacher: suite == one teacher
    one = zoo.run(make(1, "suite", C=C, **hp)[0], s, t[:1], y).item()
    assert zoo.run(make(M, "suite", C=C, **hp)[0], s, same, y).item() == pytest.approx(
        one, rel=1e-10)


def test_naive_reference_decomposes_kd():
    # the paper's eq. (2): KD = TCKD + (1 - b_t[target]) NCKD, per instance (checks the
    # reference itself against classical KD written independently)
    s, t, y = zoo.batch(5, 8, 1, seed=11)
    T = 3.0
    for i in range(5):
        tc, nc = tckd_nckd_naive(s[i], t[0, i], int(y[i]), T)
        ps, pt = zoo.softmax_loop(s[i], T), zoo.softmax_loop(t[0, i], T)
        kd = T * T * sum(pt[j] * (torch.log(pt[j]) - torch.log(ps[j])) for j in range(8))
        assert (tc + (1 - pt[int(y[i])]) * nc).item() == pytest.approx(kd.item(), rel=1e-10)


def test_split_at_given_label_not_argmax():
    # labels disagreeing with both argmaxes: the method follows the given label
    C, M = 6, 1
    s, t, y = zoo.batch(5, C, M, seed=5)
    y = (torch.maximum(s.argmax(1), t[0].argmax(1)) + 1) % C
    y = torch.where((y == s.argmax(1)) | (y == t[0].argmax(1)), (y + 1) % C, y)
    hp = dict(T=2.0, alpha=1.0, beta=8.0, ce_weight=1.0, warmup=20)
    method, ctx = make(M, "suite", C=C, **hp)
    ctx.epoch = 9
    check(method, s, t, y, T=2.0, alpha=1.0, beta=8.0, ce_weight=1.0, warm=0.5, share=1.0)


def test_teacher_gets_no_gradient_and_large_logits():
    # teacher terms are constants (their torch.no_grad, DKD.py:67-68); the 1000 mask holds
    # for logits of a realistic size (s / T up to ~ 30)
    C, M = 5, 2
    s, t, y = zoo.batch(3, C, M, seed=9, scale=40.0)
    t = t.clone().requires_grad_(True)
    method, _ = make(M, "suite", C=C, T=1.5, alpha=1.0, beta=8.0, ce_weight=1.0, warmup=1)
    loss = zoo.run(method, s, t, y)
    assert math.isfinite(loss.item())
    assert torch.autograd.grad(loss, t, allow_unused=True)[0] is None
    check(method, s, t.detach(), y, T=1.5, alpha=1.0, beta=8.0, ce_weight=1.0, warm=1.0,
          share=0.5)
