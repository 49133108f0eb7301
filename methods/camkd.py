"""``camkd``: Confidence-Aware Multi-teacher KD, its logit part (Zhang, Chen, Wang, ICASSP 2022).

    loss = ce_weight * CE(s, y) + kd_weight * M * share * (1/B) sum_i sum_m w_mi KD_mi
    w_mi = (1 - softmax_m(CE(t_m,i, y_i))) / (M - 1)      (per instance; sum_m w_mi = 1)
    KD_mi = T^2 KL(softmax(t_mi / T) || softmax(s_i / T))

A teacher whose cross-entropy on the GIVEN (possibly noisy) label is lower gets more weight.
Ported from Rorozhl/CA-MKD @ c2f39a9, ``helper/loops.py:220-229`` (teacher CE at T = 1 on the
target, ``reduction='none'``, :221-223; ``attention = (1 - F.softmax(loss_t, dim=0)) /
(teacher_num - 1)`` :224; per-instance ``DistillKL(..., is_ca=True)``, T^2 KL summed over
classes, ``distiller_zoo/KD.py:16-17``); teacher logits under ``no_grad`` (:189), so the
weights are constants. Only the logit part: their intermediate-feature term (``--distill
inter``, ``distiller_zoo/CAMKD.py``, weight -b 50) is out of scope. Differences (their extra
/ M of :229, the last partial batch skipped at :178) in docs/reproduction-notes.md (Z-camkd).

Several teachers: the per-teacher rules' convention (benchmark/spec/protocol.py): the KD term
is scaled by M * teacher_share (suite 1, authors M); >= 2 teachers (their train_student.py:135
-138 falls back to plain averaging with one). Defaults: their CIFAR-100 command
(``scripts/run.sh:16``: -r 1 -a 1) and ``--kd_T`` 4 (``train_student.py:80``).
"""

import torch
import torch.nn.functional as F

from benchmark.core.errors import UserError
from benchmark.spec.protocol import teacher_share

from .base import Method, register_method
from .losses import ce_per_instance, kd_per_instance


class TeacherWeightedKD(Method):
    """ce_weight CE + kd_weight M share (1/B) sum_i sum_m w_mi KD_mi, the weights from
    ``teacher_weights`` (constants, sum_m w_mi = 1); shared by camkd, ebkd and aekd."""

    def setup(self, ctx):
        super().setup(ctx)
        m = ctx.n_teachers
        if m < 2:
            raise UserError(f"method {self.name!r} weights several teachers and needs at least "
                            f"2, got {m} (with one teacher it is kd)")
        self.scale = m * teacher_share(ctx.protocol, m)

    def teacher_weights(self, out, teachers: torch.Tensor) -> torch.Tensor:
        """[M, B] or [M, 1]: each teacher's weight (per instance or per batch)."""
        raise NotImplementedError

    def loss(self, out):
        h = self.hparams
        teachers = out.teacher_logits.detach()
        w = self.teacher_weights(out, teachers).detach()
        kd = kd_per_instance(out.logits, teachers, h["T"])  # [M, B]
        return (h["ce_weight"] * F.cross_entropy(out.logits, out.labels)
                + h["kd_weight"] * self.scale * (w * kd).sum(0).mean())


@register_method
class CAMKD(TeacherWeightedKD):
    name = "camkd"

    def teacher_weights(self, out, teachers):
        ce = torch.stack([ce_per_instance(t, out.labels) for t in teachers])  # [M, B]
        return (1.0 - F.softmax(ce, dim=0)) / (len(teachers) - 1)
