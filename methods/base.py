"""The method interface and its registry: one file per method, one line to register it.

A method turns one batch into a loss and may keep per-instance state. It never imports the
engine: it receives tensors (``StepOutput``) and the run's context (``MethodContext``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from benchmark.errors import UserError


@dataclass
class StepOutput:
    logits: torch.Tensor  # [B, C] student logits
    features: torch.Tensor  # [B, D] student pre-logit features
    labels: torch.Tensor  # [B] the training labels the run uses (noisy unless told otherwise)
    index: torch.Tensor  # [B] positions in the training split (0..n_train-1)
    teacher_logits: torch.Tensor | None = None  # [M, B, C], teachers in eval mode
    inputs: torch.Tensor | None = None  # [B, ...] the augmented, normalised batch


@dataclass
class MethodContext:
    """What the engine tells a method about the run; the engine fills ``epoch`` and ``lr``."""

    n_train: int
    num_classes: int
    n_teachers: int
    device: torch.device
    seed: int
    protocol: str = "suite"  # benchmark/protocol.py
    epoch: int = 0
    lr: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)


class Method:
    name: str = ""
    uses_teachers: bool = False
    #: trains on clean labels (the meta split): what every table marks (the clean budget)
    uses_clean_labels: bool = False
    #: what a step trains on (benchmark/device_data.TRAIN_SETS): the training split, the
    #: meta split alone, or their union
    train_set: str = "train"
    hparam_defaults: dict[str, Any] = {}

    def __init__(self, **hparams):
        from .hparams import HPARAM_RULES, check_hparams

        if self.name in HPARAM_RULES:  # every key and value, with the planner's own check
            check_hparams(self.name, hparams)
        unknown = set(hparams) - set(self.hparam_defaults)
        if unknown:
            raise UserError(f"method {self.name!r}: unknown hyper-parameter(s) "
                            f"{', '.join(sorted(unknown))}; known: "
                            f"{', '.join(self.hparam_defaults) or 'none'}")
        self.hparams = {**self.hparam_defaults, **hparams}

    def setup(self, ctx: MethodContext) -> None:
        if self.uses_teachers and ctx.n_teachers == 0:
            raise UserError(f"method {self.name!r} needs at least one teacher")
        if not self.uses_teachers and ctx.n_teachers:
            raise UserError(f"method {self.name!r} uses no teacher, but {ctx.n_teachers} given")

    def loss(self, out: StepOutput) -> torch.Tensor:
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, ctx: MethodContext) -> None:
        """Called before every epoch, also the first after a resume."""

    def finetune(self, base_lr: float) -> tuple[int, float] | None:
        """(epochs, lr) of a fine-tune on the meta split after the training schedule, or None
        (``base_lr``: the schedule's initial lr). The engine then trains that many more
        epochs on the meta split's clean labels at a constant lr with ``finetune_loss`` (the
        same optimizer, its momentum kept), and selects the epoch over all of them."""
        return None

    def finetune_loss(self, out: StepOutput) -> torch.Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(out.logits, out.labels)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"method {self.name!r} keeps no state, got {sorted(state)}")

    def artifacts(self) -> dict[str, dict]:
        """Files saved beside metrics.json when the run finishes: name -> arrays (.npz)."""
        return {}


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} missing or registered twice")
    METHODS[cls.name] = cls
    return cls


def _import_methods() -> None:
    import importlib

    from .hparams import HPARAM_DEFAULTS

    for module in HPARAM_DEFAULTS:  # one module per method, named after it
        importlib.import_module(f"{__package__}.{module}")


def build_method(name: str, **hparams) -> Method:
    _import_methods()
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name](**hparams)
