"""``fixed_alpha``: (1 - a) * CE + a * KD for one configured a (one run per a in a grid).

Several teachers follow the protocol's convention, as ``kd`` (suite: a / M each; authors: a
each). The tables pick, per seed, the a with the best clean-validation accuracy.
"""

from .base import register_method
from .kd import KD


@register_method
class FixedAlpha(KD):
    name = "fixed_alpha"

    def kd_share(self) -> float:
        return float(self.hparams["alpha"])  # in [0, 1], never null: checked when built
