"""Shared machinery of the adaptive-mixing methods (``almkd``, ``amal``, ``almkd_v1``,
``almkd_full``): the per-instance weight table N_train x (M + 1), the weighted loss, the
refresh schedule and settings, checkpointable state and the ``alpha.npz`` record of every
refresh. The methods differ only in their mixing rule (``mixing.py``) and their defaults."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.core.errors import UserError
from benchmark.core.seeds import derive_seed
from benchmark.spec.protocol import refresh_val_augment, teachers_train_mode

from .alm_refresh import RefreshSettings, lastlayer_refresh, refresh_due
from .base import Method
from .losses import mixed_loss, term_losses


class AdaptiveMixing(Method):
    mixing = None  # set by each method

    def setup(self, ctx):
        super().setup(ctx)
        hp = self.hparams
        cfg = ctx.extras.get("cfg")
        if cfg is not None and cfg.epochs <= hp["meta_start"]:
            raise UserError(f"method {self.name!r}: epochs ({cfg.epochs}) must exceed meta_start "
                            f"({hp['meta_start']}), or the weights are never learned")
        # every value's type and range: checked when the method was built (catalog.py)
        self.ctx = ctx
        self.batch_size = hp["meta_batch"] or (cfg.batch_size if cfg is not None else 128)
        gen = torch.Generator().manual_seed(derive_seed(ctx.seed, "alm_init"))
        self.weights = self.mixing.init(ctx.n_train, ctx.n_teachers, hp.get("kd_share"),
                                        ctx.protocol, ctx.device, gen)
        # Teachers from the refresh on: eval, except under protocol authors with a train-mode
        # refresh (v1's code never calls .eval() on its teacher)
        train_teachers = teachers_train_mode(ctx.protocol) and hp["refresh_mode"] == "train"
        self.settings = RefreshSettings(
            chunk=hp["meta_chunk"], val_batch=hp["meta_val_batch"], steps=hp["meta_steps"],
            meta_lr=float(hp["meta_lr"]), train_share=float(hp["meta_train_share"]),
            model_mode=hp["refresh_mode"], val_augment=refresh_val_augment(ctx.protocol),
            teacher_mode="train" if train_teachers else "eval")
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
        return lastlayer_refresh(
            self.weights, self.mixing.step, self.settings, model=ctx.extras["model"],
            teachers=ctx.extras["teachers"], data=ctx.extras["data"], lr=ctx.lr,
            seed=ctx.seed, epoch=epoch, T=self.hparams["T"], batch_size=self.batch_size,
            teacher_outputs=ctx.extras.get("teacher_outputs"))

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
        # teacher diagnostics only where every snapshot has real ones (figures skip the rest)
        if self.history["epoch"] and len(self.history["teacher_agrees"]) == len(
                self.history["epoch"]):
            arrays["teacher_agrees_noisy"] = torch.stack(self.history["teacher_agrees"]).numpy()
            arrays["teacher_prob_noisy"] = torch.stack(self.history["teacher_prob_given"]).numpy()
        return {"alpha.npz": arrays}
