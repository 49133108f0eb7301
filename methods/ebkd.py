"""``ebkd``: entropy-based multi-teacher KD (Kwon, Na, Lee, Kim, "Adaptive Knowledge
Distillation Based on Entropy", ICASSP 2020), as the CA-MKD authors run it as a baseline.

    loss = ce_weight * CE(s, y) + kd_weight * M * share * (1/B) sum_i sum_m w_mi KD_mi
    H_mi = -sum_c p_mic log p_mic, p_mi = softmax(t_mi)   (entropy at T = 1, per instance)
    w_mi = (1 - H_mi / sum_k H_ki) / (M - 1)               (sum_m w_mi = 1)
    KD_mi = T^2 KL(softmax(t_mi / T) || softmax(s_i / T))

A more confident (lower-entropy) teacher gets more weight; the label plays no part. Kwon et
al. released no code; ported from Rorozhl/CA-MKD @ c2f39a9, ``helper/loops.py:204-219``
(entropy :208-211, ``1.0 - entropy / entropy_sum`` :213-215, ``sum() / (bsz * teacher_num)``
:219; per-instance T^2 KL, ``distiller_zoo/KD.py:16-17``). Their weights sum to M - 1 and the
sum is divided by M: their KD term is (M - 1) / M of this one (docs/reproduction-notes.md,
Z-ebkd). The entropy uses log_softmax (their log(softmax) is NaN where a probability
underflows to 0); if every teacher's entropy is 0 the weights are uniform (theirs: 0 / 0).

Several teachers and the rest: as ``camkd`` (methods/camkd.py). Defaults: their CIFAR-100
command (``scripts/run.sh:12``: -r 1 -a 1 -b 0), ``--kd_T`` 4 (``train_student.py:80``).
"""

import torch
import torch.nn.functional as F

from .base import register_method
from .camkd import TeacherWeightedKD


@register_method
class EBKD(TeacherWeightedKD):
    name = "ebkd"

    def teacher_weights(self, out, teachers):
        m = len(teachers)
        h = -(F.softmax(teachers, -1) * F.log_softmax(teachers, -1)).sum(-1)  # [M, B]
        total = h.sum(0)
        ratio = torch.where(total > 0, h / total.clamp_min(torch.finfo(h.dtype).tiny), 1.0 / m)
        return (1.0 - ratio) / (m - 1)
