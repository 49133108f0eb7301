"""Training hyper-parameters and runtime switches. Plain Python (the planner hashes them).

Only ``TrainConfig.optimisation()`` enters a run's identity: switching device, AMP or
compilation, or how often to checkpoint, resumes the same run rather than starting another.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields

from benchmark.core.errors import UserError
from benchmark.spec import schema
from benchmark.spec.protocol import PROTOCOLS

# The defaults and allowed words of the training and runtime keys: the schema's
# (workflows/config/schema.yaml, the one place they are written)
_TRAIN = schema.defaults("$defs", "train")
_RUNTIME = schema.defaults("runtime")
SCHEDULES = schema.enum("$defs", "train", "schedule")
AUGMENTS = schema.enum("$defs", "train", "augment")
# torch.compile modes; reduce-overhead adds CUDA graphs (what small models need on a GPU,
# where kernel launches, not arithmetic, bound a step)
COMPILE_MODES = schema.enum("runtime", "compile_mode")
# what benchmark.training.engine.resolve_device is given: auto (cuda if available, else cpu) or a
# torch device name of these forms
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
DEVICES = "auto, cpu, cuda, cuda:N or mps"


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _integral(v) -> bool:  # 150 or 150.0 (what a JSON schema calls an integer), never True
    return _int(v) or (isinstance(v, float) and v.is_integer())


def _real(v) -> bool:  # an int is finite (math.isfinite(10**400) would overflow)
    return isinstance(v, int) and not isinstance(v, bool) or (
        isinstance(v, float) and math.isfinite(v))


def _bool(v) -> bool:
    return isinstance(v, bool)


def _str(v) -> bool:
    return isinstance(v, str)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _TRAIN["epochs"]
    batch_size: int = _TRAIN["batch_size"]
    lr: float = _TRAIN["lr"]
    momentum: float = _TRAIN["momentum"]
    nesterov: bool = _TRAIN["nesterov"]
    weight_decay: float = _TRAIN["weight_decay"]
    schedule: str = _TRAIN["schedule"]  # step: lr * gamma at each milestone; cosine: to 0
    milestones: tuple[int, ...] = tuple(_TRAIN["milestones"])
    gamma: float = _TRAIN["gamma"]
    augment: str = _TRAIN["augment"]  # auto: crop+flip for images of 28 px and more
    protocol: str = schema.schema()["$defs"]["protocol"]["default"]  # suite or authors
    # runtime switches (not part of the run's identity)
    device: str = _RUNTIME["device"]  # auto: cuda if available, else cpu
    amp: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; "on" / "off" (CLI only)
    channels_last: str = "auto"  # auto: on CUDA only (CLI only)
    compile: bool = _RUNTIME["compile"]
    compile_mode: str = _RUNTIME["compile_mode"]  # with compile: one of COMPILE_MODES
    eval_batch_size: int = _TRAIN["eval_batch_size"]
    checkpoint_every: int = _RUNTIME["checkpoint_every"]
    keep_checkpoint: bool = _RUNTIME["keep_checkpoint"]

    OPTIMISATION = ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay",
                    "schedule", "milestones", "gamma", "augment", "protocol")

    def __post_init__(self) -> None:
        ms = self.milestones
        if isinstance(ms, (list, tuple)) and all(_integral(m) for m in ms):
            object.__setattr__(self, "milestones", tuple(int(m) for m in ms))
        else:
            raise UserError(f"training key 'milestones' must be a list of integers, got {ms!r}")
        # each check runs only on a value of the right type (a bool is no number here)
        checks = [
            ("epochs", _int, lambda v: v >= 1, "an integer >= 1"),
            ("batch_size", _int, lambda v: v >= 1, "an integer >= 1"),
            ("lr", _real, lambda v: v > 0, "> 0 (a number)"),
            ("momentum", _real, lambda v: 0 <= v < 1, "in [0, 1) (a number)"),
            ("nesterov", _bool, None, "true or false"),
            ("weight_decay", _real, lambda v: v >= 0, ">= 0 (a number)"),
            ("schedule", _str, lambda v: v in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
            ("milestones", None, lambda v: list(v) == sorted(set(v)) and all(m > 0 for m in v),
             "strictly increasing, > 0"),
            ("gamma", _real, lambda v: 0 < v <= 1, "in (0, 1] (a number)"),
            ("augment", _str, lambda v: v in AUGMENTS, f"one of {', '.join(AUGMENTS)}"),
            ("protocol", _str, lambda v: v in PROTOCOLS, f"one of {', '.join(PROTOCOLS)}"),
            ("device", _str, DEVICE_PATTERN.fullmatch, DEVICES),
            ("amp", _str, lambda v: v in ("auto", "on", "off"), "auto, on or off"),
            ("channels_last", _str, lambda v: v in ("auto", "on", "off"), "auto, on or off"),
            ("compile", _bool, None, "true or false"),
            ("compile_mode", _str, lambda v: v in COMPILE_MODES,
             f"one of {', '.join(COMPILE_MODES)}"),
            ("checkpoint_every", _int, lambda v: v >= 1, ">= 1 (an integer)"),
            ("eval_batch_size", _int, lambda v: v >= 1, ">= 1 (an integer)"),
            ("keep_checkpoint", _bool, None, "true or false"),
        ]
        for key, kind, ok, want in checks:
            value = getattr(self, key)
            if (kind is not None and not kind(value)) or (ok is not None and not ok(value)):
                raise UserError(f"training key {key!r} must be {want}, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        if not isinstance(values, dict):
            raise UserError(f"training keys must be a mapping of key to value, got {values!r}")
        known = {f.name for f in fields(cls)}
        unknown = {str(k) for k in values} - known
        if unknown:
            raise UserError(f"unknown training key(s): {', '.join(sorted(unknown))}")
        return cls(**values)

    def optimisation(self) -> dict:
        d = asdict(self)
        return {k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in self.OPTIMISATION}

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
