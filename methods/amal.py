"""``amal``: the authors' released version (AMAL, AAAI 2023; durgas16/AMAL): independent
per-instance weights for CE and each KD term, clamped to [1e-7, 2 - 1e-7], initial CE 0.1
and KD by the protocol's convention (authors: 0.9 each, as released; suite: 0.9 / M each, the
same total as ``kd``), refreshed like ``almkd``."""

from .alm_base import AdaptiveMixing
from .base import register_method
from .mixing import ClampedMixing


@register_method
class AMAL(AdaptiveMixing):
    name = "amal"
    mixing = ClampedMixing
