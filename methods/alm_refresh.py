"""The ALM-KD / AMAL weight refresh, as the authors implemented it (durgas16/AMAL,
``LearnMultiLambdaMeta.get_lambdas``), without materialising per-example gradients.

With the backbone frozen (eval mode), one pass over the training set in a seeded random
order, in chunks of ``chunk`` batches. For example i of a batch of size B and loss term k
(CE, then KD with each teacher), g_ik = d(batch-mean term k)/d logits_i (per-example
gradient / B), h_i the pre-logit features. One virtual SGD step of the last layer (weight
and bias) at the current learning rate, summed over the chunk, moves the logits of a clean
validation batch (features h_v, logits o_v) to

    o_v' = o_v - lr * sum_i sum_k w_ik g_ik (1 + h_v . h_i)

(the 1 is the bias). The validation CE (batch mean) at o_v' is differentiated in closed form
with respect to the chunk's weights: with r_v = (softmax(o_v') - y_v) / V and
A_vi = 1 + h_v . h_i,

    dL/dw_ik = -lr * sum_c (A^T r)_ic g_ikc,

then ``steps`` plain gradient steps of size ``meta_lr``, feasibility restored after each.
The authors' code forms every per-example C x (D + 1) last-layer gradient; the sums above
are the same numbers from a few [V, n] and [n, C] products.

The virtual step scales with lr / B, so refreshes after the learning rate decays move the
weights little. That is the authors' behaviour and is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.runinfo import derive_seed

from .losses import ce_logit_grad, kd_logit_grad


@dataclass(frozen=True)
class RefreshPlan:
    batches: list[np.ndarray]  # training positions of each batch, in refresh order
    chunks: list[tuple[int, int]]  # [start, stop) into batches
    val_batches: list[np.ndarray]  # validation positions; chunk j uses val_batches[j % len]


def refresh_plan(n_train: int, n_val: int, seed: int, epoch: int, batch_size: int, chunk: int,
                 val_batch: int) -> RefreshPlan:
    order = np.random.default_rng(derive_seed(seed, "meta_order", epoch)).permutation(n_train)
    batches = [order[s:s + batch_size] for s in range(0, n_train, batch_size)]
    chunks = [(s, min(s + chunk, len(batches))) for s in range(0, len(batches), chunk)]
    vorder = np.random.default_rng(derive_seed(seed, "meta_val", epoch)).permutation(n_val)
    v = min(val_batch, n_val)
    val_batches = [vorder[s:s + v] for s in range(0, n_val - v + 1, v)] or [vorder]
    return RefreshPlan(batches, chunks, val_batches)


def logit_grads(logits, labels, teacher_logits, T) -> torch.Tensor:
    """[K, B, C] per-example logit gradients of the batch-mean terms (CE, KD_1..KD_M)."""
    b = len(labels)
    ce = ce_logit_grad(logits, labels)[None]
    kd = kd_logit_grad(logits, teacher_logits, T)
    return torch.cat([ce, kd]) / b


def lastlayer_hypergrad(w, g, h, hv, ov, yv, lr):
    """Closed-form dL_val/dw [n, K] after one virtual last-layer step (see module doc).

    w [n, K] weights, g [K, n, C] logit gradients, h [n, D] features; hv [V, D], ov [V, C],
    yv [V] the validation batch. Also returns L_val at the virtual step.
    """
    a = 1.0 + hv @ h.T  # [V, n]
    gw = torch.einsum("nk,knc->nc", w, g)
    ov2 = ov - lr * (a @ gw)
    r = (F.softmax(ov2, dim=1) - F.one_hot(yv, ov.shape[1]).to(ov.dtype)) / len(yv)
    atr = a.T @ r  # [n, C]
    grad = -lr * torch.einsum("nc,knc->nk", atr, g)
    return grad, F.cross_entropy(ov2, yv)


@torch.no_grad()
def forward_features(model, x):
    feats = model.forward_head(model.forward_features(x), pre_logits=True)
    return feats.float(), model.get_classifier()(feats).float()


def teacher_diagnostics(teacher_logits: torch.Tensor, labels: torch.Tensor):
    """[B, M] whether each teacher's top class is the given label, and its probability."""
    m = teacher_logits.shape[0]
    agree = (teacher_logits.argmax(-1) == labels[None]).T
    prob = F.softmax(teacher_logits, -1).gather(-1, labels[None, :, None].expand(m, -1, 1))
    return agree, prob[..., 0].T


@torch.no_grad()
def lastlayer_refresh(weights: torch.Tensor, step, *, model, teachers, data, lr: float,
                      seed: int, epoch: int, T: float, batch_size: int, chunk: int,
                      val_batch: int, steps: int, meta_lr: float) -> dict:
    """Refresh ``weights`` [N, K] in place; returns per-instance teacher diagnostics."""
    was_training = model.training
    model.eval()
    device = weights.device
    hv, ov = [], []
    for x, _ in data.eval_batches("val", 1024):
        f, o = forward_features(model, x)
        hv.append(f)
        ov.append(o)
    hv, ov = torch.cat(hv), torch.cat(ov)
    plan = refresh_plan(data.n_train, len(data.y_val), seed, epoch, batch_size, chunk, val_batch)
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, "meta_augment", epoch))
    n, m = data.n_train, len(teachers)
    agree = torch.zeros(n, m, dtype=torch.bool, device=device)
    prob_given = torch.zeros(n, m, device=device)
    for j, (start, stop) in enumerate(plan.chunks):
        hs, gs, idxs = [], [], []
        for batch in plan.batches[start:stop]:
            idx = torch.as_tensor(batch, device=device)
            x, y = data.train_batch(idx, gen), data.y_train[idx]
            f, o = forward_features(model, x)
            t = torch.stack([tm(x).float() for tm in teachers])
            hs.append(f)
            gs.append(logit_grads(o, y, t, T))
            idxs.append(idx)
            agree[idx], prob_given[idx] = teacher_diagnostics(t, y)
        h, g, idx = torch.cat(hs), torch.cat(gs, dim=1), torch.cat(idxs)
        vb = torch.as_tensor(plan.val_batches[j % len(plan.val_batches)], device=device)
        w = weights[idx]
        for _ in range(steps):
            grad, _ = lastlayer_hypergrad(w, g, h, hv[vb], ov[vb], data.y_val[vb], lr)
            w = step(w, grad, meta_lr)
        weights[idx] = w
    model.train(was_training)
    return {"teacher_agrees": agree, "teacher_prob_given": prob_given}


def refresh_due(epoch: int, start: int, every: int) -> bool:
    return epoch >= start and (epoch - start) % every == 0

