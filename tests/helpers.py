"""Helpers the tests of several layers share (one place): a tiny grid, a bundle's members
and metrics, a finished run folder, simulated results."""

import hashlib
import tarfile

import numpy as np
import pandas as pd

from benchmark.core.hashing import spec_hash
from tests.simulate import simulate_runs

TINY = {
    "datasets": [{"name": "digits", "student": "mlp_16", "teacher": "mlp_32",
                  "multi_teachers": ["mlp_16", "mlp_32"],
                  "train": {"epochs": 3, "batch_size": 256, "lr": 0.1, "schedule": "cosine"}}],
    "noise": [{"type": "symmetric", "rates": [0.2]}],
    "methods": ["ce", "kd", {"name": "fixed_alpha", "alphas": [0.3, 0.7]},
                {"name": "almkd", "hparams": {"meta_start": 1, "meta_every": 1}}],
    "seeds": [0, 1],
}


def bundle_metrics(kind, dataset, noise, seed, labels_bytes, acc, method="ce", teacher=None):
    """``teacher``: the teacher's metrics (its spec hash goes into the student's spec)."""
    spec = {"kind": kind, "dataset": dataset, "arch": "mlp_8", "seed": seed, "num_classes": 3,
            "labels": {"noise": noise, "seed": seed, "dataset_fingerprint": "fp",
                       "file_sha256": hashlib.sha256(labels_bytes).hexdigest()},
            "method": {"name": method, "hparams": {}},
            "teachers": [{"arch": "mlp_8", "config_hash": teacher["config_hash"]}]
            if teacher else [],
            "train": {"epochs": 2}}
    return {"kind": kind, "spec": spec, "config_hash": spec_hash(spec), "epochs": 2,
            "best_epoch": 1, "test_acc_best_val": acc, "test_acc_last": acc,
            "val_acc_best": acc, "val_acc_last": acc,
            "provenance": {"git": {"commit": "c0", "dirty": False},
                           "versions": {"torch": "x"}, "device": "cpu"}}


def bundle_members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def make_run(root, rel):
    """A finished run folder and its checkpoint folder under ``root``."""
    run = root / rel
    ckpt = root / rel.replace("results/default/", "results/default/checkpoints/", 1)
    for d in (run, ckpt / "finished"):
        d.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    (ckpt / "finished" / "metrics.json").write_text("{}")
    return run, ckpt


def small_runs(seed=0, gain=None):
    """4 cells (2 datasets x 2 noises), 5 seeds."""
    return simulate_runs(np.random.default_rng(seed), gain=gain, datasets=("d0", "d1"),
                         noises=("symmetric_0.20", "symmetric_0.40"))


def moderator_scores(rng, interaction, n_strata=6, seeds=5, sd=1.0):
    """Scores of cells in two teacher conditions over n_strata (dataset, noise) strata:
    almkd - kd is +interaction/2 with noisy-label teachers and -interaction/2 with clean."""
    rows = []
    for c in range(n_strata):
        dataset, noise = f"d{c // 3}", f"symmetric_0.{c % 3 + 1}0"
        for s in range(seeds):
            shared = rng.normal(0, 2)
            for setup, gain in (("single", interaction / 2), ("single-cleanT", -interaction / 2)):
                kd = 70 + shared + rng.normal(0, sd)
                for row, v in (("kd", kd), ("almkd", 70 + shared + gain + rng.normal(0, sd))):
                    rows.append({"dataset": dataset, "noise_id": noise, "setup": setup,
                                 "seed": s, "row": row, "score": v, "method": row})
    return pd.DataFrame(rows)
