"""``almkd``: the authors' released refresh (durgas16/AMAL @ 6c4764b) with convex weights,
the suite's variant of ALM-KD: an instance-specific convex combination (1 - a_i) * CE +
a_i * KD learned by the last-layer look-ahead refresh; several teachers mix on the simplex
(``mixing.ConvexMixing``). Initial KD share 0.9 (split among teachers). It is not the seed
paper's own code: that is ``almkd_v1``."""

from .alm_base import AdaptiveMixing
from .base import register_method
from .mixing import ConvexMixing


@register_method
class ALMKD(AdaptiveMixing):
    name = "almkd"
    mixing = ConvexMixing
