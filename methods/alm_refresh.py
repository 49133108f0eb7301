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

Variants are settings of this one refresh (``RefreshSettings``), not copies of it:

- released (``almkd``, ``amal``; KD/LearnMultiLambdaMeta.py @ 6c4764b): the student in eval
  mode, one validation batch of ``val_batch`` per chunk (cycling), meta objective the
  validation CE;
- seed paper v1 (``almkd_v1``; getLambda/LearnLambdaMeta.py @ 642fd9b): the live student in
  train mode (BatchNorm on batch statistics, its running statistics updated as in their
  code), the whole validation set once per refresh, meta objective 0.75 x validation CE +
  0.25 x the chunk's own training CE at the virtual step (``train_share``): the chunk's rows
  simply join the validation rows with their own weights in the closed form above;
- protocol ``authors``: validation inputs drawn with the training augmentation, teachers as
  their scripts leave them (eval from the first released refresh on; train mode throughout
  under v1, whose code never calls .eval()).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.core.seeds import derive_seed

from .losses import ce_logit_grad, kd_logit_grad


@dataclass(frozen=True)
class RefreshSettings:
    chunk: int  # training batches per chunk
    val_batch: int | None  # validation batch per chunk; None: the whole set, once per refresh
    steps: int
    meta_lr: float
    train_share: float = 0.0  # weight of the chunk's training CE in the meta objective (v1 0.25)
    model_mode: str = "eval"  # the student's mode during the refresh: eval or train (v1)
    val_augment: bool = False  # validation inputs with the training augmentation (authors)
    teacher_mode: str = "eval"  # the teachers' mode from the refresh on (not restored)


@dataclass(frozen=True)
class RefreshPlan:
    batches: list[np.ndarray]  # training positions of each batch, in refresh order
    chunks: list[tuple[int, int]]  # [start, stop) into batches
    val_batches: list[np.ndarray]  # validation positions; chunk j uses val_batches[j % len]


def refresh_plan(n_train: int, n_val: int, seed: int, epoch: int, batch_size: int, chunk: int,
                 val_batch: int | None) -> RefreshPlan:
    order = np.random.default_rng(derive_seed(seed, "meta_order", epoch)).permutation(n_train)
    batches = [order[s:s + batch_size] for s in range(0, n_train, batch_size)]
    chunks = [(s, min(s + chunk, len(batches))) for s in range(0, len(batches), chunk)]
    if val_batch is None:  # the whole validation set, in order, once per refresh
        return RefreshPlan(batches, chunks, [np.arange(n_val)])
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


def lastlayer_hypergrad(w, g, h, hv, ov, yv, lr, coef=None):
    """Closed-form dL/dw [n, K] after one virtual last-layer step (see module doc).

    w [n, K] weights, g [K, n, C] logit gradients, h [n, D] features; hv [V, D], ov [V, C],
    yv [V] the objective's rows, ``coef`` [V] each row's weight in L = sum_v coef_v CE_v
    (default 1 / V: the mean validation CE). Also returns L at the virtual step.
    """
    if coef is None:
        coef = torch.full((len(yv),), 1.0 / len(yv), device=ov.device, dtype=ov.dtype)
    a = 1.0 + hv @ h.T  # [V, n]
    gw = torch.einsum("nk,knc->nc", w, g)
    ov2 = ov - lr * (a @ gw)
    r = (F.softmax(ov2, dim=1) - F.one_hot(yv, ov.shape[1]).to(ov.dtype)) * coef[:, None]
    atr = a.T @ r  # [n, C]
    grad = -lr * torch.einsum("nc,knc->nk", atr, g)
    return grad, (coef * F.cross_entropy(ov2, yv, reduction="none")).sum()


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


VAL_FORWARD_BATCH = 1000  # the authors' val_batch_size


def _val_rows(model, data, idx: torch.Tensor, gen, augment: bool):
    """Features and logits of validation positions ``idx`` (in forward batches of 1000, the
    authors' val_batch_size, which matters in train mode), augmented with ``gen``."""
    hs, os_ = [], []
    for s in range(0, len(idx), VAL_FORWARD_BATCH):
        part = idx[s:s + VAL_FORWARD_BATCH]
        x = data.batch("val", part, gen if augment else None)
        f, o = forward_features(model, x)
        hs.append(f)
        os_.append(o)
    return torch.cat(hs), torch.cat(os_)


@torch.no_grad()
def lastlayer_refresh(weights: torch.Tensor, step, settings: RefreshSettings, *, model,
                      teachers, data, lr: float, seed: int, epoch: int, T: float,
                      batch_size: int, teacher_outputs=None) -> dict:
    """Refresh ``weights`` [N, K] in place; returns per-instance teacher diagnostics.
    ``teacher_outputs``: the teachers' logits on the training inputs, computed once
    (benchmark/training/teacher_cache.py), where they cannot change; None: a teacher pass
    per batch."""
    st = settings
    was_training = model.training
    model.train(st.model_mode == "train")
    for t in teachers:
        t.train(st.teacher_mode == "train")
    device = weights.device
    plan = refresh_plan(data.n_train, len(data.y_val), seed, epoch, batch_size, st.chunk,
                        st.val_batch)
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, "meta_augment", epoch))
    vgen = torch.Generator(device=device)
    vgen.manual_seed(derive_seed(seed, "meta_val_augment", epoch))
    val_idx = [torch.as_tensor(v, device=device) for v in plan.val_batches]
    # Validation features computed once per refresh where they cannot change (eval mode
    # without augmentation: every chunk's batch is then a row selection), or where the
    # authors computed them once (the whole set, v1); else per chunk
    once = st.val_batch is None or (st.model_mode == "eval" and not st.val_augment)
    if once:
        everything = torch.arange(len(data.y_val), device=device)
        hv_all, ov_all = _val_rows(model, data, everything, vgen, st.val_augment)
    n, m = data.n_train, len(teachers)
    agree = torch.zeros(n, m, dtype=torch.bool, device=device)
    prob_given = torch.zeros(n, m, device=device)
    for j, (start, stop) in enumerate(plan.chunks):
        hs, os_, gs, idxs = [], [], [], []
        for batch in plan.batches[start:stop]:
            idx = torch.as_tensor(batch, device=device)
            x, y = data.train_batch(idx, gen), data.y_train[idx]
            f, o = forward_features(model, x)
            t = (teacher_outputs.train_logits(idx) if teacher_outputs is not None
                 else torch.stack([tm(x).float() for tm in teachers]))
            hs.append(f)
            os_.append(o)
            gs.append(logit_grads(o, y, t, T))
            idxs.append(idx)
            agree[idx], prob_given[idx] = teacher_diagnostics(t, y)
        h, o, g, idx = torch.cat(hs), torch.cat(os_), torch.cat(gs, dim=1), torch.cat(idxs)
        vb = val_idx[j % len(val_idx)]
        hv, ov = ((hv_all[vb], ov_all[vb]) if once else
                  _val_rows(model, data, vb, vgen, st.val_augment))
        yv = data.y_val[vb]
        coef = torch.full((len(yv),), (1.0 - st.train_share) / len(yv), device=device)
        if st.train_share:
            hv, ov, yv = torch.cat([hv, h]), torch.cat([ov, o]), torch.cat([yv, data.y_train[idx]])
            coef = torch.cat([coef, torch.full((len(idx),), st.train_share / len(idx),
                                               device=device)])
        w = weights[idx]
        for _ in range(st.steps):
            grad, _ = lastlayer_hypergrad(w, g, h, hv, ov, yv, lr, coef)
            w = step(w, grad, st.meta_lr)
        weights[idx] = w
    model.train(was_training)
    return {"teacher_agrees": agree, "teacher_prob_given": prob_given}


def refresh_due(epoch: int, start: int, every: int) -> bool:
    return epoch >= start and (epoch - start) % every == 0

