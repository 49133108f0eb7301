"""The method interface and its registry: one file per method, one line to register it.

A method turns one batch into a loss and may keep per-instance state. It never imports the
engine: it receives tensors (``StepOutput``) and the run's context (``MethodContext``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from benchmark.core.errors import UserError

from .catalog import CATALOG, MethodEntry


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
    protocol: str = "suite"  # benchmark/spec/protocol.py
    epoch: int = 0
    lr: float = 0.0
    extras: dict[str, Any] = field(default_factory=dict)


#: the facts a registered class takes from its catalog entry (methods/catalog.py), never
#: declares itself
CATALOG_FACTS = ("uses_teachers", "uses_clean_labels", "hparam_defaults", "entry")


class Method:
    name: str = ""
    # Filled from the catalog entry by register_method: whether a run takes teachers (an
    # instance may say otherwise for its hyper-parameters: l2rw / mwnet with loss ce), whether
    # it trains on clean labels (the meta split: what every table marks), its defaults.
    uses_teachers: bool = False
    uses_clean_labels: bool = False
    hparam_defaults: dict[str, Any] = {}
    #: what a step trains on (benchmark/device_data.TRAIN_SETS): the training split, the
    #: meta split alone, or their union
    train_set: str = "train"

    #: its catalog entry (set by register_method)
    entry: MethodEntry | None = None

    def __init__(self, **hparams):
        self.entry.check(hparams)  # every key and value, the planner's own check
        self.hparams = {**self.hparam_defaults, **hparams}
        self.uses_teachers = self.entry.takes_teachers(self.hparams)

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


def register_method(cls: type[Method] | None = None, *, entry: MethodEntry | None = None):
    """Register a method class under its ``name``, with the facts of its catalog entry.
    ``entry``: a test-only method's own entry (``@register_method(entry=MethodEntry(...))``);
    a method of the suite has its entry in the catalog."""
    if cls is None:
        return lambda c: register_method(c, entry=entry)
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} missing or registered twice")
    if entry is None and cls.name not in CATALOG:
        raise ValueError(f"method {cls.name!r} has no entry in methods/catalog.py")
    if entry is not None and (entry.name != cls.name or cls.name in CATALOG):
        raise ValueError(f"method {cls.name!r}: an own entry is for test-only methods, named "
                         "as the class and not in the catalog")
    own = [k for k in cls.__mro__ if k not in (Method, object) and k not in METHODS.values()]
    declared = [f for f in CATALOG_FACTS if any(f in vars(k) for k in own)]
    if declared:
        raise ValueError(f"method {cls.name!r} declares {', '.join(declared)}: its catalog "
                         "entry holds them")
    entry = entry or CATALOG[cls.name]
    cls.entry = entry
    cls.uses_teachers = entry.uses_teachers
    cls.uses_clean_labels = entry.uses_clean_labels
    cls.hparam_defaults = entry.defaults
    METHODS[cls.name] = cls
    return cls


def _import_methods() -> None:
    import importlib

    for module in CATALOG:  # one module per method, named after it
        importlib.import_module(f"{__package__}.{module}")


def build_method(name: str, **hparams) -> Method:
    _import_methods()
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name](**hparams)
