"""``dkd``: Decoupled Knowledge Distillation (Zhao, Cui, Song, Qiu, Liang, CVPR 2022).

    loss = ce_weight * CE(s, y) + min((epoch + 1) / warmup, 1) * share * sum_m DKD(s, t_m, y)
    DKD  = alpha * TCKD + beta * NCKD, both batch means (sum / B) with a T^2 factor:
    TCKD = T^2 KL(b(t) || b(s)), b(z) = [p_y, 1 - p_y] of p = softmax(z / T): target vs rest
    NCKD = T^2 KL(q(t) || q(s)), q(z) = softmax(z / T - 1000 * onehot(y)): p renormalised
           over the non-target classes (the target logit pushed down by 1000)

The split is at the GIVEN (possibly noisy) label y. Ported from megvii-research/mdistiller @
a08d46f, ``mdistiller/distillers/DKD.py``: ``dkd_loss`` :8-32 (gt mask :35-38, cat_mask
:47-51, the 1000.0 masking :21-26, ``size_average=False`` / B :17-19, :28-30), the CE weight
and warmup ``min(kwargs["epoch"] / self.warmup, 1.0)`` :71-72; their trainer passes epoch 1
in the first epoch (``mdistiller/engine/trainer.py:78``, ``:164``), the engine's ctx.epoch is
0 there, hence ``ctx.epoch + 1``. warmup 0 means no warmup (theirs would divide by zero).

Several teachers: one DKD term per teacher, each scaled by ``teacher_share(protocol, M)``
(suite 1 / M, authors 1). Defaults: ``mdistiller/engine/cfg.py:161-167`` (CE 1, alpha 1,
beta 8, T 4, warmup 20), unchanged by ``configs/cifar100/dkd/res32x4_res8x4.yaml``; the
authors set beta per pair (6 for vgg13/vgg8, wrn40_2/wrn_16_2 ...; 2 for res56/res20,
res110/res32).
"""

import torch
import torch.nn.functional as F

from .base import register_method
from .teacher_sum import TeacherSumKD


def dkd_loss(s, t, labels, alpha, beta, T):
    """Their ``dkd_loss`` (DKD.py:8-32) for one teacher: a batch mean."""
    gt = F.one_hot(labels, s.shape[-1]).to(s.dtype)  # _get_gt_mask; other mask = 1 - gt
    ps, pt = F.softmax(s / T, dim=1), F.softmax(t / T, dim=1)
    bs = torch.stack([(ps * gt).sum(1), (ps * (1 - gt)).sum(1)], dim=1)  # cat_mask
    bt = torch.stack([(pt * gt).sum(1), (pt * (1 - gt)).sum(1)], dim=1)
    tckd = F.kl_div(torch.log(bs), bt, reduction="sum") * T**2 / len(labels)
    pt2 = F.softmax(t / T - 1000.0 * gt, dim=1)
    log_ps2 = F.log_softmax(s / T - 1000.0 * gt, dim=1)
    nckd = F.kl_div(log_ps2, pt2, reduction="sum") * T**2 / len(labels)
    return alpha * tckd + beta * nckd


@register_method
class DKD(TeacherSumKD):
    name = "dkd"

    def factor(self) -> float:
        """The warm-up: ctx.epoch is 0 in the first epoch, theirs 1."""
        warmup = self.hparams["warmup"]
        return min((self.ctx.epoch + 1) / warmup, 1.0) if warmup > 0 else 1.0

    def teacher_term(self, s, t, y):
        h = self.hparams
        return dkd_loss(s, t, y, h["alpha"], h["beta"], h["T"])
