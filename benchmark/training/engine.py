"""The training loop every teacher and student runs through.

SGD with Nesterov momentum and weight decay, a step or cosine schedule, the data on the
device (``DeviceData``), bf16 autocast and channels_last on CUDA, optional torch.compile,
clean validation and test accuracy every epoch, a per-epoch CSV log, and an atomic
checkpoint every k epochs that a rerun resumes from.

Randomness: the batch order and the augmentation of epoch e come from generators seeded by
``derive_seed(seed, role, e)``, so they do not depend on how the run was interrupted, and
every method of one seed sees the same batches in the same order.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.core.atomic import atomic_write_text
from benchmark.core.errors import UserError
from benchmark.core.seeds import derive_seed
from benchmark.spec.protocol import cosine_period, teachers_train_mode
from benchmark.spec.trainconfig import TrainConfig
from benchmark.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from benchmark.training.device_data import DeviceData
from benchmark.training.teacher_cache import TeacherOutputs, cacheable
from methods.base import Method, MethodContext, StepOutput

LOG_FIELDS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
              "test_acc", "epoch_time_s", "images_per_s"]


class TrainingDiverged(UserError):
    """The loss became NaN or infinite: the run stops and writes no metrics."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)  # TrainConfig admits auto, cpu, cuda, cuda:N and mps
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but no CUDA device is available")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"device {name!r} requested but this machine has "
                        f"{torch.cuda.device_count()} CUDA device(s) (cuda:0..)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device {name!r} requested but no MPS (Apple GPU) device is available")
    return device


def autocast_dtype(cfg: TrainConfig, device: torch.device):
    on = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
    return torch.bfloat16 if on else None


def use_channels_last(cfg: TrainConfig, device: torch.device) -> bool:
    return cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")


class FeaturesAndLogits(nn.Module):
    """One forward giving the pre-logit features and the logits (what methods receive)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        feats = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return feats, self.model.get_classifier()(feats)


def _compiled(module: nn.Module, cfg: TrainConfig):
    if not cfg.compile:
        return module
    return torch.compile(module, mode=None if cfg.compile_mode == "default" else cfg.compile_mode)


def build_optimizer(model: nn.Module, cfg: TrainConfig):
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          nesterov=cfg.nesterov and cfg.momentum > 0,
                          weight_decay=cfg.weight_decay)
    if cfg.schedule == "step":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), cfg.gamma)
    elif cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=cosine_period(cfg.protocol, cfg.epochs))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    return opt, sched


@torch.no_grad()
def evaluate(fn, data: DeviceData, split: str, batch_size: int, amp_dtype,
             graphed: bool = False) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on a clean split, in eval mode, no augmentation.
    ``graphed``: ``fn`` replays CUDA graphs (compiled with reduce-overhead / max-autotune) and
    each batch marks a new step. Only then: the first call of
    ``torch.compiler.cudagraph_mark_step_begin`` imports the inductor (1.7 s per process on
    an idle 2-core CPU, scripts/bench_startup.py), which every uncompiled job paid before."""
    correct = torch.zeros((), device=data.device)
    loss = torch.zeros((), device=data.device)
    n = 0
    for x, y in data.eval_batches(split, batch_size):
        if graphed:
            torch.compiler.cudagraph_mark_step_begin()
        with _autocast(data.device, amp_dtype):
            logits = fn(x)[1]
        loss += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
    return (correct.item() / n, loss.item() / n) if n else (float("nan"), float("nan"))


def _autocast(device: torch.device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class EngineResult:
    history: list[dict]
    best: dict
    train_time_s: float
    images_per_s: float
    device: str
    best_state: dict | None = None


class Trainer:
    def __init__(self, *, model: nn.Module, data: DeviceData, method: Method,
                 teachers: list[nn.Module], cfg: TrainConfig, seed: int, role: str,
                 run_id: str, spec_hash: str, checkpoint_dir: Path, log_path: Path,
                 keep_best_state: bool = False, progress: bool | None = None,
                 teacher_store: dict | None = None):
        """``teacher_store``: where the teachers' logits on the training inputs are kept
        once computed (benchmark/training/teacher_cache.py), shared with the other runs of
        the process that have the same teachers and data; None: each batch's teacher pass
        (used anyway where the logits could change between epochs: ``cacheable``)."""
        self.device = data.device
        self.cfg, self.seed, self.role, self.run_id = cfg, seed, role, run_id
        self.spec_hash, self.data, self.method = spec_hash, data, method
        self.checkpoint_path = Path(checkpoint_dir) / CHECKPOINT_NAME
        self.log_path = Path(log_path)
        self.keep_best_state, self.progress = keep_best_state, progress
        self.amp_dtype = autocast_dtype(cfg, self.device)
        memory_format = torch.channels_last if data.channels_last else torch.preserve_format
        self.model = model.to(self.device, memory_format=memory_format)
        # Teachers in eval mode, except under protocol authors, whose scripts leave them in
        # train mode (until a released refresh calls .eval() on them); their BatchNorm
        # statistics then change during training and are part of every checkpoint
        self.teachers_train = teachers_train_mode(cfg.protocol)
        self.teachers = [t.to(self.device, memory_format=memory_format).train(self.teachers_train)
                         for t in teachers]
        for t in self.teachers:
            t.requires_grad_(False)
        fn = FeaturesAndLogits(self.model)
        if cfg.compile:
            # Dynamo keeps at most recompile_limit (8) graphs per code object and then runs
            # eager without a word; a process that trains several runs or architectures
            # would silently stop compiling, so each Trainer starts from an empty cache
            torch._dynamo.reset()
        self.fn = _compiled(fn, cfg)
        self.teacher_fns = [_compiled(t, cfg) for t in self.teachers]
        # CUDA graphs (compile_mode reduce-overhead) need each training step marked, or a
        # step's outputs may be overwritten by the next replay while still in use
        self.graphed = cfg.compile and cfg.compile_mode in ("reduce-overhead", "max-autotune")
        self.teacher_outputs = None
        if teacher_store is not None and cacheable(data, self.teachers, self.teachers_train,
                                                   cfg.compile):
            self.teacher_outputs = TeacherOutputs(teacher_store, self.teachers, data,
                                                  cfg.batch_size, cfg.eval_batch_size)
        self.opt, self.sched = build_optimizer(self.model, cfg)
        self.ctx = MethodContext(n_train=data.n_train, num_classes=data.num_classes,
                                 n_teachers=len(teachers), device=self.device, seed=seed,
                                 protocol=cfg.protocol, extras={"model": self.model, "data": data,
                                         "teachers": self.teachers, "cfg": cfg,
                                         "teacher_outputs": self.teacher_outputs})
        method.setup(self.ctx)

    # -- state -----------------------------------------------------------------------------
    def _state(self, epoch: int, history, best, best_state, train_time) -> dict:
        state = {
            "spec_hash": self.spec_hash, "epoch": epoch, "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "method": self.method.state_dict(), "history": history, "best": best,
            "train_time_s": train_time, "torch_rng": torch.get_rng_state(),
        }
        if best_state is not None:
            state["best_state"] = best_state
        if self.teachers_train:
            state["teachers"] = [t.state_dict() for t in self.teachers]
            state["teachers_training"] = [t.training for t in self.teachers]
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore(self, state: dict):
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.method.load_state_dict(state["method"])
        for t, t_state, training in zip(self.teachers, state.get("teachers", []),
                                        state.get("teachers_training", []), strict=False):
            t.load_state_dict(t_state)
            t.train(training)
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        return (state["epoch"], list(state["history"]), dict(state["best"]),
                state.get("best_state"), float(state["train_time_s"]))

    # -- one epoch -------------------------------------------------------------------------
    def _batch_order(self, epoch: int) -> torch.Tensor:
        rng = np.random.default_rng(derive_seed(self.seed, "batch_order", self.role, epoch))
        return torch.as_tensor(rng.permutation(self.data.n_train), device=self.device)

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        data, cfg = self.data, self.cfg
        self.model.train()
        finetune = epoch >= cfg.epochs  # the method's fine-tune on the meta split
        n = len(data.y_val) if finetune else data.n_train
        if finetune:
            rng = np.random.default_rng(derive_seed(self.seed, "finetune_order", self.role, epoch))
            order = torch.as_tensor(rng.permutation(n), device=self.device)
        else:
            order = self._batch_order(epoch)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(derive_seed(self.seed, "augment", self.role, epoch))
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        for start in range(0, n, cfg.batch_size):
            if self.graphed:
                torch.compiler.cudagraph_mark_step_begin()
            idx = order[start:start + cfg.batch_size]
            if finetune:
                x, y = data.batch("meta", idx, gen), data.y_val[idx]
            else:
                x, y = data.train_batch(idx, gen), data.y_train[idx]
            with _autocast(self.device, self.amp_dtype):
                feats, logits = self.fn(x)
                t_logits = None
                if self.teacher_outputs is not None and not finetune:
                    t_logits = self.teacher_outputs.train_logits(idx, self.amp_dtype)
                elif self.teacher_fns and not finetune:
                    with torch.no_grad():
                        t_logits = torch.stack([t(x) for t in self.teacher_fns]).float()
            out = StepOutput(logits.float(), feats.float(), y, idx, t_logits, x)
            loss = self.method.finetune_loss(out) if finetune else self.method.loss(out)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == y).sum()
        if not finetune:  # the fine-tune runs at its own constant lr
            self.sched.step()
        return loss_sum.item() / n, correct.item() / n

    # -- the run ---------------------------------------------------------------------------
    def fit(self) -> EngineResult:
        cfg = self.cfg
        state = load_checkpoint(self.checkpoint_path, self.spec_hash, self.run_id)
        if state is not None:
            start, history, best, best_state, train_time = self._restore(state)
            print(f"run {self.run_id}: resuming after epoch {start} from {self.checkpoint_path}",
                  file=sys.stderr)
        else:
            start, history, best, best_state, train_time = 0, [], {"val_acc": -1.0}, None, 0.0
        ft_epochs, ft_lr = self.method.finetune(cfg.lr) or (0, None)
        total = cfg.epochs + ft_epochs
        bar = _progress(self.progress, total, start, self.run_id)
        for epoch in range(start, total):
            if epoch >= cfg.epochs:
                for group in self.opt.param_groups:
                    group["lr"] = ft_lr
            lr = self.opt.param_groups[0]["lr"]
            self.ctx.epoch, self.ctx.lr = epoch, lr
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            t0 = time.perf_counter()  # the method's epoch-start work (ALM refreshes) counts
            self.method.on_epoch_start(epoch, self.ctx)
            train_loss, train_acc = self._train_epoch(epoch)
            seconds = time.perf_counter() - t0
            if not math.isfinite(train_loss):
                raise TrainingDiverged(
                    f"run {self.run_id} diverged in epoch {epoch + 1}: mean training loss "
                    f"{train_loss}; no metrics written (lower the learning rate or check the "
                    "inputs; the last good checkpoint is kept)")
            train_time += seconds
            self.model.eval()
            # the epoch is chosen on the selection split, which no method trains on (the
            # meta split when the labels file has none: the shared set); logged as val_*
            val_acc, val_loss = evaluate(self.fn, self.data, "select", cfg.eval_batch_size,
                                         self.amp_dtype, self.graphed)
            test_acc, test_loss = evaluate(self.fn, self.data, "test", cfg.eval_batch_size,
                                           self.amp_dtype, self.graphed)
            row = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                   "val_loss": val_loss, "val_acc": val_acc, "test_loss": test_loss,
                   "test_acc": test_acc, "epoch_time_s": seconds,
                   "images_per_s": (len(self.data.y_val) if epoch >= cfg.epochs
                                    else self.data.n_train) / seconds
                   if seconds > 0 else float("nan")}
            history.append(row)
            if val_acc > best["val_acc"]:
                best = {"epoch": epoch + 1, "val_acc": val_acc, "test_acc": test_acc}
                if self.keep_best_state:
                    best_state = {k: v.detach().cpu().clone()
                                  for k, v in self.model.state_dict().items()}
            self._write_log(history)
            if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == total:
                save_checkpoint(self.checkpoint_path,
                                self._state(epoch + 1, history, best, best_state, train_time))
            _report(bar, row, self.run_id)
        if bar is not None:
            bar.close()
        # also when a resumed run had no epoch left: the workflow may have removed the log
        self._write_log(history)
        total_images = self.data.n_train * cfg.epochs + len(self.data.y_val) * ft_epochs
        return EngineResult(history=history, best=best, train_time_s=train_time,
                            images_per_s=total_images / train_time if train_time else float("nan"),
                            device=str(self.device), best_state=best_state)

    def _write_log(self, history: list[dict]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=LOG_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(self.log_path, buf.getvalue(), durable=False)


def _progress(enabled: bool | None, total: int, start: int, run_id: str):
    from tqdm import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    return tqdm(total=total, initial=start, desc=run_id, unit="epoch", leave=True,
                dynamic_ncols=True)


def _report(bar, row: dict, run_id: str) -> None:
    text = (f"loss {row['train_loss']:.3f} train {row['train_acc']:.3f} "
            f"val {row['val_acc']:.3f} test {row['test_acc']:.3f}")
    if bar is not None:
        bar.set_postfix_str(text)
        bar.update(1)
    else:
        print(f"{run_id} epoch {row['epoch']}: {text} ({row['images_per_s']:.0f} img/s)",
              file=sys.stderr, flush=True)
