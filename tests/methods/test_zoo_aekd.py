"""Reference test for ``aekd`` (Du et al., NeurIPS 2020; AnTuo1998/AE-KD @ 68f490e,
helper/loops.py:304-323, helper/optimization.py:16-57): naive float64 loops over instances,
teachers and classes, written from the authors' formula, and the weights against independent
solvers (M = 2 in closed form, scipy's SLSQP, a fine simplex grid for M = 3); independent of
methods/aekd.py (only methods.base is imported, here and in zoo_reference.py; the method's
last weights are read from its ``weights`` attribute).

  KD_mi = T^2 sum_c q_c (log q_c - log p_c),  q = softmax(t_mi / T), p = softmax(s_i / T)
  g_m   = mean_i dKD_mi / ds_i     (their hooked gradient of the batch-mean KD, averaged over
                                    the batch: its scale does not move the argmin)
  w     = argmin ||sum_m w_m g_m||^2, sum w = 1, 0 <= w_m <= u, u = clip(C, 1/M, 1)
          (their one-class nu-SVM, nu = 1 / (C M) clamped to [1/M, 1], u = 1 / (M nu))
loss = ce_weight mean_i CE(s_i, y_i) + kd_weight * scale * sum_m w_m mean_i KD_mi (w constant),
scale = M * teacher_share: 1 under protocol suite, M under authors.
"""

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from tests.methods import zoo_reference as zoo

torch.set_num_threads(1)


def gram_naive(s, t, T):
    """Their G: the batch mean of each teacher's hooked gradient, by autograd per instance."""
    M, B = t.shape[0], s.shape[0]
    g = np.zeros((M, s.shape[1]))
    for m in range(M):
        for i in range(B):
            si = s[i].detach().clone().requires_grad_(True)
            g[m] += torch.autograd.grad(zoo.kd_loop(si, t[m, i], T) / B, si)[0].numpy() / B
    return g @ g.T


def gram_numpy(s, t, T):  # the same, vectorised (for the large batches)
    def sm(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    s, t = s.detach().double().numpy(), t.double().numpy()
    g = (T * (sm(s / T)[None] - sm(t / T))).mean(1) / len(s)  # the batch mean's 1 / B
    return g @ g.T


def upper(C, M):
    return min(max(C, 1.0 / M), 1.0)


def qp_two(G, u):
    """M = 2 in closed form: f(a) = a^2 G00 + 2a(1-a) G01 + (1-a)^2 G11 on [1 - u, u]."""
    den = G[0, 0] - 2 * G[0, 1] + G[1, 1]
    a = (G[1, 1] - G[0, 1]) / den if den > 0 else 0.5
    a = min(max(a, 1 - u), u)
    return np.array([a, 1 - a])


def qp_slsqp(G, u):
    G = G / np.diag(G).max()
    M = len(G)
    r = minimize(lambda w: w @ G @ w, np.full(M, 1.0 / M), jac=lambda w: 2 * G @ w,
                 method="SLSQP", bounds=[(0.0, u)] * M,
                 constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
                 options={"ftol": 1e-16, "maxiter": 1000})
    return r.x


def qp_grid(G, u, n=400):
    best, arg = np.inf, None
    for i, j in itertools.product(range(n + 1), repeat=2):
        w = np.array([i, j, n - i - j]) / n
        if w.min() < 0 or w.max() > u + 1e-12:
            continue
        if (f := w @ G @ w) < best:
            best, arg = f, w
    return arg


def loss_naive(s, t, y, w, **kw):
    """One weight per teacher, the same for every instance."""
    B = s.shape[0]
    return zoo.weighted_kd_loss(s, t, y, [[float(v)] * B for v in w], **kw)


def make(M, protocol="suite", n_classes=5, **hp):
    return zoo.setup_method("aekd", zoo.context(M, n_classes, protocol), **hp)


CASES = [  # B, C, M, T, protocol, ce_weight, kd_weight, tolerance C
    (5, 4, 2, 4.0, "suite", 1.0, 0.9, 0.6),
    (3, 7, 2, 2.0, "authors", 0.5, 1.5, 0.9),
    (6, 5, 3, 1.0, "suite", 1.0, 0.7, 0.6),
    (4, 10, 3, 8.0, "authors", 1.0, 1.0, 5.0),
    (5, 6, 4, 4.0, "suite", 1.0, 0.9, 0.4),
    (2, 3, 4, 3.0, "authors", 0.0, 2.0, 0.6),
]


@pytest.mark.parametrize("B,C,M,T,protocol,cw,kw,tol", CASES)
def test_loss_gradient_and_weights_match_the_references(B, C, M, T, protocol, cw, kw, tol):
    s, t, y = zoo.batch(B, C, M, seed=B * 100 + C * 10 + M)
    t[0] *= 2.0
    method = make(M, protocol, C, T=T, ce_weight=cw, kd_weight=kw, C=tol)
    got = zoo.run(method, s, t, y)
    G, u = gram_naive(s, t, T), upper(tol, M)
    ref_w = qp_two(G, u) if M == 2 else qp_slsqp(G, u)
    w = method.weights
    assert w.shape == (M,) and abs(w.sum() - 1) < 1e-12
    assert w.min() >= 0 and w.max() <= u + 1e-15
    np.testing.assert_allclose(w, ref_w, atol=1e-10 if M == 2 else 1e-6)
    f = lambda v: v @ G @ v  # noqa: E731
    assert f(w) <= f(ref_w) * (1 + 1e-10) + 1e-300
    scale = zoo.weighted_scale(protocol, M)
    for weights, rtol in ((w, 1e-11), (ref_w, 1e-10 if M == 2 else 1e-6)):
        ref = loss_naive(s, t, y, weights, T=T, ce_weight=cw, kd_weight=kw, scale=scale)
        zoo.assert_loss_and_grad(got, ref, s, rtol=rtol, grad_rtol=rtol, close=True,
                                 retain_graph=True)


@pytest.mark.parametrize("seed", range(4))
def test_three_teachers_against_a_fine_simplex_grid(seed):
    s, t, y = zoo.batch(4, 5, 3, seed=50 + seed)
    t[seed % 3] *= 3.0
    method = make(3, T=4.0, C=0.6 if seed % 2 else 1.0)
    zoo.run(method, s, t, y)
    G, u = gram_naive(s, t, 4.0), upper(0.6 if seed % 2 else 1.0, 3)
    grid = qp_grid(G, u)
    assert method.weights @ G @ method.weights <= grid @ G @ grid * (1 + 1e-12)
    assert np.abs(method.weights - grid).max() < 0.02


@pytest.mark.parametrize("M", [2, 3, 4])
def test_their_scale_batch_64_classes_100_in_float32(M):
    """Their setting (B 64, C 100, T 4, C 0.6): a Gram of order 1e-6, where their libsvm at tol
    1e-6 often stops at its start (0.6, 0.4, 0, ...); the exact argmin here."""
    s, t, y = zoo.batch(64, 100, M, seed=M, dtype=torch.float32)
    method = make(M, n_classes=100, T=4.0, C=0.6)
    zoo.run(method, s, t, y)
    G = gram_numpy(s, t, 4.0)
    assert np.diag(G).max() < 1e-4
    ref = qp_two(G, 0.6) if M == 2 else qp_slsqp(G, 0.6)
    np.testing.assert_allclose(method.weights, ref, atol=2e-4)


def their_svm(G, C):
    """Their find_optimal_svm (optimization.py:16-57, svm_norm off) on a given Gram."""
    from sklearn.svm import OneClassSVM

    m = len(G)
    nu = 1 / (C * m)  # train_student.py:173-174
    nu = 1.0 if nu > 1 else (1 / m if nu < 1 / m else nu)
    svm = OneClassSVM(kernel="precomputed", nu=nu, tol=1e-6).fit(G)
    ret = np.zeros(m)
    ret[svm.support_] = svm.dual_coef_ / (m * nu)
    return ret


@pytest.mark.parametrize("M,tol", [(2, 0.6), (3, 0.6), (3, 0.4), (3, 0.9), (4, 0.6), (4, 5.0)])
def test_their_one_class_svm_solves_the_same_qp(M, tol):
    """The dual of their nu-SVM is this QP: on a unit-scale Gram (their libsvm's stopping
    tolerance then far below the gaps) it finds the method's weights. (C <= 1/M, nu = 1:
    scikit-learn 1.9 refuses to fit, the only feasible w is uniform: tested above.)"""
    for seed in range(3):
        s, t, y = zoo.batch(64, 100, M, seed=200 + seed, dtype=torch.float32)
        method = make(M, n_classes=100, T=4.0, C=tol)
        zoo.run(method, s, t, y)
        G = gram_numpy(s, t, 4.0)
        np.testing.assert_allclose(their_svm(G / np.diag(G).max(), tol), method.weights,
                                   atol=1e-4)


def test_their_svm_at_their_scale_stops_at_its_start():
    """Z-aekd-3: at their Gram's scale (1e-6, as the hooked batch-mean gradients give it) the
    libsvm tolerance 1e-6 stops at its starting point (first teacher C, the next 1 - C)."""
    s, t, y = zoo.batch(64, 100, 3, seed=3, dtype=torch.float32)
    method = make(3, n_classes=100, T=4.0, C=0.6)
    zoo.run(method, s, t, y)
    G = gram_numpy(s, t, 4.0)
    np.testing.assert_allclose(their_svm(G, 0.6), [0.6, 0.4, 0.0], atol=1e-12)
    assert np.abs(method.weights - [0.6, 0.4, 0.0]).max() > 0.05


def test_weights_stay_in_their_bounds_and_reach_them():
    """M = 2, C = 0.6: w in [0.4, 0.6]; a teacher equal to the student would take all the
    weight without the bound, and gets exactly 0.6."""
    s, t, y = zoo.batch(3, 5, 2, seed=9)
    t[1] = s.detach()
    method = make(2, T=4.0, C=0.6)
    zoo.run(method, s, t, y)
    np.testing.assert_allclose(method.weights, [0.4, 0.6], atol=1e-12)
    zoo.run(make(2, T=4.0, C=1.5), s, t, y)  # C > 1: nu clamped to 1/M, no upper bound left
    for seed in range(10):
        s, t, y = zoo.batch(4, 5, 2, seed=100 + seed)
        zoo.run(method, s, t, y)
        assert 0.4 - 1e-12 <= method.weights.min() <= method.weights.max() <= 0.6 + 1e-12


@pytest.mark.parametrize("protocol", ["suite", "authors"])
@pytest.mark.parametrize("kind", ["small_C", "identical", "student_is_teacher"])
def test_uniform_weights_give_kds_convention(protocol, kind):
    """C < 1/M (nu clamped to 1: u = 1/M), identical teachers (a singular Gram: every w is
    optimal, the uniform one chosen) or a student equal to every teacher (G = 0): w = 1/M, and
    aekd(ce 1 - a, kd a) = kd(a) (ce_weight CE + kd_weight * M * teacher_share * mean_m KD)."""
    B, C, M, a, T = 4, 6, 3, 0.7, 3.0
    s, t, y = zoo.batch(B, C, M, seed=13)
    if kind == "identical":
        t[:] = t[0]
    elif kind == "student_is_teacher":
        t[:] = s.detach()
    method = make(M, protocol, C, T=T, ce_weight=1 - a, kd_weight=a,
                  C=0.2 if kind == "small_C" else 0.6)
    got = zoo.run(method, s, t, y)
    np.testing.assert_allclose(method.weights, np.full(M, 1.0 / M), atol=1e-12)
    # kd keeps its weights in float32 (methods/kd.py): equal to its rounding
    kd = zoo.kd_loss(s, t, y, T=T, kd_weight=a, protocol=protocol, C=C)
    torch.testing.assert_close(got, kd, rtol=1e-7, atol=1e-12)
    scale = zoo.weighted_scale(protocol, M)
    ref = loss_naive(s, t, y, np.full(M, 1.0 / M), T=T, ce_weight=1 - a, kd_weight=a,
                     scale=scale)
    torch.testing.assert_close(got, ref, rtol=1e-11, atol=1e-12)


def test_the_label_plays_no_part_in_the_weights():
    s, t, y = zoo.batch(5, 6, 3, seed=17)
    method = make(3, T=4.0, C=0.6)
    zoo.run(method, s, t, y)
    w = method.weights.copy()
    zoo.run(method, s, t, (y + 1) % 6)
    np.testing.assert_array_equal(method.weights, w)


def test_one_teacher_is_refused_in_one_line():
    zoo.assert_refused_in_one_line("aekd", 1, "at least 2", C=5, n_train=100)


def test_the_solver_refuses_a_bound_outside_its_range():
    """min_norm_weights takes u in [1/M, 1] (the caller clips C into it): a bound that no
    weight vector on the simplex can meet, or one above 1, is refused, the edges accepted."""
    from methods.aekd import min_norm_weights

    G = np.array([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 3.0]])
    for u in (1 / 3, 1.0):
        w = min_norm_weights(G, u)
        assert w.sum() == pytest.approx(1.0) and (w <= u + 1e-12).all()
    for u in (1 / 3 - 1e-9, 0.2, 1.0 + 1e-9, 1.5):
        with pytest.raises(ValueError, match="outside"):
            min_norm_weights(G, u)
