"""``kd``: 0.1 * CE + 0.9 * KD with T = 4 (the ALM-KD authors' and RepDistiller's default).

Several teachers follow the protocol's one convention (``benchmark.spec.protocol.kd_weights``):
``suite`` shares the 0.9 (each teacher 0.9 / M), ``authors`` gives each teacher 0.9.
"""

import torch

from benchmark.spec.protocol import kd_weights

from .base import Method, register_method
from .losses import mixed_loss, term_losses


@register_method
class KD(Method):
    name = "kd"

    def kd_share(self) -> float:
        return float(self.hparams["kd_weight"])

    def setup(self, ctx):
        super().setup(ctx)
        m = ctx.n_teachers
        ce, each = kd_weights(ctx.protocol, self.kd_share(), m)
        self.weights = torch.tensor([ce] + [each] * m, device=ctx.device)

    def loss(self, out):
        terms = term_losses(out.logits, out.labels, out.teacher_logits, self.hparams["T"])
        return mixed_loss(self.weights.expand(len(out.labels), -1), terms)
