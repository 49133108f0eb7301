"""Per-cell comparisons declared before looking: each ALM row against each declared baseline.

Per (dataset, noise, setup) cell and seed-paired on the cell's common seeds (scores.py): the
mean difference in percentage points, the paired t-test and scipy's 95% confidence interval
of the mean difference, and the Wilcoxon signed-rank p once n >= 6 (with 5 or fewer pairs
its smallest two-sided p is 2/2^5 = 0.0625). The baselines are the ones the plan names, never
one picked by its test mean (picking the best baseline by test mean and then testing against
it biases every comparison against the ALM method). Holm runs over exactly the comparisons
of one table (setup and metric), every one of which can produce a marker. A zero-variance
difference has no t-test and produces no marker.

``minimum_detectable`` says how large a difference the markers can see: the paired t-test's
80%-power effect (statsmodels) at the table's n and pooled sd of paired differences, at
Holm's first threshold and unadjusted, so that "no marker" is not read as "no effect".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

from benchmark.analysis.scores import CELL, base_method

WILCOXON_MIN_N = 6
ALPHA = 0.05
POWER = 0.8
FLAT = 1e-9  # relative sd below which paired differences count as constant
COMPARISON_COLUMNS = CELL + ["alm", "baseline", "n", "mean_diff", "sd_diff", "ci_low",
                             "ci_high", "p", "p_wilcoxon", "p_holm", "marker"]


def declared_pairs(rows, alm: tuple, baselines: tuple) -> list[tuple[str, str]]:
    """(ALM row, baseline row) for every row of a cell whose method is declared; baselines
    in the declared order."""
    alms = sorted(r for r in rows if base_method(r) in alm)
    bases = sorted((r for r in rows if base_method(r) in baselines),
                   key=lambda r: (baselines.index(base_method(r)), r))
    return [(a, b) for a in alms for b in bases]


def paired_tests(a: np.ndarray, b: np.ndarray) -> dict:
    """Paired tests of equal-length rows: ``a``, ``b`` are [cells, n] (n seeds each); one
    vectorised scipy call per test for all cells."""
    d = a - b
    k, n = d.shape
    nan = np.full(k, np.nan)
    out = {"n": np.full(k, n), "mean_diff": d.mean(1) if n else nan,
           "sd_diff": d.std(1, ddof=1) if n > 1 else nan, "ci_low": nan.copy(),
           "ci_high": nan.copy(), "p": nan.copy(), "p_wilcoxon": nan.copy()}
    if n < 2:
        return out
    # differences equal up to float noise (100 * acc rounding) are flat: no test, no marker
    spread = out["sd_diff"] > FLAT * np.maximum(1.0, np.abs(out["mean_diff"]))
    flat = ~spread
    out["ci_low"][flat] = out["ci_high"][flat] = out["mean_diff"][flat]
    if spread.any():
        res = stats.ttest_rel(a[spread], b[spread], axis=1)
        ci = res.confidence_interval(1 - ALPHA)
        out["p"][spread], out["ci_low"][spread], out["ci_high"][spread] = (
            res.pvalue, ci.low, ci.high)
        if n >= WILCOXON_MIN_N:
            out["p_wilcoxon"][spread] = stats.wilcoxon(a[spread], b[spread], axis=1).pvalue
    return out


def cell_groups(wide: pd.DataFrame, a: str, b: str):
    """Seed-aligned scores of rows a and b, per group of cells with equal n: yields
    (cells, a [cells, n], b [cells, n]); ``wide`` is indexed by cell and seed."""
    pair = wide[[a, b]].dropna()
    n = pair.groupby(level=CELL).size()
    for size, cells in n.groupby(n):
        sub = pair[pair.index.droplevel("seed").isin(cells.index)].sort_index()
        yield (cells.index, sub[a].to_numpy(float).reshape(-1, size),
               sub[b].to_numpy(float).reshape(-1, size))


def wide_scores(scores: pd.DataFrame) -> pd.DataFrame:
    return scores.pivot_table(index=CELL + ["seed"], columns="row", values="score")


def holm(p: pd.Series) -> pd.Series:
    """Holm-adjusted p over the finite entries; NaN stays NaN (no test, no claim)."""
    out = pd.Series(np.nan, index=p.index)
    ok = p.notna()
    if ok.any():
        out[ok] = multipletests(p[ok].astype(float), method="holm")[1]
    return out


def paired_comparisons(scores: pd.DataFrame, alm: tuple, baselines: tuple) -> pd.DataFrame:
    """One table's comparisons (pass one setup's and one metric's common-seed scores)."""
    parts = []
    wide = wide_scores(scores)
    for a, b in declared_pairs(wide.columns, alm, baselines):
        for cells, xa, xb in cell_groups(wide, a, b):
            parts.append(cells.to_frame(index=False).assign(alm=a, baseline=b,
                                                            **paired_tests(xa, xb)))
    out = (pd.concat(parts, ignore_index=True) if parts
           else pd.DataFrame(columns=COMPARISON_COLUMNS[:-2]))
    out = out[COMPARISON_COLUMNS[:-2]].sort_values(CELL + ["alm"], kind="stable")
    out = out.reset_index(drop=True)
    out["p_holm"] = holm(out["p"])
    out["marker"] = np.where(out["p_holm"] < ALPHA,
                             np.where(out["mean_diff"] > 0, "+", "-"), "")
    return out


def effect_for_power(n: int, alpha: float, power: float = POWER) -> float:
    """The standardised mean difference a two-sided paired t-test over n pairs detects with
    the given power: the root of statsmodels' power function, bracketed by doubling (its own
    solver does not converge at Holm-sized alphas and returns a wrong effect silently)."""
    crit = stats.t.ppf(1 - alpha / 2, n - 1)

    def excess(d: float) -> float:
        p = TTestPower().power(effect_size=d, nobs=n, alpha=alpha, alternative="two-sided")
        if not np.isfinite(p):  # far in the tail statsmodels' lower tail is NaN, and ~0
            p = stats.nct.sf(crit, n - 1, d * np.sqrt(n))
        return float(p) - power

    lo, hi = 0.0, 1.0
    while excess(hi) < 0:
        lo, hi = hi, 2 * hi
    return optimize.brentq(excess, lo, hi, xtol=1e-10, rtol=1e-10)


def minimum_detectable(comparisons: pd.DataFrame) -> dict | None:
    """The difference (points) the table's markers detect with 80% power: paired t-test at
    the most common n, pooled sd of paired differences, at Holm's first threshold alpha/m and
    unadjusted. None when no comparison has two seeds and a spread."""
    ok = comparisons[(comparisons["n"] >= 2) & comparisons["p"].notna()]
    if ok.empty:
        return None
    n = int(ok["n"].mode().max())
    sd = float(np.sqrt((ok["sd_diff"] ** 2).mean()))
    m = int(comparisons["p"].notna().sum())

    def mde(alpha: float) -> float:
        return effect_for_power(n, alpha) * sd

    return {"n": n, "sd": sd, "m": m, "holm": mde(ALPHA / max(m, 1)), "unadjusted": mde(ALPHA)}
