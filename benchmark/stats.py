"""Statistics over seeds: cell summaries, paired tests with Holm correction, ranks.

Per (dataset, noise, setup) cell: mean, std and n over seeds for every method; each ALM
method against each baseline by a paired t-test over seeds (scipy.stats.ttest_rel) with the
mean difference and its 95% confidence interval, and the Wilcoxon signed-rank test once
n >= 6 (with 5 or fewer pairs its smallest two-sided p is 2/2^5 = 0.0625, so it cannot reach
0.05 and is not printed). Holm correction (statsmodels) across all comparisons of one table.
``fixed_alpha`` enters as the run whose a had the best clean-validation accuracy in each seed
(best epoch for the primary metric, last epoch for the last-epoch one), with the chosen a.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from .grid import ALM_METHODS, BASELINE_METHODS

BASELINES = BASELINE_METHODS  # ce, kd, fixed_alpha
METRICS = {"best": ("test_acc_best_val", "val_acc_best"), "last": ("test_acc_last", "val_acc_last")}
CELL = ["dataset", "noise_id", "setup"]
WILCOXON_MIN_N = 6
ALPHA = 0.05


def method_scores(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One score per (cell, method row, seed). ce runs (setup none) join every setup's cell;
    fixed_alpha collapses to the a with the best validation accuracy per seed."""
    test_col, val_col = METRICS[metric]
    setups = sorted(set(runs["setup"]) - {"none"})
    ce = runs[runs["setup"] == "none"]
    parts = [runs[runs["setup"] != "none"]]
    for s in setups:
        parts.append(ce.assign(setup=s))
    frame = pd.concat(parts, ignore_index=True) if parts else runs
    # a method shows under its name unless one cell holds several variants of it
    variants = frame.groupby(CELL + ["method"])["method_id"].transform("nunique")
    frame = frame.assign(label=np.where((variants > 1) & (frame["method"] != "fixed_alpha"),
                                        frame["method_id"], frame["method"]))
    rows = []
    keys = CELL + ["method", "seed"]
    for key, g in frame.groupby(keys, sort=True):
        if key[3] == "fixed_alpha":
            pick = g.sort_values([val_col, "alpha"], ascending=[False, True]).iloc[0]
            rows.append(dict(zip(keys, key, strict=True)) | {
                "row": "fixed_alpha", "score": pick[test_col], "alpha": pick["alpha"]})
        else:
            for r in g.itertuples():
                rows.append(dict(zip(keys, key, strict=True)) | {
                    "row": r.label, "score": getattr(r, test_col), "alpha": np.nan})
    return pd.DataFrame(rows, columns=keys + ["row", "score", "alpha"])


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """mean, std (ddof 1), n and the chosen fixed_alpha values per cell and row."""
    def chosen(a):
        a = a.dropna()
        return ",".join(f"{v:g}" for v in a) if len(a) else ""

    g = scores.groupby(CELL + ["row"])
    out = g["score"].agg(mean="mean", std=lambda s: s.std(ddof=1) if len(s) > 1 else np.nan,
                         n="count").reset_index()
    out["alphas"] = g["alpha"].agg(chosen).values
    return out


@dataclass
class Comparison:
    cell: tuple
    alm: str
    baseline: str
    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    t_p: float
    wilcoxon_p: float | None


def paired_comparisons(scores: pd.DataFrame) -> pd.DataFrame:
    """Every ALM row against every baseline row, per cell, paired by seed; Holm-adjusted
    across all comparisons passed in (call it with one table's scores)."""
    rows = []
    for cell, g in scores.groupby(CELL):
        wide = g.pivot_table(index="seed", columns="row", values="score")
        alms = [c for c in wide.columns if c.split("-")[0] in ALM_METHODS]
        bases = [c for c in wide.columns if c.split("-")[0] in BASELINES]
        for a in alms:
            for b in bases:
                pair = wide[[a, b]].dropna()
                n = len(pair)
                if n < 2:
                    continue
                d = pair[a] - pair[b]
                mean, sd = d.mean(), d.std(ddof=1)
                if sd == 0:
                    t_p, half = (1.0 if mean == 0 else 0.0), 0.0
                else:
                    t_p = stats.ttest_rel(pair[a], pair[b]).pvalue
                    half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)
                w_p = None
                if n >= WILCOXON_MIN_N and (d != 0).any():
                    w_p = stats.wilcoxon(pair[a], pair[b]).pvalue
                rows.append({**dict(zip(CELL, cell, strict=True)), "alm": a, "baseline": b,
                             "n": n, "mean_diff": mean, "ci_low": mean - half,
                             "ci_high": mean + half, "t_p": t_p, "wilcoxon_p": w_p})
    out = pd.DataFrame(rows, columns=CELL + ["alm", "baseline", "n", "mean_diff", "ci_low",
                                            "ci_high", "t_p", "wilcoxon_p"])
    if len(out):
        out["t_p_holm"] = multipletests(out["t_p"], method="holm")[1]
        has_w = out["wilcoxon_p"].notna()
        out["wilcoxon_p_holm"] = np.nan
        if has_w.any():
            out.loc[has_w, "wilcoxon_p_holm"] = multipletests(
                out.loc[has_w, "wilcoxon_p"].astype(float), method="holm")[1]
    else:
        out["t_p_holm"] = []
        out["wilcoxon_p_holm"] = []
    return out


def markers(summary: pd.DataFrame, comparisons: pd.DataFrame) -> dict:
    """(cell, alm row) -> "+" / "-" when it is significantly better / worse (Holm-adjusted
    paired t-test) than the best baseline of the cell (highest mean)."""
    out = {}
    for cell, g in summary.groupby(CELL):
        base = g[g["row"].str.split("-").str[0].isin(BASELINES)]
        if base.empty:
            continue
        best = base.sort_values("mean", ascending=False).iloc[0]["row"]
        c = comparisons
        sel = c[(c[CELL] == pd.Series(cell, index=CELL)).all(axis=1) & (c["baseline"] == best)]
        for r in sel.itertuples():
            if r.t_p_holm < ALPHA:
                out[(cell, r.alm)] = "+" if r.mean_diff > 0 else "-"
    return out


def ranks(summary: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Average rank of each row across cells (1 = best mean) and a Friedman test over the
    cells in which every row has a score."""
    wide = summary.pivot_table(index=CELL, columns="row", values="mean").dropna(axis=0)
    if wide.empty:
        return pd.DataFrame(columns=["row", "avg_rank", "cells"]), {}
    rank = wide.rank(axis=1, ascending=False)
    avg = rank.mean().sort_values().rename("avg_rank").reset_index()
    avg["cells"] = len(wide)
    test = {}
    if wide.shape[1] >= 3 and wide.shape[0] >= 2:
        res = stats.friedmanchisquare(*[wide[c].values for c in wide.columns])
        test = {"statistic": float(res.statistic), "p": float(res.pvalue),
                "cells": int(wide.shape[0]), "methods": int(wide.shape[1])}
    return avg, test
