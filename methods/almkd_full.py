"""``almkd_full``: almkd's mixing with the exact one-step look-ahead through all student
parameters (Meta-Weight-Net style) instead of the last layer only.

For the batch's weighted loss L = (1/B) sum_ik w_ik l_ik(theta), theta' = theta - lr * dL/dtheta
(one virtual plain-SGD step: no momentum, no weight decay, as in the last-layer version), and

    dL_val(theta')/dw_ik = -(lr / B) * <grad_theta l_ik(theta), grad L_val(theta')>.

Two exact ways to get all B x K numbers, both exact with BatchNorm in train mode (batch
statistics couple the instances, and both differentiate through them): ``jvp`` (default,
chosen by measurement: about 3.5x a kd step on CPU against 3.9x for double backward, see
scripts/bench_methods.py) takes one forward-mode JVP of the per-instance losses in the
direction grad L_val(theta'); ``double_backward`` takes dL/dtheta with create_graph and
differentiates <dL/dtheta, grad L_val(theta')> with respect to w. Both reuse the training
step's own forward for dL/dtheta (its graph is retained for the real backward). L_val uses
BatchNorm in eval mode (running statistics). The virtual step never touches the real
parameters or BatchNorm buffers: extra train-mode forwards run on a copy whose BatchNorm
layers keep no running statistics, and the real model otherwise only runs in eval mode.

Schedules: ``every_step`` (default; each training batch's weights take ``full_steps`` meta
steps before the real step) or ``almkd`` (a pass over the training set every ``meta_every``
epochs from ``meta_start``, ``meta_steps`` steps per batch).

The look-ahead itself (shared with l2rw and mwnet): methods/lookahead.py.
"""

from __future__ import annotations

import torch

from benchmark.core.seeds import derive_seed

from .alm_refresh import refresh_due, refresh_plan, teacher_diagnostics
from .almkd import ALMKD
from .base import register_method
from .lookahead import clean_batch, exact_hypergrad, stats_free_copy

__all__ = ["ALMKDFull", "exact_hypergrad", "stats_free_copy"]  # the look-ahead: lookahead.py


@register_method
class ALMKDFull(ALMKD):
    name = "almkd_full"

    def setup(self, ctx):
        super().setup(ctx)  # schedule, hypergrad and the rest: checked when built (catalog.py)
        self.stats_free = stats_free_copy(ctx.extras["model"])
        self.epoch = 0  # on_epoch_start sets it and the epoch's validation generator
        # every_step: teacher diagnostics gathered from the training steps themselves, so each
        # snapshot in alpha.npz has real ones (or none, before every instance was seen once)
        n, m = ctx.n_train, ctx.n_teachers
        self.seen = torch.zeros(n, dtype=torch.bool, device=ctx.device)
        self.agree = torch.zeros(n, m, dtype=torch.bool, device=ctx.device)
        self.prob_given = torch.zeros(n, m, device=ctx.device)

    def _val_batch(self, size):
        return clean_batch(self.ctx.extras["data"], size, self.val_gen)

    def on_epoch_start(self, epoch, ctx):
        hp = self.hparams
        self.epoch = epoch
        self.val_gen = torch.Generator().manual_seed(derive_seed(ctx.seed, "full_val", epoch))
        if hp["schedule"] == "almkd":
            super().on_epoch_start(epoch, ctx)
        elif refresh_due(epoch, hp["meta_start"], hp["meta_every"]):  # snapshot for alpha.npz
            self.history["epoch"].append(epoch)
            self.history["weights"].append(self.weights.detach().float().cpu().clone())
            if bool(self.seen.all()):
                self.history["teacher_agrees"].append(self.agree.cpu().clone())
                self.history["teacher_prob_given"].append(self.prob_given.cpu().clone())

    def state_dict(self):
        return {**super().state_dict(), "diag_seen": self.seen.cpu(),
                "diag_agree": self.agree.cpu(), "diag_prob": self.prob_given.cpu()}

    def load_state_dict(self, state):
        state = dict(state)
        for key, attr in (("diag_seen", "seen"), ("diag_agree", "agree"),
                          ("diag_prob", "prob_given")):
            if key in state:
                setattr(self, attr, state.pop(key).to(getattr(self, attr).device))
        super().load_state_dict(state)

    def _meta_steps(self, x, y, t, idx, steps, val_size, logits=None):
        model = self.ctx.extras["model"]
        xv, yv = self._val_batch(val_size)
        w = self.weights[idx]
        for _ in range(steps):
            grad = exact_hypergrad(model, x, y, t, w, self.ctx.lr, xv, yv, self.hparams["T"],
                                   mode=self.hparams["hypergrad"], val_bn="eval",
                                   stats_free=self.stats_free, logits=logits)
            w = self.mixing.step(w, grad, self.hparams["meta_lr"])
        self.weights[idx] = w.detach()

    def loss(self, out):
        hp = self.hparams
        if hp["schedule"] == "every_step":
            with torch.no_grad():
                self.agree[out.index], self.prob_given[out.index] = teacher_diagnostics(
                    out.teacher_logits, out.labels)
                self.seen[out.index] = True
        if hp["schedule"] == "every_step" and self.epoch >= hp["meta_start"]:
            if out.inputs is None:
                raise RuntimeError("almkd_full needs the batch inputs in StepOutput")
            self._meta_steps(out.inputs, out.labels, out.teacher_logits, out.index,
                             hp["full_steps"], hp["full_val_batch"], logits=out.logits)
        return super().loss(out)

    def refresh(self, epoch, ctx):
        """The almkd schedule with exact hypergradients, one batch at a time."""
        hp = self.hparams
        data, teachers = ctx.extras["data"], ctx.extras["teachers"]
        plan = refresh_plan(data.n_train, len(data.y_val), ctx.seed, epoch, self.batch_size, 1,
                            hp["meta_val_batch"])
        gen = torch.Generator(device=data.device)
        gen.manual_seed(derive_seed(ctx.seed, "meta_augment", epoch))
        n, m = data.n_train, len(teachers)
        agree = torch.zeros(n, m, dtype=torch.bool, device=data.device)
        prob = torch.zeros(n, m, device=data.device)
        for batch in plan.batches:
            idx = torch.as_tensor(batch, device=data.device)
            x, y = data.train_batch(idx, gen), data.y_train[idx]
            cached = ctx.extras.get("teacher_outputs")
            if cached is not None:  # computed once (benchmark/training/teacher_cache.py)
                t = cached.train_logits(idx)
            else:
                with torch.no_grad():
                    t = torch.stack([tm(x).float() for tm in teachers])
            agree[idx], prob[idx] = teacher_diagnostics(t, y)
            self._meta_steps(x, y, t, idx, hp["meta_steps"], hp["meta_val_batch"])
        return {"teacher_agrees": agree, "teacher_prob_given": prob}
