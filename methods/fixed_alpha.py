"""``fixed_alpha``: (1 - a) * CE + a * KD for one configured a (one run per a in a grid).

Several teachers follow the protocol's convention, as ``kd`` (suite: a / M each; authors: a
each). The tables pick, per seed, the a with the best clean-validation accuracy.
"""

from benchmark.errors import UserError

from .base import register_method
from .hparams import HPARAM_DEFAULTS
from .kd import KD


@register_method
class FixedAlpha(KD):
    name = "fixed_alpha"
    hparam_defaults = HPARAM_DEFAULTS["fixed_alpha"]

    def kd_share(self) -> float:
        a = self.hparams["alpha"]
        if a is None or not 0.0 <= float(a) <= 1.0:
            raise UserError(f"fixed_alpha needs hyper-parameter alpha in [0, 1], got {a!r}")
        return float(a)
