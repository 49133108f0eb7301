"""results/ -> tidy frames: one row per finished run and one per teacher.

No torch, no training code: tables can be rebuilt on a laptop from a copied results/.
What is missing, extra, duplicated or mixed is judged in ``completeness.py``. Every
metrics.json is checked against its declared schema (benchmark/spec/run_metrics.py) as it is
read: a NaN, missing or string accuracy stops the reader with one line naming the file and
key, before any number is used.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd

from benchmark.core.layout import StudyLayout, setup_kind, teacher_id
from benchmark.spec.run_metrics import read_metrics
from methods.catalog import selected_hparam

RUN_COLUMNS = ["dataset", "noise_id", "noise_kind", "rate", "variant", "setup_id", "setup",
               "method", "method_id", "alpha", "seed", "test_acc_best_val", "test_acc_last",
               "val_acc_best", "val_acc_last", "best_epoch", "epochs", "images_per_s",
               "train_time_s", "teacher_ids", "cell_spec", "shared_spec", "teacher_spec",
               "git_commit", "git_dirty", "path", "train_subset", "hparams"]
TEACHER_COLUMNS = ["dataset", "noise_id", "teacher_id", "seed", "test_acc_last",
                   "test_acc_best_val", "agreement_given", "agreement_noisy", "agreement_clean",
                   "path"]


def resolved_hparams(method: str, given: dict) -> str:
    """A run's hyper-parameters as its method resolves them: the given ones over the method's
    defaults (methods/catalog.py), as a compact JSON object with sorted keys, so that a
    variant that gives the defaults explicitly and one that gives nothing are the same."""
    from methods.catalog import HPARAM_DEFAULTS

    return json.dumps({**HPARAM_DEFAULTS.get(method, {}), **dict(given or {})},
                      sort_keys=True, separators=(",", ":"))




@functools.cache
def _noise_fields(noise_id: str) -> dict:
    from benchmark.data.noise import NoiseSpec

    spec = NoiseSpec.parse(noise_id)
    # the variant has its own column: human noise is one kind here
    return {"noise_kind": "human" if spec.kind == "human" else spec.kind_id,
            "rate": spec.rate, "variant": spec.variant}


def _spec_hashes(spec: dict) -> dict:
    """Hashes of the parts of a spec that runs of one table cell must share.

    ``cell_spec``: everything but what varies by seed (the seeds of one method agree on it);
    ``shared_spec``: that, less the method and its teachers (every method of the cell, ce
    too, agrees on it: data, noise, student, training); ``teacher_spec``: the teachers'
    specs (every distilling method of the cell agrees on it)."""
    from benchmark.core.hashing import spec_hash

    labels = {k: v for k, v in spec.get("labels", {}).items() if k not in ("seed", "file_sha256")}
    teachers = [{k: v for k, v in t.items() if k != "config_hash"}
                for t in spec.get("teachers", [])]
    shared = {k: v for k, v in spec.items() if k not in ("seed", "labels", "teachers", "method")}
    shared["labels"] = labels
    out = {"shared_spec": spec_hash(shared), "teacher_spec": spec_hash(teachers) if teachers
           else ""}
    return {"cell_spec": spec_hash({**out, "method": spec.get("method")}), **out}


def collect_runs(results: Path) -> pd.DataFrame:
    """Every finished student run under ``results/runs`` (its metrics.json), one row each."""
    rows = []
    for path in StudyLayout.of(results).run_metrics():
        m = read_metrics(path, "student")
        parts = path.relative_to(results).parts  # runs, dataset, noise, setup, method, seedN
        spec, hp, method, git = m.spec, m.hparams, m.method, m.git
        rows.append({
            "dataset": parts[1], "noise_id": parts[2], **_noise_fields(parts[2]),
            "setup_id": parts[3], "setup": setup_kind(parts[3]),
            "method": method, "method_id": parts[4],
            "alpha": _selected_value(method, hp), "seed": m.seed,
            "test_acc_best_val": m.test_acc_best_val, "test_acc_last": m.test_acc_last,
            "val_acc_best": m.val_acc_best, "val_acc_last": m.val_acc_last,
            "best_epoch": m.best_epoch, "epochs": m.epochs,
            "images_per_s": m.get("images_per_s"), "train_time_s": m.get("train_time_s"),
            "teacher_ids": tuple(teacher_id(t["arch"], t.get("teacher_labels"))
                                 for t in m.teachers),
            **_spec_hashes(spec), "git_commit": git.get("commit"),
            "git_dirty": git.get("dirty"), "path": str(path.parent),
            "train_subset": m.labels.get("train_subset"),
            "hparams": resolved_hparams(method, hp)})
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _selected_value(method: str, hparams: dict):
    """The value of the hyper-parameter the tables choose per seed for ``method`` (the
    catalog's ``selected``; the column is named ``alpha`` after fixed_alpha's, the only
    one today), None for a method without one."""
    key = selected_hparam(method)
    return hparams.get(key) if key else None


def train_subsets(runs: pd.DataFrame) -> dict[str, list[int]]:
    """dataset -> the training-subset sizes its runs used (datasets on the whole split: none)."""
    out: dict[str, list[int]] = {}
    for dataset, subset in zip(runs["dataset"], runs["train_subset"], strict=True):
        if subset is not None and subset == subset:  # None / NaN: the whole training split
            out.setdefault(dataset, [])
            if int(subset) not in out[dataset]:
                out[dataset].append(int(subset))
    return {d: sorted(v) for d, v in sorted(out.items())}


def collect_teachers(results: Path) -> pd.DataFrame:
    """Every finished teacher, one row each; ``agreement_*``: how often its top class on the
    training split equals the labels it was given, the noisy and the clean labels (NaN where
    an older metrics.json does not record one)."""
    rows = []
    for path in StudyLayout.of(results).teacher_metrics():
        m = read_metrics(path, "teacher")
        parts = path.relative_to(results).parts  # teachers, dataset, noise, teacher id, seedN
        rows.append({"dataset": parts[1], "noise_id": parts[2], "teacher_id": parts[3],
                     "seed": m.seed, "test_acc_last": m.test_acc_last,
                     "test_acc_best_val": m.test_acc_best_val,
                     **{k: _fraction(m.get("teacher", {}).get(k)) for k in (
                         "agreement_given", "agreement_noisy", "agreement_clean")},
                     "path": str(path.parent)})
    return pd.DataFrame(rows, columns=TEACHER_COLUMNS)


def _fraction(v) -> float:
    return float("nan") if v is None else float(v)
