"""``mwnet``: Meta-Weight-Net (Shu, Xie, Yi, Zhao, Zhou, Xu and Meng, NeurIPS 2019), ported
from the authors' code, xjtushujun/meta-weight-net @ 3f1800f, ``MW-Net.py`` (the README's
"stable version"; their first script, ``train_WRN-28-10_Meta_PGC.py``, is the variant
``meta_optimizer: sgd``, ``normalise: sum``).

A weight net V(l; phi): 1 -> ``hidden`` (100) -> 1, ReLU, sigmoid (``resnet.py:275-289``,
``VNet(1, 100, 1)``, ``MW-Net.py:264``; PyTorch's default Linear initialisation, seeded from
the run's seed) maps an example's loss (detached: ``vnet(cost_v.data)``, ``:206``) to its
weight. Per training step (``MW-Net.py:199-241``):

1. w_i = V(l_i; phi), the look-ahead theta'(phi) = theta - lr * grad (1/B) sum_i w_i l_i
   (``:207-211``: plain SGD at the current lr, ``meta_lr`` there), and the weight net's step
   on grad_phi L_meta(theta'(phi)) (``:220-227``) with its own optimizer (Adam, lr 1e-3,
   weight decay 1e-4: ``:274-275``). Exactly: grad_phi = sum_i dw_i/dphi * dL_meta/dw_i with
   dL_meta/dw_i = -(lr / B) <grad l_i(theta), grad L_meta(theta')> (methods/lookahead.py:
   the same JVP as almkd_full), the authors' double backward without its second graph.
2. The real loss (1/B) sum_i V(l_i; phi_new) l_i from the updated net, no gradient to phi
   (``:229-237``).

``normalise: sum`` divides the weights by their batch sum in both places, the sum kept when
it is 0 (``train_WRN-28-10_Meta_PGC.py:133-140, 172-179``). The loss reweighted:
``MetaReweight`` (kd's per-example mix with teachers, CE without).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from benchmark.core.seeds import derive_seed

from .base import register_method
from .lookahead import MetaReweight, exact_hypergrad


def weight_net(hidden: int, seed: int, dtype, device) -> nn.Module:
    """V: 1 -> hidden -> 1 with ReLU and a sigmoid, initialised from ``seed`` without touching
    the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid())
    return net.to(device=device, dtype=dtype)


def normalised(v: torch.Tensor, how: str) -> torch.Tensor:
    """[B] weights as the batch mean uses them: v (``none``), or B v / sum v (``sum``: their
    sum_i l_i v_i / sum v; v itself summed when the sum is 0)."""
    if how == "none":
        return v
    total = v.sum()
    return v * len(v) / torch.where(total != 0, total, torch.ones_like(total))


def mwnet_hypergrad(model, stats_free, net, x, y, teacher_logits, coef, cost, lr, xv, yv, T, *,
                    normalise, val_bn, logits=None):
    """grad_phi L_meta(theta'(phi)) for the weight net's parameters (module doc, step 1).
    ``cost``: [B] the detached per-example losses; ``coef``: [K] the loss's mix of the terms."""
    params = list(net.parameters())
    with torch.enable_grad():
        w = normalised(net(cost[:, None]).squeeze(1), normalise)
        g = exact_hypergrad(model, x, y, teacher_logits, w.detach()[:, None] * coef, lr, xv, yv,
                            T, mode="jvp", stats_free=stats_free, logits=logits, val_bn=val_bn)
        return torch.autograd.grad(w, params, grad_outputs=g @ coef)


@register_method
class MWNet(MetaReweight):
    name = "mwnet"

    def setup(self, ctx):
        super().setup(ctx)
        hp = self.hparams
        dtype = next(ctx.extras["model"].parameters()).dtype
        self.net = weight_net(hp["hidden"], derive_seed(ctx.seed, "mwnet_init"), dtype,
                              ctx.device)
        if hp["meta_optimizer"] == "adam":
            self.opt = torch.optim.Adam(self.net.parameters(), lr=hp["meta_lr"],
                                        weight_decay=hp["meta_weight_decay"])
        else:
            self.opt = torch.optim.SGD(self.net.parameters(), lr=hp["meta_lr"], momentum=0.9,
                                       nesterov=True, weight_decay=hp["meta_weight_decay"])

    def loss(self, out):
        hp = self.hparams
        mix = self.per_example(out.logits, out.labels, out.teacher_logits)
        cost = mix.detach()
        xv, yv = self.meta_batch()
        grads = mwnet_hypergrad(self.ctx.extras["model"], self.stats_free, self.net,
                                self.inputs(out), out.labels, out.teacher_logits, self.coef,
                                cost, self.ctx.lr, xv, yv, hp["T"], normalise=hp["normalise"],
                                logits=out.logits, val_bn=hp["meta_bn"])
        self.opt.zero_grad(set_to_none=True)
        for p, g in zip(self.net.parameters(), grads, strict=True):
            p.grad = g
        self.opt.step()
        with torch.no_grad():
            w = normalised(self.net(cost[:, None]).squeeze(1), hp["normalise"])
        return (w * mix).mean()

    def state_dict(self):
        return {"net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
                "optimizer": copy.deepcopy(self.opt.state_dict())}

    def load_state_dict(self, state):
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["optimizer"])
