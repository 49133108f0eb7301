"""``fixed_alpha``: (1 - a) * CE + a * KD for one configured a (one run per a in a grid).

Several teachers share a equally (each KD term weighs a / M). The tables pick, per seed, the
a with the best clean-validation accuracy.
"""

import torch

from benchmark.errors import UserError

from .base import Method, register_method
from .hparams import HPARAM_DEFAULTS
from .losses import mixed_loss, term_losses


@register_method
class FixedAlpha(Method):
    name = "fixed_alpha"
    uses_teachers = True
    hparam_defaults = HPARAM_DEFAULTS["fixed_alpha"]

    def setup(self, ctx):
        super().setup(ctx)
        a = self.hparams["alpha"]
        if a is None or not 0.0 <= float(a) <= 1.0:
            raise UserError(f"fixed_alpha needs hyper-parameter alpha in [0, 1], got {a!r}")
        a, m = float(a), ctx.n_teachers
        self.weights = torch.tensor([1.0 - a] + [a / m] * m, device=ctx.device)

    def loss(self, out):
        terms = term_losses(out.logits, out.labels, out.teacher_logits, self.hparams["T"])
        return mixed_loss(self.weights.expand(len(out.labels), -1), terms)
