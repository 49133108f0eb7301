"""``almkd_v1``: ALM-KD as the seed paper's own code ran it (arXiv 2202.03250 v1, January
2022; durgas16/AMAL @ 642fd9b: getLambda/LearnLambdaMeta.py ``get_lambdas``,
getLambda/LearnMultiLambdaMeta.py, train_distill_learn_lam.py).

The same last-layer refresh as ``almkd`` / ``amal`` with v1's settings (``catalog.py``): meta
objective 0.75 x validation CE + 0.25 x the chunk's training CE, 10 steps of 2000, the whole
validation set once per refresh, the live student in train mode; uniform random initial
weights clamped to [1e-7, 1 - 1e-7]; several teachers: CE weight 1 - max_m KD_m after every
step (``mixing.V1Mixing``). What v1's multi-teacher code did beyond that rule (a
label-smoothed teacher objective, 5 steps of 100) is not reproduced: see
docs/reproduction-notes.md.
"""

from .alm_base import AdaptiveMixing
from .base import register_method
from .mixing import V1Mixing


@register_method
class ALMKDV1(AdaptiveMixing):
    name = "almkd_v1"
    mixing = V1Mixing
