"""Teacher models: their files, how students load them, and what a teacher's metrics add.

Setups (DESIGN.md): ``single`` (one larger architecture), ``multi`` (several, one KD term
each) and ``self`` (the student's own architecture, a separately initialised network:
its init seed is derived for the teacher role). A student loads its teachers from their
last-epoch weights by default (``teacher_checkpoint: last``, as the ALM-KD authors did) or
their best clean-validation weights (``best_val``), in eval mode, BatchNorm statistics
frozen, gradients off.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.core.atomic import atomic_path
from benchmark.core.errors import UserError
from benchmark.data import DatasetRecord
from benchmark.data.labels import LabelsFile

SETUPS = ("single", "multi", "self")


def save_model_file(path: Path, state_dict: dict, meta: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({"meta": meta, "state_dict": state_dict}, tmp)


def load_teacher_model(path: Path, info: dict, record: DatasetRecord, lf: LabelsFile):
    """The teacher network of ``path`` in eval mode, checked against its recorded spec."""
    from benchmark.training.models import create_model

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta, state = blob["meta"], blob["state_dict"]
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise UserError(f"teacher model {path} is unreadable: {exc}") from None
    expected = {"arch": info["arch"], "config_hash": info["config_hash"],
                "num_classes": record.num_classes,
                "dataset_fingerprint": lf.meta["dataset_fingerprint"]}
    wrong = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
    if wrong:
        detail = "; ".join(f"{k}: file has {a!r}, spec says {b!r}" for k, (a, b) in wrong.items())
        raise UserError(f"teacher model {path} does not match its spec ({detail})")
    model = create_model(info["arch"], record.num_classes, record.input_shape)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"teacher model {path} does not fit {info['arch']}: {exc}") from None
    return model.eval()


@torch.no_grad()
def train_agreement(trainer, data) -> dict:
    """How often the trained teacher's top class equals the training labels (no augmentation):
    the labels it was given, the noisy ones and the clean ones."""
    trainer.model.eval()
    preds = []
    for x, _ in data.eval_batches("train", trainer.cfg.eval_batch_size):
        preds.append(trainer.fn(x)[1].argmax(1))
    pred = torch.cat(preds)
    return {
        "agreement_given": (pred == data.y_train).float().mean().item(),
        "agreement_noisy": (pred == data.y_noisy).float().mean().item(),
        "agreement_clean": (pred == data.y_clean).float().mean().item(),
    }
