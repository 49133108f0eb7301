"""``almkd``: ALM-KD as in the seed paper (arXiv 2202.03250 v1), an instance-specific convex
combination (1 - a_i) * CE + a_i * KD learned by the last-layer look-ahead refresh; several
teachers mix on the simplex (see ``mixing.ConvexMixing``). Initial KD share 0.9."""

from .alm_base import AdaptiveMixing
from .base import register_method
from .mixing import ConvexMixing


@register_method
class ALMKD(AdaptiveMixing):
    name = "almkd"
    mixing = ConvexMixing
