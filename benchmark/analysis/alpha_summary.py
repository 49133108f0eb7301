"""Per-run summaries of the ALM weights: what the figures and the alpha table need, small.

An ALM run's ``alpha.npz`` holds every instance's weights after every refresh (about 1 MB
for the authors' synthetic task, so a study of hundreds of ALM runs does not fit a
shareable bundle). The analysis needs less: per refresh, the mean teacher share of the
instances whose given label is clean and of those whose label is noisy (and where the
teacher agrees or disagrees with the given label), with their counts, and after the last
refresh the teacher share binned by the teacher's probability of the given label (sums and
counts, so that runs pool exactly) and quantiles per group. ``summarise`` computes that
from the arrays; a bundle exported with ``--alpha summary`` carries ``alpha_summary.json``
in place of ``alpha.npz``, and ``load`` reads whichever a run has (the npz first).

The teacher share of an instance is sum_m w_m / sum_k w_k over its weights (CE first),
which is the KD part of its loss whether the weights are convex (almkd) or not (amal).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.core.layout import ALPHA_NPZ, ALPHA_SUMMARY, StudyLayout, teacher_labels_of

SUMMARY_NAME = ALPHA_SUMMARY  # alpha_summary.json
FORMAT = "noisykd-alpha-summary"
VERSION = 1
BINS = 10
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
GROUPS = ("clean", "noisy", "agree", "disagree")


def _mean(x: np.ndarray) -> float | None:
    return float(x.mean()) if len(x) else None


def summarise(arrays: Mapping) -> dict | None:
    """The summary of one run's alpha arrays; None for a run without a refresh."""
    if "weights" not in arrays:
        return None
    w = np.asarray(arrays["weights"], dtype=np.float64)  # [R, N, K]
    share = w[:, :, 1:].sum(-1) / w.sum(-1)
    noisy = np.asarray(arrays["clean_labels"]) != np.asarray(arrays["noisy_labels"])
    has_diag = "teacher_agrees_noisy" in arrays
    out = {"format": FORMAT, "version": VERSION,
           "refresh_epoch": [int(e) for e in arrays["refresh_epoch"]],
           "n_instances": int(w.shape[1]), "n_noisy": int(noisy.sum()),
           "share_clean": [], "share_noisy": [], "share_agree": [], "share_disagree": [],
           "n_agree": [], "n_disagree": [], "has_teacher_diagnostics": bool(has_diag)}
    for r in range(w.shape[0]):
        out["share_clean"].append(_mean(share[r, ~noisy]))
        out["share_noisy"].append(_mean(share[r, noisy]))
        if has_diag:  # a teacher agrees when any teacher's top class is the given label
            agree = np.asarray(arrays["teacher_agrees_noisy"])[r].any(-1)
            out["share_agree"].append(_mean(share[r, agree]))
            out["share_disagree"].append(_mean(share[r, ~agree]))
            out["n_agree"].append(int(agree.sum()))
            out["n_disagree"].append(int((~agree).sum()))
    last = share[-1]
    out["quantiles_last"] = {
        "q": list(QUANTILES),
        "clean": np.quantile(last[~noisy], QUANTILES).tolist() if (~noisy).any() else None,
        "noisy": np.quantile(last[noisy], QUANTILES).tolist() if noisy.any() else None}
    if has_diag:
        prob = np.asarray(arrays["teacher_prob_noisy"])[-1].mean(-1)
        idx = np.clip(np.digitize(prob, np.linspace(0, 1, BINS + 1)) - 1, 0, BINS - 1)
        out["bins_last"] = {"edges": np.linspace(0, 1, BINS + 1).tolist(),
                            "share_sum": np.bincount(idx, last, BINS).tolist(),
                            "count": np.bincount(idx, minlength=BINS).tolist()}
    return out


def summarise_file(path: str | Path) -> dict | None:
    """The summary of an alpha.npz; one that cannot be read or summarised is UserError."""
    import zipfile

    from benchmark.core.errors import UserError

    try:
        with np.load(path, allow_pickle=False) as a:
            return summarise({k: a[k] for k in a.files})
    except (OSError, ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: unreadable alpha weights ({type(exc).__name__}: "
                        f"{str(exc)[:100]})") from None


def run_summary(run_dir: Path) -> dict | None:
    """A run's summary from its alpha.npz, else from its alpha_summary.json (checked
    against its declared schema, benchmark/spec/run_metrics.py: UserError naming the file and
    key), else None."""
    from benchmark.core.errors import UserError
    from benchmark.spec.run_metrics import check_alpha_summary

    if (run_dir / ALPHA_NPZ).is_file():
        return summarise_file(run_dir / ALPHA_NPZ)
    path = run_dir / SUMMARY_NAME
    if path.is_file():
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as exc:
            raise UserError(f"{path}: unreadable {SUMMARY_NAME} ({exc})") from None
        return check_alpha_summary(summary, str(path))
    return None


REFRESH_COLUMNS = ["dataset", "noise_id", "setup_id", "teacher_labels", "method", "seed",
                   "refresh", "epoch", "last", "n_instances", "n_noisy", "share_clean",
                   "share_noisy", "share_agree", "share_disagree", "n_agree", "n_disagree"]
BIN_COLUMNS = ["dataset", "method", "seed", "setup_id", "noise_id", "bin", "centre",
               "share_sum", "count"]


def load(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every ALM run's summary: one row per (run, refresh), and the last refresh's bins (one
    row per run and bin; runs without teacher diagnostics have none)."""
    from benchmark.analysis.scores import base_method

    rows, bins = [], []
    results = Path(results)
    for d in StudyLayout.of(results).alpha_run_dirs():
        s = run_summary(d)
        if s is None:
            continue
        parts = d.relative_to(results).parts
        ident = {"dataset": parts[1], "noise_id": parts[2], "setup_id": parts[3],
                 "teacher_labels": teacher_labels_of(parts[3]),
                 "method": base_method(parts[4]), "seed": int(parts[5].removeprefix("seed"))}
        n_ref = len(s["refresh_epoch"])
        for r, epoch in enumerate(s["refresh_epoch"]):
            diag = s["has_teacher_diagnostics"]
            rows.append({**ident, "refresh": r, "epoch": epoch, "last": r == n_ref - 1,
                         "n_instances": s["n_instances"], "n_noisy": s["n_noisy"],
                         "share_clean": s["share_clean"][r], "share_noisy": s["share_noisy"][r],
                         **{k: (s[k][r] if diag else None) for k in (
                             "share_agree", "share_disagree", "n_agree", "n_disagree")}})
        if "bins_last" in s:
            edges = np.asarray(s["bins_last"]["edges"])
            for b in range(len(edges) - 1):
                bins.append({"dataset": ident["dataset"], "method": ident["method"],
                             "seed": ident["seed"], "setup_id": ident["setup_id"],
                             "noise_id": ident["noise_id"], "bin": b,
                             "centre": (edges[b] + edges[b + 1]) / 2,
                             "share_sum": s["bins_last"]["share_sum"][b],
                             "count": s["bins_last"]["count"][b]})
    return (pd.DataFrame(rows, columns=REFRESH_COLUMNS).astype({"share_agree": float,
                                                               "share_disagree": float}),
            pd.DataFrame(bins, columns=BIN_COLUMNS))


ALPHA_TABLE_COLUMNS = ["dataset", "noise_id", "teacher_labels", "setup_id", "method", "n",
                       "share_clean", "share_noisy", "diff", "ci_low", "ci_high"]


def alpha_table(refreshes: pd.DataFrame) -> pd.DataFrame:
    """Per cell and ALM method, after the last refresh: the mean over seeds of each run's
    mean teacher share on clean-label and on noisy-label instances, and of their difference
    (noisy - clean) with a 95% t interval over seeds (each seed one observation)."""
    from scipy import stats

    if refreshes.empty:  # (a boolean mask of an empty object column would select columns)
        return pd.DataFrame(columns=ALPHA_TABLE_COLUMNS)
    last = refreshes[refreshes["last"].astype(bool)].dropna(subset=["share_clean",
                                                                    "share_noisy"])
    out = []
    keys = ["dataset", "noise_id", "teacher_labels", "setup_id", "method"]
    for key, g in last.groupby(keys, sort=True):
        d = (g["share_noisy"] - g["share_clean"]).to_numpy()
        n = len(d)
        if n >= 2 and d.std(ddof=1) > 0:
            half = stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n)
        else:
            half = float("nan") if n < 2 else 0.0
        out.append(dict(zip(keys, key, strict=True)) | {
            "n": n, "share_clean": g["share_clean"].mean(), "share_noisy": g["share_noisy"].mean(),
            "diff": d.mean(), "ci_low": d.mean() - half, "ci_high": d.mean() + half})
    return pd.DataFrame(out, columns=ALPHA_TABLE_COLUMNS)
