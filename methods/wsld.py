"""``wsld``: Weighted Soft Label Distillation (Zhou, Song, Chen, Zhou, Wang, Yuan, Zhang,
"Rethinking Soft Labels for Knowledge Distillation: A Bias-Variance Tradeoff Perspective",
ICLR 2021).

    loss = ce_weight * CE(s, y) + kd_weight * share * sum_m WSL(s, t_m, y)
    WSL  = T^2 * (1/B) sum_i w_i * H_i,   H_i = -sum_c softmax(t_i / T)_c log softmax(s_i / T)_c
    w_i  = 1 - exp(-max(CE(s_i, y_i) / (CE(t_i, y_i) + 1e-7), 0))

w_i is computed at temperature 1 from the GIVEN (possibly noisy) label y on detached logits (no
gradient flows through it); H_i is the soft-target cross-entropy (not the KL: it differs from
the suite's ``kd_per_instance`` by w_i T^2 times the teacher's entropy, a constant of the
student, so the gradient is the KL's). Ported from bellymonster/Weighted-Soft-Label-Distillation
@ 67820dd, ``knowledge_distiller.py``: soft term :58-63, detached weights :65-71 (one-hot of the
label), ratio with eps 1e-7 and max(., 0) :73-75, 1 - exp(-ratio) :76, T^2 and batch mean :79,
``hard_loss + alpha * soft_loss`` :81-83 (CE batch mean, no label smoothing:
``imagenet_train_cfg.py:22``). No masking.

Several teachers: one WSL term per teacher, each with its own weights w_im from that teacher's
CE, each scaled by ``teacher_share(protocol, M)`` (suite 1 / M, authors 1).

Defaults: the paper's CIFAR-100 setting, T = 4 and alpha (kd_weight) = 2.25, CE weight 1; the
authors' repository holds only their ImageNet setting (T = 2, alpha = 2.5,
``knowledge_distiller.py:40-41``); the CIFAR-100 values as in yzd-v/cls_KD @ e21ad37
``mmcls/models/dis_losses/wsld.py`` (temp=4.0, alpha=2.25, num_classes=100).
"""

import torch
import torch.nn.functional as F

from .base import register_method
from .teacher_sum import TeacherSumKD


def wsl_loss(s, t, labels, T):
    """Their ``T^2 * mean(focal_weight * softmax_loss)`` (knowledge_distiller.py:58-79) for one
    teacher: a batch mean."""
    soft = -(F.softmax(t / T, dim=1) * F.log_softmax(s / T, dim=1)).sum(1)
    ce_s = F.cross_entropy(s.detach(), labels, reduction="none")
    ce_t = F.cross_entropy(t.detach(), labels, reduction="none")
    w = 1 - torch.exp(-(ce_s / (ce_t + 1e-7)).clamp_min(0))
    return T**2 * (w * soft).mean()


@register_method
class WSLD(TeacherSumKD):
    name = "wsld"

    def teacher_term(self, s, t, y):
        return wsl_loss(s, t, y, self.hparams["T"])
