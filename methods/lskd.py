"""``lskd``: KD with logit standardisation (Sun, Ren, Li, Wang, Cao, "Logit Standardization in
Knowledge Distillation", CVPR 2024).

    loss = ce_weight * CE(s, y) + kd_weight * share * sum_m KD(z(s), z(t_m))
    z(v) = (v - mean(v)) / (1e-7 + std(v))   per instance over the classes, std unbiased (C - 1)
    KD   = T^2 (1/B) sum_i KL(softmax(z(t_i) / T) || softmax(z(s_i) / T))

CE on the raw student logits; the z-score of the student is differentiated through (mean and
std not detached). The teacher's trust does not depend on the label. Ported from
sunshangquan/logit-standardization-KD @ f6e5aa5, ``mdistiller/distillers/KD.py``:
``normalize`` :7-10 (``Tensor.std`` default: unbiased; eps added to the std), ``kd_loss``
:12-19 (KL summed over classes, batch mean, T^2), CE and KD weights :38-41; the trainer sums
the two (``mdistiller/engine/trainer.py:166``).

Several teachers: one KD term per teacher, each scaled by ``teacher_share(protocol, M)`` (suite
1 / M, authors 1).

Defaults: their CIFAR-100 KD+ls setting, ``--logit-stand --base-temp 2 --kd-weight 9``
(README.md:57; ``tools/train.py:102-114`` set T and the KD weight), CE weight 0.1
(``mdistiller/engine/cfg.py:61-65``, not overridden by ``configs/cifar100/kd/*.yaml``); the
logs show per-pair choices (e.g. T 3 for resnet32x4/wrn_16_2, ``logs/KD/``).
"""

import torch.nn.functional as F

from .base import register_method
from .teacher_sum import TeacherSumKD


def standardize(logits):
    """Their ``normalize`` (KD.py:7-10)."""
    mean = logits.mean(dim=-1, keepdim=True)
    return (logits - mean) / (1e-7 + logits.std(dim=-1, keepdim=True))


def ls_kd_loss(s, t, T):
    """Their ``kd_loss`` with ``logit_stand`` (KD.py:12-19) for one teacher: a batch mean."""
    log_p = F.log_softmax(standardize(s) / T, dim=1)
    q = F.softmax(standardize(t) / T, dim=1)
    return F.kl_div(log_p, q, reduction="none").sum(1).mean() * T**2


@register_method
class LSKD(TeacherSumKD):
    name = "lskd"

    def teacher_term(self, s, t, y):
        return ls_kd_loss(s, t, self.hparams["T"])
