"""Labels files: the split, clean and noisy labels of one (dataset, noise, seed).

A labels file is everything the teacher and student jobs of a seed share: train/val index
sets into the dataset's training pool, the clean and noisy training labels (validation and
test stay clean), and the noise actually realised. Its bytes depend only on its inputs, so
rerunning a labels job, today or in a year, gives the same file.

The clean data come in two splits (the clean-data budget, issue 25):

- **meta** (``val_idx``, ``val_labels``, sized by ``val_fraction``): clean data a method may
  train on (the ALM refresh objective, meta-reweighting, the clean-budget baselines);
- **select** (``select_idx``, ``select_labels``, sized by ``select_fraction`` of the pool):
  clean data that only pick an epoch or a hyper-parameter, for every method, and that no
  method trains on. It is drawn (stratified, seeded per seed) from the training-pool
  examples a ``train_subset`` leaves unused when there are any (the training set and the
  meta split are then exactly what they were without it), else from the training split,
  which shrinks by as much. Without ``select_fraction`` the file has no selection split and
  the meta split also selects (the shared set of the authors' protocol, and every labels
  file made before the split existed, byte for byte).
"""

from __future__ import annotations

import functools
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.core.atomic import write_npz_atomic
from benchmark.core.errors import UserError
from benchmark.core.hashing import file_sha256
from benchmark.core.seeds import derive_seed
from benchmark.data import DatasetRecord, dataset_names, get_entry, load_dataset
from benchmark.data.cifar_n import load_human_labels
from benchmark.data.noise import NoiseSpec, apply_noise, realised_transition
from benchmark.spec import schema

LABELS_SCHEMA_VERSION = 1
#: the clean meta split's share of the training pool: the config's default (schema.yaml)
DEFAULT_VAL_FRACTION = schema.schema()["properties"]["val_fraction"]["default"]


@dataclass(frozen=True)
class LabelsRequest:
    dataset: str
    noise: NoiseSpec
    seed: int
    val_fraction: float = DEFAULT_VAL_FRACTION
    data_root: Path | None = None
    download: bool = False
    cifar_n_dir: Path | None = None
    train_subset: int | None = None  # keep this many training examples (stratified, seeded)
    # The selection split: clean examples that only pick an epoch or a hyper-parameter, which
    # no method trains on. None (or 0): none, the validation set does both (the shared set of
    # the authors' protocol and of every labels file made before the split existed).
    select_fraction: float | None = None

    def validate(self) -> None:
        """Everything that can be checked without reading data, so bad input fails first."""
        entry = get_entry(self.dataset)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise UserError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise UserError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if self.train_subset is not None and (
                isinstance(self.train_subset, bool) or not isinstance(self.train_subset, int)
                or self.train_subset < 1):
            raise UserError(f"train_subset must be a positive integer, got {self.train_subset!r}")
        sel = self.select_fraction
        if sel is not None and (isinstance(sel, bool) or not isinstance(sel, (int, float))
                                or not 0.0 <= sel < 1.0 or sel + self.val_fraction >= 1.0):
            raise UserError(f"select_fraction must be in [0, 1) and leave training data beside "
                            f"val_fraction {self.val_fraction}, got {sel!r}")
        if self.noise.kind == "human":
            if not entry.human_variants:
                with_human = [n for n in dataset_names() if get_entry(n).human_variants]
                raise UserError(f"dataset {self.dataset!r} has no human noisy labels; human "
                                f"noise exists for {', '.join(with_human)}")
            if self.noise.variant not in entry.human_variants:
                raise UserError(f"human noise variant {self.noise.variant!r} does not exist for "
                                f"{self.dataset}; variants: {', '.join(entry.human_variants)}")


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int):
    """Stratified train/val indices into the pool, both sorted (original order kept)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    try:
        train, val = train_test_split(idx, test_size=val_fraction, stratify=labels,
                                      random_state=seed % 2**32)
    except ValueError as exc:
        raise UserError(f"cannot carve a stratified {val_fraction:.0%} validation split: "
                        f"{exc}") from None
    return np.sort(train), np.sort(val)


def _stratified_draw(labels: np.ndarray, idx: np.ndarray, size: int, seed: int,
                     what: str) -> np.ndarray:
    """``size`` of the pool indices ``idx``, stratified by class, sorted."""
    from sklearn.model_selection import train_test_split

    try:
        keep, _ = train_test_split(idx, train_size=size, stratify=labels[idx],
                                   random_state=seed % 2**32)
    except ValueError as exc:
        raise UserError(f"cannot draw a stratified {what} of {size}: {exc}") from None
    return np.sort(keep)


def stratified_subset(labels: np.ndarray, idx: np.ndarray, size: int, seed: int) -> np.ndarray:
    """A stratified subset of ``size`` of the pool indices ``idx`` (sorted): a smaller training
    set with the class proportions of the full one, the same for every method of a seed."""
    if size >= len(idx):
        raise UserError(f"train_subset {size} is not smaller than the training split "
                        f"({len(idx)} examples after the validation split)")
    return _stratified_draw(labels, idx, size, seed, "train_subset")


def select_split(labels: np.ndarray, idx: np.ndarray, size: int, seed: int,
                 source: str) -> np.ndarray:
    """A stratified draw of ``size`` pool indices from ``idx`` (sorted): the selection split."""
    if size < labels.max() + 1 or size >= len(idx):
        raise UserError(f"cannot carve a selection split of {size} examples from the {source} "
                        f"({len(idx)} examples): it needs at least one per class and must leave "
                        "some; change select_fraction")
    return _stratified_draw(labels, idx, size, seed, "selection split")


def build_labels(req: LabelsRequest, record: DatasetRecord | None = None) -> dict[str, np.ndarray]:
    """The arrays of a labels file (see ``write_labels``)."""
    req.validate()
    entry = get_entry(req.dataset)
    human = None
    if req.noise.kind == "human":  # read before the dataset: a missing file fails fast
        human = load_human_labels(entry, req.noise.variant, cifar_n_dir=req.cifar_n_dir,
                                  data_root=req.data_root)
    if record is None:
        record = load_dataset(req.dataset, req.data_root, req.download)
    pool_y = record.train_y
    c = record.num_classes

    split_seed = derive_seed(req.seed, "split", req.dataset)
    # the stream id, not the id: both instance features forms draw the same stream
    noise_seed = derive_seed(req.seed, "noise", req.dataset, req.noise.stream_id)
    train_idx, val_idx = stratified_split(pool_y, req.val_fraction, split_seed)
    extra_meta, extra_seeds, extra_arrays = {}, {}, {}
    n_select = round((req.select_fraction or 0.0) * len(pool_y))
    if n_select:
        extra_seeds["select"] = derive_seed(req.seed, "select", req.dataset)
    if n_select and req.train_subset is None:  # from the training split: it shrinks
        select_idx = select_split(pool_y, train_idx, n_select, extra_seeds["select"],
                                  "training split")
        train_idx = np.setdiff1d(train_idx, select_idx)
        source = "training split"
    if req.train_subset is not None:  # keys only when set: other labels files keep their bytes
        extra_seeds["subset"] = derive_seed(req.seed, "subset", req.dataset)
        extra_meta.update(train_subset=req.train_subset, n_train_split=int(len(train_idx)))
        full_train = train_idx
        train_idx = stratified_subset(pool_y, train_idx, req.train_subset, extra_seeds["subset"])
        if n_select:  # from the examples the subset leaves unused: training is unchanged
            select_idx = select_split(pool_y, np.setdiff1d(full_train, train_idx), n_select,
                                      extra_seeds["select"], "training pool the subset leaves")
            source = "unused training pool"
    if n_select:  # keys and arrays only when set: labels files without one keep their bytes
        extra_arrays = {"select_idx": select_idx.astype(np.int64),
                        "select_labels": pool_y[select_idx].astype(np.int64)}
        extra_meta.update(select_fraction=req.select_fraction, n_select=int(n_select),
                          select_source=source)
    clean = pool_y[train_idx]

    human_noisy = features = None
    if human is not None:
        if len(human.clean) != len(pool_y) or not np.array_equal(human.clean, pool_y):
            raise UserError(f"{human.path}: its clean_label does not match {req.dataset}'s "
                            "training labels in torchvision order (wrong file or dataset copy)")
        human_noisy = human.noisy[train_idx]
        extra_meta["human_file"] = {"name": human.path.name, "md5": human.md5,
                                    "published_md5_match": human.verified}
    if req.noise.kind == "instance":  # what Xia et al.'s projection scores (noise.py)
        x = record.train_x[train_idx]
        features = record.raw_features(x) if req.noise.features == "raw" else record.features(x)

    result = apply_noise(req.noise, clean, c, np.random.default_rng(noise_seed),
                         dataset=req.dataset, features=features, human_noisy=human_noisy)
    realised = realised_transition(clean, result.noisy, c)
    meta = {
        "format": "noisykd-labels",
        "schema_version": LABELS_SCHEMA_VERSION,
        "dataset": req.dataset,
        "dataset_fingerprint": record.fingerprint(),
        "num_classes": c,
        "class_names": list(record.class_names),
        "input_shape": list(record.input_shape),
        "n_pool": int(len(pool_y)),
        "n_train": int(len(train_idx)),
        "n_val": int(len(val_idx)),
        "n_test": int(len(record.test_y)),
        "test_source": record.test_source,
        "val_fraction": req.val_fraction,
        "noise": req.noise.to_dict(),
        "noise_description": result.description,
        "rate_requested": req.noise.rate,
        "rate_expected": float(result.flip_prob.mean()) if len(clean) else 0.0,
        "rate_realised": float(np.mean(result.noisy != clean)) if len(clean) else 0.0,
        "seed": req.seed,
        "seeds": {"split": split_seed, "noise": noise_seed, **extra_seeds},
        **extra_meta,
    }
    return {
        "train_idx": train_idx.astype(np.int64),
        "val_idx": val_idx.astype(np.int64),
        "train_clean": clean.astype(np.int64),
        "train_noisy": result.noisy.astype(np.int64),
        "val_labels": pool_y[val_idx].astype(np.int64),
        **extra_arrays,
        "test_labels": record.test_y.astype(np.int64),
        "flip_prob": result.flip_prob.astype(np.float64),
        "transition_expected": result.expected_transition.astype(np.float64),
        "transition_realised": realised,
        "meta": np.array(json.dumps(meta, sort_keys=True)),
    }


def write_labels(req: LabelsRequest, out: str | Path, record: DatasetRecord | None = None) -> dict:
    arrays = build_labels(req, record)
    write_npz_atomic(out, arrays)
    return json.loads(str(arrays["meta"]))


@dataclass(frozen=True)
class LabelsFile:
    path: Path
    arrays: dict[str, np.ndarray]
    meta: dict

    @functools.cached_property
    def sha256(self) -> str:
        """The file's sha256, read once (a run's spec and each teacher check use it)."""
        return file_sha256(self.path)

    def check_dataset(self, record: DatasetRecord) -> None:
        """Refuse a labels file that was made from another dataset (or another copy of it)."""
        if self.meta["dataset"] != record.name or \
                self.meta["dataset_fingerprint"] != record.fingerprint():
            raise UserError(f"{self.path}: labels file is for {self.meta['dataset']} "
                            f"(fingerprint {self.meta['dataset_fingerprint']}), not for "
                            f"{record.name} (fingerprint {record.fingerprint()})")


def read_labels(path: str | Path) -> LabelsFile:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        why = "empty file" if isinstance(exc, EOFError) else exc
        raise UserError(f"{path}: not a readable labels file: {why}") from None
    if not isinstance(meta, dict) or meta.get("format") != "noisykd-labels":
        raise UserError(f"{path}: not a NoisyKD labels file")
    if meta.get("schema_version") != LABELS_SCHEMA_VERSION:
        raise UserError(f"{path}: labels schema {meta.get('schema_version')}, this code reads "
                        f"{LABELS_SCHEMA_VERSION}; rebuild it with `noisykd labels`")
    return LabelsFile(path, arrays, meta)


def noise_features(meta: dict) -> str | None:
    """What a labels file's instance noise projected: ``raw`` or ``standardised`` (files
    written before the choice existed have no ``features`` and projected standardised
    inputs); None for other noise kinds."""
    noise = meta["noise"]
    if noise.get("kind") != "instance":
        return None
    return noise.get("features") or "standardised"


def noise_label(meta: dict) -> str:
    """The noise id, with what instance noise projected (``instance_0.40 (raw inputs)``): an
    ``instance`` file written before the raw form existed says ``standardised``."""
    form = noise_features(meta)
    return meta["noise"]["id"] + (f" ({form} inputs)" if form else "")


def summary_line(meta: dict) -> str:
    req = meta["rate_requested"]
    req_s = "-" if req is None else f"{req:.3f}"
    return (f"{meta['dataset']} {noise_label(meta)} seed {meta['seed']}: requested {req_s}, "
            f"expected {meta['rate_expected']:.4f}, realised {meta['rate_realised']:.4f} "
            f"(train {meta['n_train']}{_subset_note(meta)}, val {meta['n_val']}, "
            f"test {meta['n_test']})")


def _subset_note(meta: dict) -> str:
    if meta.get("train_subset") is None:
        return ""
    return f" of {meta['n_train_split']}, stratified subset"



def print_summary(meta: dict, stream=None) -> None:
    print(summary_line(meta), file=stream or sys.stdout)  # sys.stdout as it is now
