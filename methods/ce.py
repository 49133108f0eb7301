"""``ce``: cross-entropy on the given (noisy) labels, no teacher. The baseline every
distillation method must beat."""

import torch.nn.functional as F

from .base import Method, register_method


@register_method
class CE(Method):
    name = "ce"

    def loss(self, out):
        return F.cross_entropy(out.logits.float(), out.labels)
