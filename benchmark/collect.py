"""results/ -> tidy frames: one row per finished run, plus what is missing or inconsistent.

No torch, no training code: tables can be rebuilt on a laptop from a copied results/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import UserError
from .grid import setup_kind, teacher_id

RUN_COLUMNS = ["dataset", "noise_id", "noise_kind", "rate", "variant", "setup_id", "setup",
               "method", "method_id", "alpha", "seed", "test_acc_best_val", "test_acc_last",
               "val_acc_best", "val_acc_last", "best_epoch", "epochs", "images_per_s",
               "train_time_s", "teacher_ids", "cell_spec", "git_commit", "git_dirty", "path"]


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable {path.name} ({exc})") from None


def _noise_fields(noise_id: str) -> dict:
    from .noise import NoiseSpec

    spec = NoiseSpec.parse(noise_id)
    return {"noise_kind": spec.kind + ("-incl" if spec.include_true else ""),
            "rate": spec.rate, "variant": spec.variant}


def _cell_spec(spec: dict) -> str:
    """The spec without what varies by seed: runs of one cell should agree on it."""
    from .runinfo import spec_hash

    keep = {k: v for k, v in spec.items() if k not in ("seed", "labels", "teachers")}
    keep["teachers"] = [{k: v for k, v in t.items() if k != "config_hash"}
                        for t in spec.get("teachers", [])]
    return spec_hash(keep)


def collect_runs(results: Path) -> pd.DataFrame:
    """Every finished student run under ``results/runs`` (its metrics.json), one row each."""
    rows = []
    for path in sorted(Path(results).glob("runs/*/*/*/*/seed*/metrics.json")):
        m = _read(path)
        parts = path.relative_to(results).parts  # runs, dataset, noise, setup, method, seedN
        spec = m["spec"]
        hp = spec.get("method", {}).get("hparams", {})
        git = m.get("provenance", {}).get("git", {})
        rows.append({
            "dataset": parts[1], "noise_id": parts[2], **_noise_fields(parts[2]),
            "setup_id": parts[3], "setup": setup_kind(parts[3]),
            "method": spec.get("method", {}).get("name", "ce"), "method_id": parts[4],
            "alpha": hp.get("alpha"), "seed": spec["seed"],
            "test_acc_best_val": m["test_acc_best_val"], "test_acc_last": m["test_acc_last"],
            "val_acc_best": m["val_acc_best"], "val_acc_last": m["val_acc_last"],
            "best_epoch": m["best_epoch"], "epochs": m["epochs"],
            "images_per_s": m.get("images_per_s"), "train_time_s": m.get("train_time_s"),
            "teacher_ids": tuple(teacher_id(t["arch"], t.get("teacher_labels"))
                                 for t in spec.get("teachers", [])),
            "cell_spec": _cell_spec(spec), "git_commit": git.get("commit"),
            "git_dirty": git.get("dirty"), "path": str(path.parent)})
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def collect_teachers(results: Path) -> pd.DataFrame:
    rows = []
    for path in sorted(Path(results).glob("teachers/*/*/*/seed*/metrics.json")):
        m = _read(path)
        parts = path.relative_to(results).parts  # teachers, dataset, noise, teacher id, seedN
        rows.append({"dataset": parts[1], "noise_id": parts[2], "teacher_id": parts[3],
                     "seed": m["spec"]["seed"], "test_acc_last": m["test_acc_last"],
                     "test_acc_best_val": m["test_acc_best_val"],
                     "agreement_given": m.get("teacher", {}).get("agreement_given"),
                     "agreement_noisy": m.get("teacher", {}).get("agreement_noisy"),
                     "path": str(path.parent)})
    return pd.DataFrame(rows, columns=["dataset", "noise_id", "teacher_id", "seed",
                                       "test_acc_last", "test_acc_best_val", "agreement_given",
                                       "agreement_noisy", "path"])


@dataclass
class Completeness:
    missing: pd.DataFrame  # expected runs without metrics.json (status: failed or not run)
    inconsistent: pd.DataFrame  # cells whose runs differ in spec or code revision
    expected_source: str


def expected_runs(results: Path) -> tuple[list[str], str]:
    """Run folders the grid expects, from results/expected_runs.json (written by the
    workflow); none when it is absent (completeness then derives them from the runs)."""
    listing = Path(results) / "expected_runs.json"
    if listing.is_file():
        return _read(listing), f"{listing.name} (the workflow's plan)"
    return [], "runs found under results/runs (no expected_runs.json)"


def completeness(results: Path, runs: pd.DataFrame) -> Completeness:
    expected, source = expected_runs(results)
    found = set(runs["path"])
    if not expected and len(runs):
        # every (dataset, noise, setup, method) seen times every seed seen for its
        # (dataset, noise)
        seeds = runs.groupby(["dataset", "noise_id"])["seed"].agg(lambda s: sorted(set(s)))
        cells = runs[["dataset", "noise_id", "setup_id", "method_id"]].drop_duplicates()
        expected = [str(Path(results) / "runs" / c.dataset / c.noise_id / c.setup_id /
                        c.method_id / f"seed{s}")
                    for c in cells.itertuples() for s in seeds[(c.dataset, c.noise_id)]]
    else:
        expected = [str(Path(results) / Path(e).relative_to("results")) for e in expected]
    rows = []
    for run_dir in sorted(set(expected) - found):
        p = Path(run_dir)
        status = "failed or interrupted" if (p / "log.csv").exists() else "not run"
        rel = p.relative_to(results).parts
        rows.append({"dataset": rel[1], "noise_id": rel[2], "setup_id": rel[3],
                     "method_id": rel[4], "seed": rel[5], "status": status})
    missing = pd.DataFrame(rows, columns=["dataset", "noise_id", "setup_id", "method_id", "seed",
                                          "status"])
    bad = []
    for key, g in runs.groupby(["dataset", "noise_id", "setup_id", "method_id"]):
        specs, commits = g["cell_spec"].nunique(), g["git_commit"].nunique(dropna=False)
        if specs > 1 or commits > 1 or g["git_dirty"].fillna(False).any():
            bad.append(dict(zip(["dataset", "noise_id", "setup_id", "method_id"], key,
                                strict=True)) | {"specs": specs, "code_revisions": commits,
                                                 "uncommitted_code": bool(
                                                     g["git_dirty"].fillna(False).any())})
    inconsistent = pd.DataFrame(bad, columns=["dataset", "noise_id", "setup_id", "method_id",
                                              "specs", "code_revisions", "uncommitted_code"])
    return Completeness(missing, inconsistent, source)
