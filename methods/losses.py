"""Per-instance loss terms and their closed-form logit gradients.

KD term everywhere: ``T^2 * KL(softmax(t/T) || softmax(s/T))`` per instance (Hinton et
al.; T = 4 in the ALM-KD code), so its gradient keeps the scale of CE's as T changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_per_instance(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels, reduction="none")


def kd_per_instance(logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """[M, B]: one KD term per teacher for every instance of the batch."""
    log_p = F.log_softmax(logits / T, dim=-1)
    q = F.softmax(teacher_logits / T, dim=-1)
    return (T * T) * (q * (torch.log(q.clamp_min(1e-30)) - log_p)).sum(-1)


def term_losses(logits, labels, teacher_logits, T) -> torch.Tensor:
    """[K, B] per-instance terms in mixing order: CE, then KD with each teacher."""
    ce = ce_per_instance(logits, labels)[None]
    if teacher_logits is None:
        return ce
    return torch.cat([ce, kd_per_instance(logits, teacher_logits, T)])


def ce_logit_grad(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d CE_i / d logits_i (per instance, not divided by the batch size)."""
    return F.softmax(logits, dim=-1) - F.one_hot(labels, logits.shape[-1]).to(logits.dtype)


def kd_logit_grad(logits: torch.Tensor, teacher_logits: torch.Tensor, T: float) -> torch.Tensor:
    """[M, B, C]: d KD_im / d logits_i = T * (softmax(s/T) - softmax(t_m/T))."""
    return T * (F.softmax(logits / T, dim=-1)[None] - F.softmax(teacher_logits / T, dim=-1))


def mixed_loss(weights: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
    """Batch mean of sum_k w_ik * term_ik; weights [B, K], terms [K, B]."""
    return (weights.T * terms).mean(dim=1).sum()
