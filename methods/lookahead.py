"""The exact one-step look-ahead through all student parameters, shared by ``almkd_full``,
``l2rw`` and ``mwnet``, and the base of the meta-reweighting methods.

For a batch's weighted loss L = (1/B) sum_i w_i l_i(theta) and one virtual plain-SGD step
theta' = theta - lr * dL/dtheta (no momentum, no weight decay) at the current lr,

    dL_meta(theta')/dw_i = -(lr / B) * <grad_theta l_i(theta), grad L_meta(theta')>,

with L_meta the mean CE on a batch of the clean meta split. ``lookahead_direction`` gives
grad L_meta(theta'), ``per_instance_jvp`` every inner product at once (one forward-mode JVP
of the per-instance losses in that direction, through a copy whose BatchNorm layers use the
batch's statistics and track nothing, so exact with BatchNorm in train mode), and
``exact_hypergrad`` puts them together (also as a double backward). None of them ever changes
the real parameters or BatchNorm buffers.

The clean batches come from the ``val`` split of ``benchmark/device_data.DeviceData`` (the
meta split: the clean data a method may train on; the selection split is the engine's alone)
through the run's method context, ``ctx.extras["data"]`` (``clean_batch``).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.func import functional_call, jvp, replace_all_batch_norm_modules_

from benchmark.core.seeds import derive_seed
from benchmark.spec.protocol import kd_weights

from .base import Method
from .losses import mixed_loss, term_losses

VAL_BN = ("eval", "train")  # BatchNorm of L_meta: running statistics, or the clean batch's


def stats_free_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose BatchNorm layers always use batch statistics and track nothing."""
    clone = copy.deepcopy(model)
    replace_all_batch_norm_modules_(clone)
    return clone.train()


def lookahead_direction(model, grads, lr, xv, yv, batch_stats=None):
    """grad L_meta(theta') at theta' = theta - lr * grads (``grads`` None: theta' = theta).

    BatchNorm in eval mode (the model's running statistics, read, never written), or, given
    ``batch_stats`` (the model's ``stats_free_copy``), on the clean batch's own statistics
    (the authors' L2RW and MW-Net code: their meta forward runs in train mode)."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    with torch.enable_grad():
        if grads is None:
            p1 = {k: v.requires_grad_(True) for k, v in params.items()}
        else:
            p1 = {k: (v - lr * g.detach()).requires_grad_(True)
                  for (k, v), g in zip(params.items(), grads, strict=True)}
        if batch_stats is not None:
            kept = dict(batch_stats.named_buffers())  # BatchNorm's are gone
            val_logits = functional_call(
                batch_stats, {**p1, **{k: v for k, v in buffers.items() if k in kept}}, (xv,))
        else:
            was_training = model.training
            model.eval()
            try:
                val_logits = functional_call(model, {**p1, **buffers}, (xv,))
            finally:
                model.train(was_training)
        return torch.autograd.grad(F.cross_entropy(val_logits, yv), list(p1.values()))


def per_instance_jvp(model, stats_free, x, per_instance, direction):
    """(values, derivatives) of ``per_instance(logits)`` at the real parameters in
    ``direction`` (one tensor per parameter): one forward-mode JVP through ``stats_free``, so
    BatchNorm uses the batch's statistics, as in the training forward."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    kept = dict(stats_free.named_buffers())  # BatchNorm's are gone; any others follow the model
    buffers = {k: v.detach() for k, v in model.named_buffers() if k in kept}

    def f(p):
        return per_instance(functional_call(stats_free, {**p, **buffers}, (x,)))

    return jvp(f, (params,), (dict(zip(params, direction, strict=True)),))


def exact_hypergrad(model, x, y, teacher_logits, w, lr, xv, yv, T, *, mode, val_bn,
                    stats_free=None, logits=None):
    """[B, K] exact dL_meta(theta')/dw for one batch's weights w [B, K] on its loss terms.

    ``logits``: the batch's logits from the real model's train-mode forward, still attached to
    its graph (the training step's own forward, reused: the graph is retained for the real
    backward); without them, a forward of ``stats_free`` at the real parameters is used.
    ``mode``: ``double_backward`` differentiates <grad L_train(w), v> with respect to w;
    ``jvp`` takes one forward-mode JVP of the per-instance losses in direction v (needs
    ``stats_free``). ``val_bn``: BatchNorm of L_meta, ``eval`` (running statistics) or
    ``train`` (the clean batch's own). The real model's parameters and buffers are never
    changed.
    """
    if val_bn not in VAL_BN:
        raise ValueError(f"val_bn {val_bn!r}: one of {', '.join(VAL_BN)}")
    with torch.enable_grad():
        if logits is None:
            leaves = {k: v.detach().requires_grad_(True) for k, v in model.named_parameters()}
            logits = functional_call(stats_free, leaves, (x,))
            wrt = list(leaves.values())
        else:
            wrt = list(model.parameters())
        wr = w.detach().requires_grad_(mode == "double_backward")
        loss = mixed_loss(wr, term_losses(logits, y, teacher_logits, T))
        grads = torch.autograd.grad(loss, wrt, create_graph=mode == "double_backward",
                                    retain_graph=True)
        direction = lookahead_direction(model, grads, lr, xv, yv,
                                        stats_free if val_bn == "train" else None)
        if mode == "double_backward":
            inner = sum((g * d).sum() for g, d in zip(grads, direction, strict=True))
            return -lr * torch.autograd.grad(inner, wr, retain_graph=True)[0]
    if mode != "jvp" or stats_free is None:
        raise ValueError(f"hypergradient mode {mode!r} needs mode jvp with stats_free")
    _, dterms = per_instance_jvp(model, stats_free, x,
                                 lambda out: term_losses(out, y, teacher_logits, T), direction)
    return -(lr / len(y)) * dterms.T


def clean_batch(data, size, gen):
    """A random batch of ``size`` (at most the whole split) of the clean meta split, drawn
    with the CPU generator ``gen``: (inputs, clean labels), un-augmented."""
    n = len(data.y_val)
    idx = torch.randperm(n, generator=gen, device="cpu")[:min(size, n)]
    idx = idx.to(data.y_val.device)
    return data.batch("val", idx), data.y_val[idx]


class MetaReweight(Method):
    """Per-example weights of one loss from a look-ahead on the clean meta split.

    The loss reweighted: with ``loss: kd`` (default, teachers given) the per-example mix the
    ``kd`` method uses, l_i = (1 - a) CE_i + sum_m a_m T^2 KL_im (a = ``kd_weight``, each
    teacher's share by the protocol: ``benchmark.spec.protocol.kd_weights``); with ``loss: ce``
    (no teacher) l_i = CE_i. One clean batch of ``meta_batch`` (null: the training batch size,
    as the authors' meta batches) per training step, drawn from a generator seeded per epoch
    (a resumed run draws the same)."""

    def setup(self, ctx):
        super().setup(ctx)
        self.ctx = ctx
        model = ctx.extras["model"]
        self.stats_free = stats_free_copy(model)
        dtype = next(model.parameters()).dtype
        m = ctx.n_teachers
        ce, each = kd_weights(ctx.protocol, float(self.hparams["kd_weight"]), m) if m else (1.0, 0)
        self.coef = torch.tensor([ce] + [each] * m, dtype=dtype, device=ctx.device)
        size = self.hparams["meta_batch"]
        self.meta_size = int(size if size is not None else ctx.extras["cfg"].batch_size)
        self.val_gen = None  # on_epoch_start seeds it

    def on_epoch_start(self, epoch, ctx):
        self.val_gen = torch.Generator().manual_seed(derive_seed(ctx.seed, self.name, epoch))

    def per_example(self, logits, labels, teacher_logits):
        """[B] the reweighted per-example loss (see the class doc)."""
        terms = term_losses(logits, labels, teacher_logits, self.hparams["T"])
        return self.coef.to(terms.dtype) @ terms

    def meta_batch(self):
        if self.val_gen is None:
            raise RuntimeError(f"{self.name}: on_epoch_start was not called")
        return clean_batch(self.ctx.extras["data"], self.meta_size, self.val_gen)

    def inputs(self, out):
        if out.inputs is None:
            raise RuntimeError(f"{self.name} needs the batch inputs in StepOutput")
        return out.inputs

    def val_stats(self):
        """The module L_meta runs through: the stats-free copy (BatchNorm on the clean batch's
        statistics, ``meta_bn: train``) or None (running statistics, ``eval``)."""
        return self.stats_free if self.hparams["meta_bn"] == "train" else None
