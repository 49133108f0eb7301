"""Shared machinery of the adaptive-mixing methods (``almkd``, ``amal``, ``almkd_full``):
the per-instance weight table N_train x (M + 1), the weighted loss, the refresh schedule,
checkpointable state and the ``alpha.npz`` record of every refresh."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.errors import UserError

from .alm_refresh import lastlayer_refresh, refresh_due
from .base import Method
from .hparams import ALM_DEFAULTS
from .losses import mixed_loss, term_losses


class AdaptiveMixing(Method):
    uses_teachers = True
    hparam_defaults = ALM_DEFAULTS
    mixing = None  # set by each method

    def setup(self, ctx):
        super().setup(ctx)
        hp = self.hparams
        cfg = ctx.extras.get("cfg")
        if cfg is not None and cfg.epochs <= hp["meta_start"]:
            raise UserError(f"method {self.name!r}: epochs ({cfg.epochs}) must exceed meta_start "
                            f"({hp['meta_start']}), or the weights are never learned")
        for key in ("meta_every", "meta_chunk", "meta_val_batch", "meta_steps"):
            if not isinstance(hp[key], int) or hp[key] < 1:
                raise UserError(f"method {self.name!r}: {key} must be an integer >= 1")
        self.ctx = ctx
        self.batch_size = hp["meta_batch"] or (cfg.batch_size if cfg is not None else 128)
        self.weights = self.mixing.init(ctx.n_train, ctx.n_teachers, hp["kd_share"], ctx.device)
        self.history: dict[str, list] = {"epoch": [], "weights": [], "teacher_agrees": [],
                                         "teacher_prob_given": []}

    def loss(self, out):
        terms = term_losses(out.logits, out.labels, out.teacher_logits, self.hparams["T"])
        return mixed_loss(self.weights[out.index], terms)

    def on_epoch_start(self, epoch, ctx):
        hp = self.hparams
        if not refresh_due(epoch, hp["meta_start"], hp["meta_every"]):
            return
        diag = self.refresh(epoch, ctx)
        self.history["epoch"].append(epoch)
        self.history["weights"].append(self.weights.detach().float().cpu().clone())
        for key in ("teacher_agrees", "teacher_prob_given"):
            self.history[key].append(diag[key].cpu())

    def refresh(self, epoch, ctx) -> dict:
        hp = self.hparams
        return lastlayer_refresh(
            self.weights, self.mixing.step, model=ctx.extras["model"],
            teachers=ctx.extras["teachers"], data=ctx.extras["data"], lr=ctx.lr,
            seed=ctx.seed, epoch=epoch, T=hp["T"], batch_size=self.batch_size,
            chunk=hp["meta_chunk"], val_batch=hp["meta_val_batch"], steps=hp["meta_steps"],
            meta_lr=hp["meta_lr"])

    def state_dict(self):
        state = {"weights": self.weights.detach().cpu(),
                 "refresh_epochs": torch.tensor(self.history["epoch"], dtype=torch.long)}
        for key in ("weights", "teacher_agrees", "teacher_prob_given"):
            if self.history[key]:
                state[f"history_{key}"] = torch.stack(self.history[key])
        return state

    def load_state_dict(self, state):
        self.weights = state["weights"].to(self.weights.device, self.weights.dtype)
        self.history["epoch"] = state["refresh_epochs"].tolist()
        for key in ("weights", "teacher_agrees", "teacher_prob_given"):
            stacked = state.get(f"history_{key}")
            self.history[key] = list(stacked) if stacked is not None else []

    def artifacts(self):
        """``alpha.npz``: the weights after every refresh (one row per refresh) with what the
        analysis needs beside them."""
        data = self.ctx.extras["data"]
        arrays = {
            "term_names": np.array(["ce"] + [f"kd_{m}" for m in range(self.ctx.n_teachers)]),
            "refresh_epoch": np.array(self.history["epoch"], dtype=np.int64),
            "final_weights": self.weights.detach().float().cpu().numpy(),
            "train_idx": np.asarray(data.train_idx, dtype=np.int64),
            "clean_labels": data.y_clean.cpu().numpy(),
            "noisy_labels": data.y_noisy.cpu().numpy(),
        }
        if self.history["epoch"]:
            arrays["weights"] = torch.stack(self.history["weights"]).numpy()
            arrays["teacher_agrees_noisy"] = torch.stack(self.history["teacher_agrees"]).numpy()
            arrays["teacher_prob_noisy"] = torch.stack(self.history["teacher_prob_given"]).numpy()
        return {"alpha.npz": arrays}
