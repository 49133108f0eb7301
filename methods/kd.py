"""``kd``: 0.1 * CE + 0.9 * KD with T = 4 (the ALM-KD authors' and RepDistiller's default).

With several teachers the 0.9 is shared equally: each teacher's KD term weighs 0.9 / M.
"""

import torch

from .base import Method, register_method
from .hparams import HPARAM_DEFAULTS
from .losses import mixed_loss, term_losses


@register_method
class KD(Method):
    name = "kd"
    uses_teachers = True
    hparam_defaults = HPARAM_DEFAULTS["kd"]

    def kd_share(self) -> float:
        return float(self.hparams["kd_weight"])

    def setup(self, ctx):
        super().setup(ctx)
        a, m = self.kd_share(), ctx.n_teachers
        self.weights = torch.tensor([1.0 - a] + [a / m] * m, device=ctx.device)

    def loss(self, out):
        terms = term_losses(out.logits, out.labels, out.teacher_logits, self.hparams["T"])
        return mixed_loss(self.weights.expand(len(out.labels), -1), terms)
