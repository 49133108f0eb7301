"""Training hyper-parameters and runtime switches. Plain Python (the planner hashes them).

Only ``TrainConfig.optimisation()`` enters a run's identity: switching device, AMP or
compilation, or how often to checkpoint, resumes the same run rather than starting another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from .errors import UserError
from .protocol import PROTOCOLS

SCHEDULES = ("step", "cosine", "constant")
AUGMENTS = ("auto", "none", "crop", "crop_flip")
# torch.compile modes; reduce-overhead adds CUDA graphs (what small models need on a GPU,
# where kernel launches, not arithmetic, bound a step)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "step"  # step: lr * gamma at each milestone; cosine: to 0 over the epochs
    milestones: tuple[int, ...] = (150, 180)
    gamma: float = 0.1
    augment: str = "auto"  # auto: crop+flip for images of 28 px and more, none otherwise
    protocol: str = "suite"  # suite or authors (benchmark/protocol.py)
    # runtime switches (not part of the run's identity)
    device: str = "auto"  # auto: cuda if available, else cpu
    amp: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU; "on" / "off"
    channels_last: str = "auto"  # auto: on CUDA only
    compile: bool = False
    compile_mode: str = "default"  # with compile: one of COMPILE_MODES
    eval_batch_size: int = 1024
    checkpoint_every: int = 1
    keep_checkpoint: bool = False

    OPTIMISATION = ("epochs", "batch_size", "lr", "momentum", "nesterov", "weight_decay",
                    "schedule", "milestones", "gamma", "augment", "protocol")

    def __post_init__(self) -> None:
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, "epochs", "an integer >= 1"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size",
             "an integer >= 1"),
            (self.lr > 0, "lr", "> 0"),
            (0 <= self.momentum < 1, "momentum", "in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay", ">= 0"),
            (self.schedule in SCHEDULES, "schedule", f"one of {', '.join(SCHEDULES)}"),
            (list(self.milestones) == sorted(set(self.milestones)) and
             all(m > 0 for m in self.milestones), "milestones", "strictly increasing, > 0"),
            (0 < self.gamma <= 1, "gamma", "in (0, 1]"),
            (self.augment in AUGMENTS, "augment", f"one of {', '.join(AUGMENTS)}"),
            (self.protocol in PROTOCOLS, "protocol", f"one of {', '.join(PROTOCOLS)}"),
            (self.amp in ("auto", "on", "off"), "amp", "auto, on or off"),
            (self.channels_last in ("auto", "on", "off"), "channels_last", "auto, on or off"),
            (self.compile_mode in COMPILE_MODES, "compile_mode",
             f"one of {', '.join(COMPILE_MODES)}"),
            (self.checkpoint_every >= 1, "checkpoint_every", ">= 1"),
            (self.eval_batch_size >= 1, "eval_batch_size", ">= 1"),
        ]
        for ok, key, want in checks:
            if not ok:
                raise UserError(f"training key {key!r} must be {want}, got {getattr(self, key)!r}")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise UserError(f"unknown training key(s): {', '.join(sorted(unknown))}")
        return cls(**values)

    def optimisation(self) -> dict:
        d = asdict(self)
        return {k: (list(d[k]) if isinstance(d[k], tuple) else d[k]) for k in self.OPTIMISATION}

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
