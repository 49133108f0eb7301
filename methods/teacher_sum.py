"""The shared form of the rules whose one-teacher loss is a label term plus a teacher term
with its own weight (``wsld``, ``dkd``, ``lskd``):

    loss = ce_weight * CE(s, y) + factor * share * sum_m term(s, t_m, y)

``term`` is the rule's batch-mean teacher term for one teacher (teacher logits detached),
``factor`` its weight (``kd_weight``; dkd: its warm-up), ``share`` the protocol's convention
for several teachers (``benchmark.spec.protocol.teacher_share``: suite 1 / M, the rule's
total weight kept; authors 1, each teacher weighted like a single one).
"""

import torch
import torch.nn.functional as F

from benchmark.spec.protocol import teacher_share

from .base import Method


class TeacherSumKD(Method):
    def setup(self, ctx):
        super().setup(ctx)
        self.ctx = ctx
        self.share = teacher_share(ctx.protocol, ctx.n_teachers)

    def teacher_term(self, s: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One teacher's batch-mean term."""
        raise NotImplementedError

    def factor(self) -> float:
        return float(self.hparams["kd_weight"])

    def loss(self, out):
        s, y = out.logits, out.labels
        kd = sum(self.teacher_term(s, t.detach(), y) for t in out.teacher_logits)
        return self.hparams["ce_weight"] * F.cross_entropy(s, y) + self.factor() * self.share * kd
