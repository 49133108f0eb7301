"""``l2rw``: learning to reweight examples (Ren, Zeng, Yang and Urtasun, ICML 2018), ported
from the authors' code, uber-research/learning-to-reweight-examples @ 0b616c9.

Per training step, each example i of the batch gets a perturbation eps_i = 0 of its weight
(``models/reweight_model.py:38-40``: ``ex_wts_a = zeros``); the weight is the negative
gradient of the clean meta loss with respect to eps, clamped at 0 and normalised to sum 1
(zero if all are zero: ``:91-94``), then the training loss is sum_i w_i l_i (their weighted
cost ``reduce_sum(xent * ex_wts)``, ``models/assigned_weights_resnet_model.py:164``). With
theta'(eps) = theta - lr * grad (1/B) sum_i eps_i l_i(theta), theta' = theta at eps = 0, so

    dL_meta(theta')/deps_i = -(lr / B) <grad l_i(theta), grad L_meta(theta)>,

exactly: one gradient of the meta loss and one forward-mode JVP of the per-example losses
(methods/lookahead.py), the authors' non-legacy path (``reweight_model.py:50-57``: the meta
gradient at the current weights, contracted with d grad_a / d eps). The positive factor
lr / B cancels in the normalisation, as their step size 1 does. L_meta: mean CE on a clean
meta batch plus, as in their meta cost (``assigned_weights_resnet_model.py:166``, ``cost +=
self._decay()``), the L2 term whose gradient is ``meta_decay`` x theta (null: the run's
weight decay, on every parameter the suite's optimizer decays). The loss reweighted:
``MetaReweight`` (kd's per-example mix with teachers, CE without).
"""

from __future__ import annotations

import torch

from .base import register_method
from .lookahead import MetaReweight, lookahead_direction, per_instance_jvp


def l2rw_hypergrad(model, stats_free, x, per_example, lr, xv, yv, *, decay,
                   batch_stats=None):
    """[B] dL_meta(theta'(eps))/deps at eps = 0 (module doc). ``per_example``: logits -> [B]
    losses; ``batch_stats``: the stats-free copy for L_meta on the clean batch's BatchNorm
    statistics (None: running statistics)."""
    direction = lookahead_direction(model, None, lr, xv, yv, batch_stats)
    if decay:
        direction = [d + decay * p.detach()
                     for d, p in zip(direction, model.parameters(), strict=True)]
    _, dl = per_instance_jvp(model, stats_free, x, per_example, direction)
    return -(lr / dl.shape[-1]) * dl


def l2rw_weights(hypergrad: torch.Tensor) -> torch.Tensor:
    """max(-g, 0) normalised to sum 1; all zero stays zero (``reweight_model.py:91-94``)."""
    w = torch.clamp(-hypergrad, min=0)
    total = w.sum()
    return w / (total + (total == 0).to(w.dtype))


@register_method
class L2RW(MetaReweight):
    name = "l2rw"

    def setup(self, ctx):
        super().setup(ctx)
        decay = self.hparams["meta_decay"]
        self.decay = float(ctx.extras["cfg"].weight_decay if decay is None else decay)

    def weights(self, out):
        """[B] this batch's example weights (sum 1, or all 0)."""
        xv, yv = self.meta_batch()
        hyper = l2rw_hypergrad(
            self.ctx.extras["model"], self.stats_free, self.inputs(out),
            lambda logits: self.per_example(logits, out.labels, out.teacher_logits),
            self.ctx.lr, xv, yv, decay=self.decay, batch_stats=self.val_stats())
        return l2rw_weights(hyper).detach()

    def loss(self, out):
        w = self.weights(out)
        return (w * self.per_example(out.logits, out.labels, out.teacher_logits)).sum()
