"""``aekd``: Adaptive Ensemble KD (Du, You, Li, Wu, Wang, Qian, Zhang, "Agree to Disagree:
Adaptive Ensemble Knowledge Distillation in Gradient Space", NeurIPS 2020).

    loss = ce_weight * CE(s, y) + kd_weight * M * share * sum_m w_m (1/B) sum_i KD_mi
    g_m  = (1/B) sum_i dKD_mi / ds_i = (1/B) sum_i T (softmax(s_i/T) - softmax(t_mi/T))  [C]
    w    = argmin ||sum_m w_m g_m||^2  s.t.  sum_m w_m = 1,  0 <= w_m <= u,  u = clip(C, 1/M, 1)

one weight per teacher and batch (constants: no gradient through them); the label plays no
part. Ported from AnTuo1998/AE-KD @ 68f490e: ``helper/loops.py:304-323`` (the gradients of
each batch-mean KD w.r.t. the student logits, hooked; ``loss_div = torch.dot(scale,
losses)``), ``helper/optimization.py:16-57`` (``find_optimal_svm``: the batch mean of those
gradients :18-19, Gram matrix :23, nu = 1 / (C M) clamped to [1/M, 1] :25-30, a one-class
nu-SVM on the precomputed Gram whose dual is this QP with u = 1 / (M nu) :39-49; ``svm_norm``
off by default, train_student.py:132). Their libsvm stops at tol 1e-6 on a Gram of order 1e-6
and often returns its starting point; here the QP is solved exactly (docs/reproduction-notes.md,
Z-aekd). Ties (a singular Gram): the optimum with the most weights strictly inside the bounds,
the least-norm one there (identical teachers: uniform).

Several teachers: as ``camkd`` (methods/camkd.py). Defaults: train_student.py:103-113 (-r 1,
-a 0.9, kd_T 4, the README's CIFAR-100 command) and :129-130 (C 0.6).
"""

import itertools

import numpy as np
import torch

from .base import register_method
from .camkd import TeacherWeightedKD
from .losses import kd_logit_grad

FEASIBLE, TIE = 1e-9, 1e-12  # on a unit scale: the Gram divided by its largest diagonal


def min_norm_weights(G: np.ndarray, upper: float) -> np.ndarray:
    """argmin w'Gw on {sum w = 1, 0 <= w <= upper}, exactly: on each face (every weight at 0,
    at ``upper`` or free: 3^M faces) the KKT system, solved at once by pseudo-inverses; the
    feasible point of lowest objective wins, a tie the one with the most free weights (if
    rounding leaves none feasible: the least infeasible, clipped)."""
    m = len(G)
    if not 1.0 / m - 1e-12 <= upper <= 1.0:
        raise ValueError(f"upper bound {upper} outside [1/M, 1] (M = {m})")
    top = float(np.diag(G).max())
    if top <= 0:
        return np.full(m, 1.0 / m)
    G = G / top  # the argmin does not change
    S = np.array(list(itertools.product((0, 1, 2), repeat=m)))  # at 0, at upper, free
    free = S == 2
    n = len(S)
    K = np.zeros((n, m + 1, m + 1))  # rows: free i: 2 (G w)_i + lam = 0; fixed i: w_i = v_i
    K[:, :m, :m] = np.where(free[:, :, None], 2.0 * G, np.eye(m))
    K[:, :m, m] = free
    K[:, m, :m] = 1.0  # sum w = 1
    rhs = np.concatenate([np.where(S == 1, upper, 0.0), np.ones((n, 1))], axis=1)
    W = (np.linalg.pinv(K, rcond=1e-13) @ rhs[:, :, None])[:, :m, 0]
    bad = np.maximum.reduce([-W.min(1), W.max(1) - upper, np.abs(W.sum(1) - 1.0),
                             np.zeros(n)])
    f = np.einsum("ni,ij,nj->n", W, G, W)
    ok = bad <= FEASIBLE
    if ok.any():
        tie = ok & (f <= f[ok].min() + TIE)
        best = np.flatnonzero(tie)[np.argmax(free[tie].sum(1))]
    else:
        best = int(np.argmin(bad))
    w = np.clip(W[best], 0.0, upper)
    return w / w.sum()


@register_method
class AEKD(TeacherWeightedKD):
    name = "aekd"

    def teacher_weights(self, out, teachers):
        m = len(teachers)
        g = kd_logit_grad(out.logits.detach(), teachers, self.hparams["T"]).mean(1)  # [M, C]
        g = g.double()
        upper = min(max(float(self.hparams["C"]), 1.0 / m), 1.0)
        w = min_norm_weights((g @ g.T).cpu().numpy(), upper)
        self.weights = w  # the last batch's, for inspection
        return torch.as_tensor(w, dtype=out.logits.dtype, device=out.logits.device)[:, None]
