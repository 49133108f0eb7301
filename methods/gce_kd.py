"""``gce_kd``: kd with its CE label term replaced by generalized cross-entropy (GCE).

Per instance: (1 - a) * GCE + a * KD_m summed over the teachers as ``kd`` weighs them
(``kd_weights``: suite a / M each, authors a each), with

    GCE = (1 - p_y^q) / q,   p = softmax(student logits), y the given (noisy) label,
    KD_m = T^2 KL(softmax(t_m / T) || softmax(s / T))   (methods/losses.kd_per_instance),

and the batch mean. d GCE / d logits = p_y^q * d CE / d logits: an instance whose given
label the student finds unlikely pulls less; the teacher's weight a stays constant.

Source: Zhang and Sabuncu, "Generalized Cross Entropy Loss for Training Deep Neural Networks
with Noisy Labels", NeurIPS 2018, eq. (6) (L_q). The authors released no code that we could
find (the GitHub implementations, e.g. AlanChou/Truncated-Loss, are unofficial); this follows
the paper, whose CIFAR experiments use q = 0.7 (also the SCE authors' GCE baseline,
YisenWang/symmetric_cross_entropy_for_noisy_labels @ ec778df, loss.py:33-39, batch mean).
The truncated variant (L_trunc with k = 0.5 and its pruning steps) is not ported.
p_y^q is computed as exp(q * log_softmax_y): the same value, and a finite gradient where
p_y underflows. Defaults: q 0.7, a (kd_weight) 0.9 and T 4 as ``kd``.

``RobustLabelKD`` is the shared form of the robust-label rules (``sce_kd`` subclasses it).
"""

import torch
import torch.nn.functional as F

from benchmark.spec.protocol import kd_weights

from .base import Method, register_method
from .losses import kd_per_instance


class RobustLabelKD(Method):
    """(1 - a) * label_loss + a * KD per teacher as ``kd`` does it; subclasses give the
    per-instance ``label_loss``."""

    def setup(self, ctx):
        super().setup(ctx)
        self.label_w, self.teacher_w = kd_weights(ctx.protocol,
                                                  float(self.hparams["kd_weight"]),
                                                  ctx.n_teachers)

    def label_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, out):
        label = self.label_loss(out.logits, out.labels).mean()
        kd = kd_per_instance(out.logits, out.teacher_logits, self.hparams["T"])  # [M, B]
        return self.label_w * label + self.teacher_w * kd.mean(dim=1).sum()


@register_method
class GCEKD(RobustLabelKD):
    name = "gce_kd"

    def label_loss(self, logits, labels):
        q = float(self.hparams["q"])
        log_py = F.log_softmax(logits, dim=-1).gather(1, labels[:, None])[:, 0]
        return (1.0 - torch.exp(q * log_py)) / q
