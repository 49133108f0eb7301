"""The whole dataset as tensors on the training device, augmented there in batch.

As in airbench: no DataLoader, no workers, no per-batch host-to-device copies. Images stay
uint8 on the device (CIFAR-10's 45,000 training images are 138 MB); each batch is gathered,
converted, randomly cropped from a zero-padded copy and flipped in one pass, then
normalised, which is what torchvision's RandomCrop(padding) + RandomHorizontalFlip +
Normalize do per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.core.errors import UserError
from benchmark.data import DatasetRecord
from benchmark.data.labels import LabelsFile


@dataclass(frozen=True)
class AugmentPolicy:
    pad: int  # random-crop padding in pixels (0: no crop)
    flip: bool

    @classmethod
    def resolve(cls, name: str, record: DatasetRecord) -> AugmentPolicy:
        if not record.is_image or name == "none":
            return cls(0, False)
        size = record.input_shape[-1]
        if name == "auto" and size < 28:
            return cls(0, False)  # digits (8x8): no augmentation
        pad = 4 if size >= 32 else 2
        return cls(pad, name in ("auto", "crop_flip"))


def crop_flip(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Random crops of a zero-padded batch [B, C, H, W] and random horizontal flips."""
    b, c, h, w = x.shape
    if pad:
        xp = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=x.device)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen, device=x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        bi = torch.arange(b, device=x.device)[:, None, None, None]
        ci = torch.arange(c, device=x.device)[None, :, None, None]
        x = xp[bi, ci, rows, cols]
    if flip:
        mask = torch.rand(b, generator=gen, device=x.device) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


#: what a run trains on: the training split (noisy labels unless a teacher trains on the
#: clean ones), the meta split alone (clean labels), or both (ce_union, kd_union)
TRAIN_SETS = ("train", "meta", "union")


class DeviceData:
    """Train/val/select/test tensors of one labels file on one device. ``val`` is the meta
    split (clean data a method may train on; alias ``meta``), ``select`` the selection split
    (the meta split itself when the labels file has none)."""

    def __init__(self, record: DatasetRecord, labels: LabelsFile, device: torch.device,
                 augment: str = "auto", train_labels: str = "noisy",
                 channels_last: bool = False, raw_features: bool = False,
                 train_set: str = "train"):
        labels.check_dataset(record)
        if train_labels not in ("noisy", "clean"):
            raise UserError(f"train_labels must be noisy or clean, got {train_labels!r}")
        if train_set not in TRAIN_SETS:
            raise UserError(f"train_set must be one of {', '.join(TRAIN_SETS)}, got "
                            f"{train_set!r}")
        a = labels.arrays
        self.device = device
        self.record = record
        self.is_image = record.is_image
        self.policy = AugmentPolicy.resolve(augment, record)
        self.channels_last = channels_last and record.is_image
        self.num_classes = record.num_classes
        self.input_shape = record.input_shape
        pool_x = record.train_x
        self.train_idx = a["train_idx"]  # positions in the dataset's training pool
        self.x_train = self._inputs(pool_x[a["train_idx"]])
        self.x_val = self._inputs(pool_x[a["val_idx"]])
        self.x_test = self._inputs(record.test_x)
        to = lambda v: torch.as_tensor(v, dtype=torch.long, device=device)  # noqa: E731
        self.y_noisy = to(a["train_noisy"])
        self.y_clean = to(a["train_clean"])
        self.y_train = self.y_noisy if train_labels == "noisy" else self.y_clean
        self.y_val = to(a["val_labels"])
        self.y_test = to(a["test_labels"])
        # the selection split (epoch and alpha selection only); without one in the labels
        # file, the meta split ("val") selects too: the shared set
        self.shared_selection = "select_idx" not in a
        if self.shared_selection:
            self.x_select, self.y_select = self.x_val, self.y_val
        else:
            self.x_select = self._inputs(pool_x[a["select_idx"]])
            self.y_select = to(a["select_labels"])
        # which examples a step trains on (benchmark/methods: a method's ``train_set``):
        # the training split with its labels, the meta split alone with its clean labels, or
        # their union; ``train_is_clean`` marks the examples whose label is a clean one
        n_meta = len(self.y_val)
        self.train_set = train_set
        self.train_is_clean = torch.zeros(len(self.y_train), dtype=torch.bool, device=device)
        if train_set == "meta":
            self.train_idx = a["val_idx"]
            self.x_train, self.y_train = self.x_val, self.y_val
            self.y_noisy = self.y_clean = self.y_val
            self.train_is_clean = torch.ones(n_meta, dtype=torch.bool, device=device)
        elif train_set == "union":
            self.train_idx = np.concatenate([a["train_idx"], a["val_idx"]])
            self.x_train = torch.cat([self.x_train, self.x_val])
            self.y_train = torch.cat([self.y_train, self.y_val])
            self.y_noisy = torch.cat([self.y_noisy, self.y_val])
            self.y_clean = torch.cat([self.y_clean, self.y_val])
            self.train_is_clean = torch.cat([self.train_is_clean,
                                             torch.ones(n_meta, dtype=torch.bool, device=device)])
        shape = (1, -1, 1, 1) if record.is_image else (1, -1)
        mean, std = record.mean, record.std
        if raw_features and not record.is_image:  # fed as the authors' loader gives them
            mean, std = [0.0] * len(mean), [1.0] * len(std)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(shape)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(shape)

    def _inputs(self, x) -> torch.Tensor:
        return torch.as_tensor(x).to(self.device)

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return {"train": (self.x_train, self.y_train), "val": (self.x_val, self.y_val),
                "meta": (self.x_val, self.y_val), "select": (self.x_select, self.y_select),
                "test": (self.x_test, self.y_test)}[split]

    def _normalise(self, x: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Float inputs as the model sees them; with ``gen``, augmented first (images)."""
        if self.is_image:
            x = x.float().div_(255.0)
            if gen is not None and (self.policy.pad or self.policy.flip):
                x = crop_flip(x, self.policy.pad, self.policy.flip, gen)
        x = (x.float() - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def train_batch(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self._normalise(self.x_train[idx], gen)

    def batch(self, split: str, idx: torch.Tensor, gen: torch.Generator | None = None):
        """Inputs at positions ``idx`` of a split, normalised; augmented as in training when
        ``gen`` is given (the authors' refresh draws validation batches that way)."""
        return self._normalise(self._split(split)[0][idx], gen)

    def eval_batches(self, split: str, batch_size: int):
        x, y = self._split(split)
        for start in range(0, len(y), batch_size):
            yield self._normalise(x[start:start + batch_size]), y[start:start + batch_size]
