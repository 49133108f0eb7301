"""Results trees with known truths, for the statistics' calibration and power.

accuracy = 0.70 + seed effect (shared by every method of one cell and seed: the paired
design) + the method's true gain + run noise, for 20 (dataset, noise) cells, 5 seeds,
methods ce, kd, fixed_alpha at two alphas, almkd and amal; validation accuracy has its own
noise, so fixed_alpha's per-seed choice is independent of the test numbers. Shares no code
with benchmark/: a run frame has the columns ``collect_runs`` gives, and ``write_tree``
writes the same runs as metrics.json files in the results layout.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

DATASETS = ("d0", "d1", "d2", "d3")
NOISES = tuple(f"symmetric_0.{r}0" for r in range(1, 6))
SETUP_ID = "single-mlp_8"
METHODS = (("ce", "ce", None), ("kd", "kd", None), ("fixed_alpha", "fixed_alpha-a0.30", 0.3),
           ("fixed_alpha", "fixed_alpha-a0.70", 0.7), ("almkd", "almkd", None),
           ("amal", "amal", None))


def simulate_runs(rng: np.random.Generator, gain=None, run_sd: float = 1.0, seeds: int = 5,
                  datasets=DATASETS, noises=NOISES, seed_sd: float = 2.0) -> pd.DataFrame:
    """A runs frame; ``gain(method, cell_index) -> points`` is the true gain over 70%
    (0 for every method when None); ``run_sd`` and ``seed_sd`` in points."""
    rows = []
    cells = [(d, n) for d in datasets for n in noises]
    for c, (dataset, noise) in enumerate(cells):
        for seed in range(seeds):
            shared = rng.normal(0, seed_sd)
            for method, method_id, alpha in METHODS:
                true = gain(method, c) if gain else 0.0
                acc = (70 + shared + true + rng.normal(0, run_sd)) / 100
                val = (70 + true + rng.normal(0, run_sd)) / 100
                setup_id = "none" if method == "ce" else SETUP_ID
                rows.append(run_row(dataset, noise, setup_id, method, method_id, alpha, seed,
                                    acc, val))
    return pd.DataFrame(rows)


def run_row(dataset, noise, setup_id, method, method_id, alpha, seed, acc, val, **extra):
    return {"dataset": dataset, "noise_id": noise, "setup_id": setup_id,
            "setup": "none" if setup_id == "none" else setup_id.split("-")[0],
            "method": method, "method_id": method_id, "alpha": alpha, "seed": seed,
            "test_acc_best_val": acc, "test_acc_last": acc, "val_acc_best": val,
            "val_acc_last": val, "teacher_ids": () if setup_id == "none" else ("mlp_8",),
            "cell_spec": "s", "shared_spec": "s", "teacher_spec": "" if setup_id == "none"
            else "t", "git_commit": "c0", "git_dirty": False,
            "path": f"results/runs/{dataset}/{noise}/{setup_id}/{method_id}/seed{seed}",
            "hparams": "{}", **extra}


def metrics_json(r: dict, epochs: int = 20, commit: str = "c0", teacher: str = "mlp_8") -> dict:
    """The metrics.json of a run row (the fields the report reads, in the real schema)."""
    hp = json.loads(r.get("hparams") or "{}")  # the given ones (collect resolves defaults)
    hp.update({"alpha": r["alpha"]} if r["alpha"] is not None else {})
    teachers = [] if r["setup_id"] == "none" else [
        {"arch": teacher, "checkpoint": "last", "config_hash": "x", "teacher_labels": "noisy"}]
    return {
        "schema_version": 1, "kind": "student", "epochs": epochs, "best_epoch": epochs - 1,
        "test_acc_best_val": r["test_acc_best_val"], "test_acc_last": r["test_acc_last"],
        "val_acc_best": r["val_acc_best"], "val_acc_last": r["val_acc_last"],
        "images_per_s": 1000.0, "train_time_s": 1.0,
        "provenance": {"git": {"commit": commit, "dirty": False}},
        "spec": {"arch": "mlp_4", "dataset": r["dataset"], "kind": "student",
                 "labels": {"noise": r["noise_id"], "seed": r["seed"], "file_sha256": "f",
                            "dataset_fingerprint": "fp"},
                 "method": {"name": r["method"], "hparams": hp}, "num_classes": 10,
                 "seed": int(r["seed"]), "teachers": teachers,
                 "train": {"epochs": epochs, "lr": 0.1, "protocol": "suite"}}}


def write_tree(results: Path, runs: pd.DataFrame, plan: bool = True, **metrics_kw) -> None:
    """Write every run's metrics.json (and, with ``plan``, expected_runs.json naming them
    all and declaring the comparisons)."""
    results = Path(results)
    for r in runs.to_dict("records"):
        d = results / Path(r["path"]).relative_to("results")
        d.mkdir(parents=True, exist_ok=True)
        (d / "metrics.json").write_text(json.dumps(metrics_json(r, **metrics_kw)))
    if plan:
        write_plan(results, list(runs["path"]))


def write_plan(results: Path, run_paths, alm=("almkd", "amal"),
               baselines=("kd", "fixed_alpha", "ce")) -> None:
    (Path(results) / "expected_runs.json").write_text(json.dumps(
        {"runs": sorted(run_paths), "comparisons": {"alm": list(alm),
                                                    "baselines": list(baselines)}}))
