"""``sce_kd``: kd with its CE label term replaced by symmetric cross-entropy (SCE).

Per instance: (1 - a) * SCE + a * KD_m summed over the teachers as ``kd`` weighs them
(``kd_weights``: suite a / M each, authors a each; methods/gce_kd.RobustLabelKD), with

    SCE = alpha * CE + beta * RCE,  p = softmax(student logits), y the given (noisy) label,
    CE  = -log(clip(p_y, 1e-7, 1))          (no gradient where p_y < 1e-7, as tf.clip),
    RCE = -sum_k p_k log(clip(onehot_y, 1e-4, 1))_k = -A * sum_{k != y} p_k,  A = log 0,

p unclipped and not renormalised in RCE, and the batch mean of each term. Source: Wang et
al., "Symmetric Cross Entropy for Robust Learning with Noisy Labels", ICCV 2019;
YisenWang/symmetric_cross_entropy_for_noisy_labels @ ec778df, loss.py:9-21 (y_pred the
softmax output: resnet.py:74 for CIFAR-100). Their clip at 1e-4 with the natural log gives
A = ln(1e-4) = -9.2103 (the default here); the paper writes A = -4 (set A = -4 for it).
Defaults: alpha 6.0, beta 0.1, their CIFAR-100 run (train_models.py:222-224 @ ec778df, a
commented-out block; the active one, :215-217, is CIFAR-10's alpha 0.1, beta 1.0);
a (kd_weight) 0.9 and T 4 as ``kd``. At these defaults the label term is 0.6 CE + 0.092
(1 - p_y), six times kd's 0.1 CE.
"""

import math

import torch
import torch.nn.functional as F

from .base import register_method
from .gce_kd import RobustLabelKD

P_CLIP = 1e-7  # loss.py:17, tf.clip_by_value(y_pred_1, 1e-7, 1.0)
LABEL_CLIP = 1e-4  # loss.py:18, tf.clip_by_value(y_true_2, 1e-4, 1.0): A = ln(1e-4)
A_CODE = math.log(LABEL_CLIP)


@register_method
class SCEKD(RobustLabelKD):
    name = "sce_kd"

    def label_loss(self, logits, labels):
        p = F.softmax(logits, dim=-1)
        ce = -torch.log(p.clamp(P_CLIP, 1.0).gather(1, labels[:, None])[:, 0])
        log_label = torch.full_like(p, float(self.hparams["A"])).scatter(1, labels[:, None], 0.0)
        rce = -(p * log_label).sum(dim=-1)
        return float(self.hparams["alpha"]) * ce + float(self.hparams["beta"]) * rce
