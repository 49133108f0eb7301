"""``ce_union``: cross-entropy on the noisy training set plus the meta split with its clean
labels, no teacher; a clean example's loss weighted by ``clean_weight`` (1: the plain union).

Per batch: (1/B) sum_i w_i CE_i, w_i = clean_weight for a meta example, else 1.
"""

import torch

from .base import Method, register_method
from .losses import ce_per_instance


def clean_mask(ctx, index: torch.Tensor) -> torch.Tensor:
    """Which examples of a batch (positions in the run's training set) carry a clean label."""
    return ctx.extras["data"].train_is_clean[index]


@register_method
class CEUnion(Method):
    name = "ce_union"
    train_set = "union"

    def setup(self, ctx):
        super().setup(ctx)
        self.ctx = ctx

    def loss(self, out):
        clean = clean_mask(self.ctx, out.index)
        w = torch.where(clean, float(self.hparams["clean_weight"]), 1.0)
        return (w * ce_per_instance(out.logits.float(), out.labels)).mean()
