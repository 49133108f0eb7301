"""The aggregate verdict per setup: does an ALM method beat a baseline across all cells?

Per setup, metric and declared (ALM row, baseline row), over every cell where both have at
least two common seeds:
- ``mean_diff``: the mean over cells of the per-cell mean paired difference (points);
- ``ci_low``/``ci_high``: its 95% percentile bootstrap interval, stratified by cell (seeds
  are resampled within each cell, cells kept: ``scipy.stats.bootstrap`` resamples each of
  several samples independently, which is exactly that). Resampling n seeds shrinks a
  cell's variance by (n - 1)/n, which with 5 seeds left the interval covering the true
  difference about 90% of the time in simulation; each cell's differences are therefore
  resampled as modified residuals, mean + (d - mean) * sqrt(n / (n - 1)) (Davison and
  Hinkley 1997, sec. 6.2.3, with leverage 1/n), whose bootstrap variance is the unbiased one;
- ``p_wilcoxon``: the Wilcoxon signed-rank test over the per-cell mean differences (cells
  are the independent units; under "no difference in any cell" each cell's mean difference
  is symmetric about 0, so the test is exact);
- ``prob_improvement``: rliable's probability of improvement, the mean over cells of
  P(X > Y) + P(X = Y)/2 for a run X of the ALM method and a run Y of the baseline (the
  Mann-Whitney U statistic over n*m pairs);
- ``p_holm``: Holm over every verdict of the report (all setups, metrics and pairs: the
  family that produces claims);
- ``verdict``: ``better`` / ``worse`` when p_holm < 0.05 and the interval excludes 0 on that
  side, else ``no difference``.

With few cells the Wilcoxon test cannot reach 0.05: its smallest two-sided p is 2/2^k over k
cells, and Holm multiplies the smallest p of the family by its size m, so a verdict needs
2/2^k * m < 0.05 (``min_cells``: 6 cells alone, 10 in a family of 24); the verdict then
says ``no difference`` and the legend says how many cells it needs. Bootstrap streams are
seeded from the names compared, so a report is reproducible.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from scipy import stats

from .stats import ALPHA, cell_groups, declared_pairs, holm, wide_scores

VERDICT_COLUMNS = ["setup", "metric", "alm", "baseline", "n_cells", "mean_diff", "ci_low",
                   "ci_high", "p_wilcoxon", "prob_improvement", "verdict", "p_holm"]
N_RESAMPLES = 2000


def min_cells(family: int) -> int:
    """The fewest cells whose smallest Wilcoxon p survives Holm in a family of this size."""
    k = 1
    while 2 / 2 ** k * max(family, 1) >= ALPHA:
        k += 1
    return k


def _stream(*names: str) -> np.random.Generator:
    digest = hashlib.sha256("|".join(names).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _mean_of_cell_means(*cells, axis=-1):
    return np.mean([c.mean(axis=axis) for c in cells], axis=0)


def aggregate(a_cells: list[np.ndarray], b_cells: list[np.ndarray], rng) -> dict:
    """The verdict's numbers from per-cell arrays [cells, n] of seed-aligned scores (one
    array per group of cells with equal n)."""
    diffs = [d for a, b in zip(a_cells, b_cells, strict=True) for d in a - b]
    cell_means = np.array([d.mean() for d in diffs])
    out = {"n_cells": len(diffs), "mean_diff": float(cell_means.mean()) if len(diffs) else np.nan,
           "ci_low": np.nan, "ci_high": np.nan, "p_wilcoxon": np.nan,
           "prob_improvement": np.nan}
    if not diffs:
        return out
    if all(np.ptp(d) == 0 for d in diffs):  # nothing to resample
        out["ci_low"] = out["ci_high"] = out["mean_diff"]
    else:
        modified = [d.mean() + (d - d.mean()) * np.sqrt(len(d) / (len(d) - 1)) for d in diffs]
        ci = stats.bootstrap(modified, _mean_of_cell_means, n_resamples=N_RESAMPLES,
                             paired=False, vectorized=True, method="percentile",
                             confidence_level=1 - ALPHA, rng=rng).confidence_interval
        out["ci_low"], out["ci_high"] = float(ci.low), float(ci.high)
    out["p_wilcoxon"] = (float(stats.wilcoxon(cell_means).pvalue) if (cell_means != 0).any()
                         else 1.0)
    u = np.concatenate([stats.mannwhitneyu(a, b, axis=1).statistic / (a.shape[1] * b.shape[1])
                        for a, b in zip(a_cells, b_cells, strict=True)])
    out["prob_improvement"] = float(u.mean())
    return out


def setup_verdicts(scores: pd.DataFrame, setup: str, metric: str, alm: tuple,
                   baselines: tuple) -> pd.DataFrame:
    """One setup's and metric's rows (common-seed scores of that setup); p_holm and the
    verdict are set by ``finalise`` over the whole family."""
    wide = wide_scores(scores)
    out = []
    for a, b in declared_pairs(wide.columns, alm, baselines):
        groups = [(xa, xb) for _, xa, xb in cell_groups(wide, a, b) if xa.shape[1] >= 2]
        out.append({"setup": setup, "metric": metric, "alm": a, "baseline": b}
                   | aggregate([g[0] for g in groups], [g[1] for g in groups],
                               _stream(setup, metric, a, b)))
    return pd.DataFrame(out, columns=VERDICT_COLUMNS[:-2])


def finalise(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Holm over every row, then the verdict."""
    v = verdicts.copy()
    v["p_holm"] = holm(v["p_wilcoxon"])
    sig = v["p_holm"] < ALPHA
    v["verdict"] = np.select([sig & (v["ci_low"] > 0), sig & (v["ci_high"] < 0)],
                             ["better", "worse"], "no difference")
    return v[VERDICT_COLUMNS].reset_index(drop=True)
