"""``tfkd``: teacher-free KD, the manually designed (regularisation) form Tf-KD_reg (Yuan, Tay,
Li, Wang, Feng, "Revisiting Knowledge Distillation via Label Smoothing Regularization", CVPR
2020; yuanli2333/Teacher-free-Knowledge-Distillation @ d000ab3, my_loss_function.py:33-51,
``loss_kd_regularization``). No real teacher: a virtual one built from the given label.

    u_ik = a if k = y_i else (1 - a) / (C - 1)          (a = correct_prob)
    v_i  = softmax(u_i / T)                             (softmax of the PROBABILITIES at T)
    KL   = (1 / (B C)) sum_i sum_k v_ik (log v_ik - log softmax(s_i)_k)
    loss = (1 - kd_weight) * CE(s, y) + kd_weight * multiplier * KL

exactly their formula: the student at temperature 1 (``F.log_softmax(outputs)``, no / T),
no T^2, ``nn.KLDivLoss()``'s default reduction 'mean' (over all B x C elements, torch 1.2 of
their requirements.txt; not 'batchmean'), times ``params.multiplier`` (:47); CE a batch
mean (:40); correct_prob 0.99 hard-coded there (:39). Their T = 20 makes v nearly uniform
(about 0.0105 on the label for C = 100): a label-smoothing-like pull towards uniform.
Defaults: their CIFAR-100 ResNet18 file experiments/base_experiments/base_resnet18/
params.json:6-7,11 (reg_temperature 20, reg_alpha 0.1, multiplier 100), the README's
ResNet18 Tf-KD_reg command (README.md:172).
"""

import torch
import torch.nn.functional as F

from .base import Method, register_method


@register_method
class TFKD(Method):
    name = "tfkd"

    def loss(self, out):
        h = self.hparams
        s, y = out.logits, out.labels
        C, a = s.shape[1], float(h["correct_prob"])
        u = torch.full_like(s, (1.0 - a) / (C - 1)).scatter(1, y[:, None], a)
        v = F.softmax(u / h["T"], dim=1)
        # their nn.KLDivLoss() 'mean': the sum over all B x C elements / (B * C)
        kl = F.kl_div(F.log_softmax(s, dim=1), v, reduction="sum") / s.numel()
        alpha = float(h["kd_weight"])
        return (1.0 - alpha) * F.cross_entropy(s, y) + alpha * float(h["multiplier"]) * kl
