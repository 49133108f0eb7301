"""Teacher outputs computed once per process and shared by every run that would recompute
them (issue 28): a student's teachers are fixed, so where their logits on the training
inputs cannot change from one epoch to the next, one pass gives them to every epoch, every
ALM refresh and every method of the same (teachers, labels file) that the job trains.

Exact where they are cached, and only there (``cacheable``):
- the inputs are not augmented (the data's policy crops and flips nothing): the same
  example is the same input every epoch;
- the teachers' outputs do not depend on their mode: in eval mode for the whole run
  (protocol suite), or built only of modules whose forward ignores the mode (an MLP: Linear
  layers, under protocol authors' train-mode teachers too);
- no torch.compile (a compiled teacher's kernels may differ from the eager pass).
Elsewhere (augmentation, a train-mode teacher with BatchNorm, compile) runs take today's
path: the teacher's forward on each batch.

The cache is computed in chunks of at least a training batch (the last chunk overlapping
the one before) and read by row; a batch shorter than a training batch (an epoch's last)
gets a pass of its own, because a product of a few rows may take another kernel. The
arithmetic is the same, and each example's logits are bit-identical to the per-batch pass
where the backend computes a row of a full batch independently of the rows beside it
(measured for the suite's MLPs on x86 CPUs, docs/training.md; a GPU's or a convolution
backend's kernel choice may depend on the batch size, which moves the last bits).
``RunOptions.share_teacher_work`` (runtime key ``share_teacher_work``) turns it off, for
checking the numbers and timing both paths.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

#: leaf modules whose forward is the same in train and eval mode (exact types: a subclass
#: may add dropout)
MODE_FREE = (nn.Linear, nn.ReLU, nn.GELU, nn.Identity, nn.Flatten, nn.Conv2d,
             nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d)
#: the most bytes of cached logits one process keeps (the least recently used stores go
#: first; a run whose logits alone are more takes the per-batch pass): a job of four seeds of
#: CIFAR-100 with two teachers holds 4 x 2 x 45,000 x 100 x 4 B = 144 MB
BUDGET_BYTES = 1 << 30


def _containers() -> tuple:
    """Modules with children whose own forward ignores the mode: torch's containers and
    the suite's MLP (Linear, F.relu, Linear)."""
    from benchmark.training.models import MLP

    return (nn.Sequential, nn.ModuleList, nn.ModuleDict, MLP)


def mode_free(model: nn.Module) -> bool:
    """Whether ``model``'s output does not depend on its train/eval mode: every module is a
    leaf of ``MODE_FREE`` or a known container (by exact type: a class whose forward reads
    ``self.training``, or a subclass adding dropout, is not mode-free)."""
    containers = _containers()
    for m in model.modules():
        leaf = next(m.children(), None) is None
        if type(m) not in (MODE_FREE if leaf else containers):
            return False
    return True


def cacheable(data, teachers: list[nn.Module], teachers_train: bool, compiled: bool) -> bool:
    """Whether the teachers' logits on ``data``'s training inputs are the same every epoch
    (the module docstring's conditions)."""
    return (bool(teachers) and not compiled and not data.policy.pad and not data.policy.flip
            and (not teachers_train or all(mode_free(t) for t in teachers)))


class TeacherOutputs:
    """The teachers' logits [M, N, C] on every training input of one run's data, per
    autocast dtype (the training step runs under the run's autocast, an ALM refresh
    without): computed on first use in chunks of at least ``min_rows`` rows (the last one
    overlapping the one before, never short), then read by row. A batch of fewer than
    ``min_rows`` rows (an epoch's last, short batch) gets a pass of its own, as without the
    cache: a matrix product of a few rows may take another kernel, whose last bits differ.
    ``store``: where the logits are kept (``SharedTeacherOutputs.store``: every run of the
    process with the same teachers and data reads the same)."""

    def __init__(self, store: dict, teachers: list[nn.Module], data, min_rows: int,
                 eval_batch_size: int):
        self.teachers, self.data, self.min_rows = teachers, data, min_rows
        self.chunk = max(eval_batch_size, min_rows)
        self._logits = store
        self.owner = getattr(store, "owner", None)  # a SharedTeacherOutputs store's

    def _forward(self, idx: torch.Tensor, amp_dtype) -> torch.Tensor:
        x = self.data.train_batch(idx, None)  # no augmentation: cacheable says so
        with _autocast(self.data.device, amp_dtype):
            return torch.stack([t(x) for t in self.teachers]).float()

    @torch.no_grad()
    def _compute(self, amp_dtype) -> torch.Tensor | None:
        n, device = self.data.n_train, self.data.device
        first = self._forward(torch.arange(min(n, self.chunk), device=device), amp_dtype)
        size = first.element_size() * first.shape[0] * n * first.shape[2]
        budget = self.owner.budget if self.owner is not None else BUDGET_BYTES
        if size > budget:
            return None  # too large to keep: a pass per batch
        out = torch.empty(first.shape[0], n, first.shape[2], device=device)
        out[:, :len(first[0])] = first
        for start in range(self.chunk, n, self.chunk):
            start = min(start, max(0, n - self.chunk))  # the last chunk is never short
            stop = min(start + self.chunk, n)
            out[:, start:stop] = self._forward(torch.arange(start, stop, device=device),
                                               amp_dtype)
        return out

    @torch.no_grad()
    def train_logits(self, idx: torch.Tensor, amp_dtype=None) -> torch.Tensor:
        """[M, B, C]: the teachers' logits on training positions ``idx``."""
        if len(idx) < self.min_rows:
            return self._forward(idx, amp_dtype)
        if amp_dtype not in self._logits:
            self._logits[amp_dtype] = self._compute(amp_dtype)
            if self.owner is not None:
                self.owner.trim()
        cached = self._logits[amp_dtype]
        return self._forward(idx, amp_dtype) if cached is None else cached[:, idx]


def _nbytes(store: dict) -> int:
    return sum(v.numel() * v.element_size() for v in store.values() if v is not None)


def _autocast(device: torch.device, dtype):
    """Autocast to ``dtype``, or none at all (None), whatever context the caller is in: the
    store's entry for a dtype must not depend on whether a step's autocast surrounds the
    pass that fills it."""
    if dtype is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=dtype)


class _Store(dict):
    """A store of logits (autocast dtype -> [M, N, C], None: too large to keep) that knows
    the cache holding it, to keep that cache within its budget once it is filled."""

    def __init__(self, owner: SharedTeacherOutputs):
        super().__init__()
        self.owner = owner


class SharedTeacherOutputs:
    """The process's cache: one store of logits per (teachers, data) key (no model or data
    kept alive), the least recently used dropped while the stores hold more than
    ``budget`` bytes."""

    def __init__(self, budget: int = BUDGET_BYTES):
        self.budget = budget
        self._entries: OrderedDict = OrderedDict()

    def store(self, key: tuple) -> dict:
        """The store of ``key`` (every input that decides the logits: the teachers' files
        and hashes, the labels file, the training set, the normalisation, the device); an
        empty one when there is none."""
        if key in self._entries:
            self._entries.move_to_end(key)
        else:
            self._entries[key] = _Store(self)
        self.trim()
        return self._entries[key]

    def trim(self) -> None:
        """Drop the least recently used stores while all hold more than the budget (the
        most recent stays: a run is reading it)."""
        while len(self._entries) > 1 and sum(map(_nbytes, self._entries.values())) \
                > self.budget:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


#: the one cache of this process (``noisykd train-runs`` trains a job's runs in one process)
SHARED = SharedTeacherOutputs()
