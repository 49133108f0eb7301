"""Verdicts with a scope: does an ALM method beat a baseline, and in what sense?

Two questions, each answered in its own row (``scope``), per setup, metric and declared
(ALM row, baseline row), over every cell where both have at least two common seeds:

- ``in_these_cells``: do the two differ on exactly these (dataset, noise) cells? Seeds are
  the replicates, each cell a stratum. Estimate: the mean over cells of the per-cell mean
  paired difference (points). Test: the stratified sign-flip (permutation) test of the
  seed-paired differences with that statistic (``scipy.stats.permutation_test``,
  ``permutation_type="samples"`` on (difference, 0) pairs: a swap flips one seed's sign and
  keeps it in its cell), exact when 2^N is at most ``EXACT_MAX`` sign patterns (N pairs),
  Monte Carlo with ``N_PERMUTATIONS`` otherwise. Interval: the 95% percentile bootstrap
  stratified by cell (seeds resampled within each cell, as modified residuals
  mean + (d - mean) * sqrt(n / (n - 1)) so a cell mean's bootstrap variance is s^2/n:
  Davison and Hinkley 1997, 6.2.3), with rliable's probability of improvement beside it.
- ``across_tasks``: would the difference hold on another task like these? Cells are the
  units. Test: the exact Wilcoxon signed-rank test over the per-cell mean differences
  (Demsar 2006); interval: the t interval of the mean over cells (cell-to-cell variation).

Both scopes test equivalence too: TOST at ``margin`` points (default 1), by the same test
shifted by -margin and +margin (both one-sided tests must reject).

Labels (the one vocabulary of the report and ``noisykd compare``: ``LABELS``):
``better`` / ``worse`` (Holm p < 0.05, direction of the estimate), ``equivalent`` (Holm TOST
p < 0.05 and no difference shown), ``inconclusive`` (testable, nothing shown), ``not
testable`` (the test's smallest attainable p cannot pass the family's threshold: 2/2^k over k
cells for Wilcoxon, 2/2^N for an exact sign-flip over N pairs, properties of the design and
not of the data (zero differences only raise p); ``cells_needed`` /
``seeds_needed`` say how many would do). Never "no difference".

Families (``finalise``): per scope, the primary metric's declared comparisons. Rows whose
test cannot reach significance at all leave the family (Tarone 1990: the smallest K with at
most K rows whose smallest attainable p is below alpha/K; the rest are ``not testable``),
then Holm over the rest, for the difference p and, separately, for the TOST p. The secondary
(last-epoch) metric is reported beside with unadjusted p and no label: it is outside the claim
family. ``mde``: the difference the row's test detects with 80% power at the family's first
Holm threshold (normal approximation from the bootstrap's standard error in these cells; the
paired t-test's effect at k cells times the sd of the cell means across tasks). Every random
stream is seeded from the names compared, so a report is reproducible.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.analysis.stats import (
    ALPHA,
    POWER,
    cell_groups,
    declared_pairs,
    effect_for_power,
    holm,
    wide_scores,
)
from benchmark.spec.vocabulary import (  # noqa: F401 (the vocabulary, re-exported)
    BETTER,
    EQUIVALENT,
    INCONCLUSIVE,
    LABELS,
    MARGIN,
    NOT_TESTABLE,
    SCOPES,
    WORSE,
)

PRIMARY = "best"
N_RESAMPLES = 2000  # bootstrap
N_PERMUTATIONS = 99_999  # Monte Carlo sign flips
EXACT_MAX = 2 ** 18  # sign patterns enumerated exactly

KEY = ["setup", "metric", "scope", "alm", "baseline"]
VERDICT_COLUMNS = KEY + [
    "n_cells", "n_pairs", "mean_diff", "ci_low", "ci_high", "ci_method", "ci_adjusted",
    "p", "p_method", "p_equivalent", "margin", "min_attainable_p", "in_family",
    "family_size", "p_holm", "p_equivalent_holm", "testable", "cells_needed",
    "seeds_needed", "mde", "prob_improvement", "verdict"]
RAW_COLUMNS = VERDICT_COLUMNS[:VERDICT_COLUMNS.index("in_family")] + ["prob_improvement",
                                                                      "sd_units"]


def _stream(*names: str) -> np.random.Generator:
    digest = hashlib.sha256("|".join(names).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _mean_of_cell_means(*cells, axis=-1):
    return np.mean([c.mean(axis=axis) for c in cells], axis=0)


# ---- in these cells ------------------------------------------------------------------------

def _signs(n: int, rng, exact: bool, chunk: int = 8192):
    """Batches of sign patterns [m, n] (+-1): all 2^n when exact, else N_PERMUTATIONS random."""
    if exact:
        codes = np.arange(2 ** n, dtype=np.int64)
        for start in range(0, len(codes), chunk):
            bits = (codes[start:start + chunk, None] >> np.arange(n)) & 1
            yield 1.0 - 2.0 * bits
        return
    left = N_PERMUTATIONS
    while left > 0:
        m = min(chunk, left)
        bytes_ = rng.integers(0, 256, size=(m, (n + 7) // 8), dtype=np.uint8)
        yield 1.0 - 2.0 * np.unpackbits(bytes_, axis=1)[:, :n]
        left -= m


def sign_flip(diffs: list[np.ndarray], rng, alternative: str = "two-sided",
              shift: float = 0.0) -> tuple[float, str]:
    """p of the stratified sign-flip test of the mean over strata of the per-stratum mean of
    ``d - shift`` (each array one stratum's seed-paired differences), and how it was made.

    Under the null each pair's difference is symmetric about ``shift`` in its stratum, so
    every sign pattern is equally likely; the statistic sum_i w_i (d_i - shift) with w_i =
    1 / (strata x n_stratum) is the estimate. Exact: all 2^N patterns (the observed one
    included); Monte Carlo: N_PERMUTATIONS random patterns, p = (count + 1) / (R + 1) per
    side. Two-sided: twice the smaller side, at most 1. The conventions of
    ``scipy.stats.permutation_test(permutation_type="samples")`` on (d - shift, 0) pairs,
    which the tests check it against; written out because scipy's generic resampling took
    30 s for one exact 16-pair test (and 200 s Monte Carlo) where this takes milliseconds."""
    d = np.concatenate([np.asarray(x, float) - shift for x in diffs])
    w = np.concatenate([np.full(len(x), 1.0 / (len(x) * len(diffs))) for x in diffs])
    if not (d != 0).any():
        return 1.0, "no nonzero difference"
    exact = 2.0 ** len(d) <= EXACT_MAX
    wd = w * d
    observed = wd.sum()
    tol = 1e-12 * max(1.0, float(np.abs(wd).sum()))  # float ties count as ties
    ge = le = 0
    for signs in _signs(len(d), rng, exact):
        null = signs @ wd
        ge += int((null >= observed - tol).sum())
        le += int((null <= observed + tol).sum())
    if exact:
        total = 2 ** len(d)
        p_ge, p_le = ge / total, le / total
        how = "exact sign-flip"
    else:
        p_ge, p_le = (ge + 1) / (N_PERMUTATIONS + 1), (le + 1) / (N_PERMUTATIONS + 1)
        how = f"Monte Carlo sign-flip, {N_PERMUTATIONS} resamples"
    p = {"greater": p_ge, "less": p_le, "two-sided": 2 * min(p_ge, p_le)}[alternative]
    return float(min(1.0, p)), how


def sign_flip_min_p(diffs: list[np.ndarray], sided: int = 2) -> float:
    """The smallest p the sign-flip test of this design can give: sided/2^N over N pairs (a
    property of the design, not of the data), and no less than Monte Carlo's floor when it
    is not exact."""
    n = int(sum(len(x) for x in diffs))
    floor = sided / 2.0 ** n
    if 2.0 ** n > EXACT_MAX:
        floor = max(floor, sided / (N_PERMUTATIONS + 1))
    return min(1.0, floor)


def stratified_interval(diffs: list[np.ndarray], rng) -> tuple[float, float, float]:
    """(low, high, standard error) of the stratified percentile bootstrap of the mean over
    strata of the per-stratum mean."""
    means = np.array([d.mean() for d in diffs])
    if all(np.ptp(d) == 0 for d in diffs):  # nothing to resample
        return float(means.mean()), float(means.mean()), 0.0
    modified = [d.mean() + (d - d.mean()) * np.sqrt(len(d) / (len(d) - 1)) for d in diffs]
    res = stats.bootstrap(modified, _mean_of_cell_means, n_resamples=N_RESAMPLES,
                          paired=False, vectorized=True, method="percentile",
                          confidence_level=1 - ALPHA, rng=rng)
    return (float(res.confidence_interval.low), float(res.confidence_interval.high),
            float(res.standard_error))


def in_these_cells(diffs: list[np.ndarray], rng, margin: float = MARGIN) -> dict:
    """The in-these-cells row's numbers from per-stratum difference arrays (>= 2 each)."""
    est = float(np.mean([d.mean() for d in diffs]))
    low, high, se = stratified_interval(diffs, rng)
    p, how = sign_flip(diffs, rng)
    p_eq = max(sign_flip(diffs, rng, "greater", -margin)[0],
               sign_flip(diffs, rng, "less", margin)[0])
    return {"n_cells": len(diffs), "n_pairs": int(sum(len(d) for d in diffs)),
            "mean_diff": est, "ci_low": low, "ci_high": high,
            "ci_method": "95% stratified bootstrap over seeds", "ci_adjusted": False,
            "p": p, "p_method": how, "p_equivalent": p_eq, "margin": margin,
            "min_attainable_p": sign_flip_min_p(diffs), "sd_units": se}


# ---- across tasks --------------------------------------------------------------------------

def signed_rank_null(ranks: np.ndarray) -> tuple[np.ndarray, float]:
    """The exact null distribution of the signed-rank statistic T+ = sum of the ranks of the
    positive units, each sign + or - with probability 1/2 independently, conditional on the
    ranks (average ranks for ties): (dist, sum(ranks)) with dist[t] = P(T+ = t / 2) for
    t = 0 .. 2 sum(ranks) (the doubled statistic's scale), by dynamic programming over the
    doubled ranks (integers: average ranks are multiples of 1/2). Exact for any number of
    units, ties or not; the same distribution as enumerating all 2^k sign patterns."""
    doubled = np.rint(2 * np.asarray(ranks, float)).astype(int)
    dist = np.zeros(int(doubled.sum()) + 1)
    dist[0] = 1.0
    top = 0
    for r in doubled:  # each unit: its rank added (+) or not (-), probability 1/2 each
        shifted = dist[:top + 1].copy()
        dist[:top + r + 1] *= 0.5
        dist[r:top + r + 1] += 0.5 * shifted
        top += r
    return dist, float(doubled.sum()) / 2


def wilcoxon_p(x: np.ndarray, alternative: str = "two-sided") -> float:
    """Wilcoxon signed-rank p over the units (zeros dropped, as Wilcoxon did); 1 when all are
    zero. Without ties, scipy's exact distribution up to 50 nonzero units (normal beyond);
    with ties among the absolute values, the exact permutation (sign-flip) distribution of
    the statistic given the average ranks (``signed_rank_null``, any number of units), never
    the normal approximation on few units. Two-sided: P(|T+ - centre| >= |t - centre|)."""
    x = np.asarray(x, float)
    x = x[x != 0]
    if not len(x):
        return 1.0
    if len(np.unique(np.abs(x))) == len(x):
        method = "exact" if len(x) <= 50 else "approx"
        return float(stats.wilcoxon(x, alternative=alternative, method=method).pvalue)
    ranks = stats.rankdata(np.abs(x))
    dist, total = signed_rank_null(ranks)
    t2 = int(np.rint(2 * ranks[x > 0].sum()))  # the observed statistic, doubled
    values = np.arange(len(dist))  # doubled statistic values
    if alternative == "greater":
        p = dist[values >= t2].sum()
    elif alternative == "less":
        p = dist[values <= t2].sum()
    else:
        centre2 = int(np.rint(total))  # the doubled centre, sum(ranks)
        p = dist[np.abs(values - centre2) >= abs(t2 - centre2)].sum()
    return float(min(1.0, p))


def across_tasks(unit_means: np.ndarray, margin: float = MARGIN) -> dict:
    """The across-tasks row's numbers from the per-unit (cell or stratum) mean differences."""
    x = np.asarray(unit_means, float)
    k = len(x)
    est = float(x.mean())
    sd = float(x.std(ddof=1)) if k > 1 else math.nan
    if k > 1 and sd > 0:
        half = stats.t.ppf(1 - ALPHA / 2, k - 1) * sd / math.sqrt(k)
        low, high = est - half, est + half
    elif k > 1:
        low = high = est
    else:
        low = high = math.nan
    p_eq = max(wilcoxon_p(x + margin, "greater"), wilcoxon_p(x - margin, "less"))
    return {"n_cells": k, "n_pairs": k, "mean_diff": est, "ci_low": low, "ci_high": high,
            "ci_method": "95% t interval over cells", "ci_adjusted": False,
            "p": wilcoxon_p(x), "p_method": "exact Wilcoxon signed-rank over cells",
            "p_equivalent": p_eq, "margin": margin,
            "min_attainable_p": min(1.0, 2 / 2.0 ** k), "sd_units": sd}


def prob_improvement(a_cells: list[np.ndarray], b_cells: list[np.ndarray]) -> float:
    """rliable's probability of improvement: mean over cells of P(X > Y) + P(X = Y)/2 for a
    run X of one row and a run Y of the other (Mann-Whitney U over n*m pairs)."""
    u = np.concatenate([stats.mannwhitneyu(a, b, axis=1).statistic / (a.shape[1] * b.shape[1])
                        for a, b in zip(a_cells, b_cells, strict=True)])
    return float(u.mean())


def scoped_rows(diffs: list[np.ndarray], names: tuple, margin: float = MARGIN) -> list[dict]:
    """Both scopes' raw rows (no family yet) for per-stratum difference arrays."""
    diffs = [np.asarray(d, float) for d in diffs if len(d) >= 2]
    if not diffs:
        return []
    rng = _stream(*names)
    return [{"scope": "in_these_cells"} | in_these_cells(diffs, rng, margin),
            {"scope": "across_tasks"} | across_tasks(np.array([d.mean() for d in diffs]),
                                                     margin)]


def setup_verdicts(scores: pd.DataFrame, setup: str, metric: str, alm: tuple,
                   baselines: tuple, margin: float = MARGIN) -> pd.DataFrame:
    """One setup's and metric's raw rows (common-seed scores of that setup), both scopes;
    families and labels are set by ``finalise`` over the whole report."""
    wide = wide_scores(scores)
    out = []
    for a, b in declared_pairs(wide.columns, alm, baselines):
        groups = [(xa, xb) for _, xa, xb in cell_groups(wide, a, b) if xa.shape[1] >= 2]
        if not groups:
            continue
        diffs = [d for xa, xb in groups for d in xa - xb]
        poi = prob_improvement([g[0] for g in groups], [g[1] for g in groups])
        for row in scoped_rows(diffs, (setup, metric, a, b), margin):
            out.append({"setup": setup, "metric": metric, "alm": a, "baseline": b} | row
                       | {"prob_improvement": poi if row["scope"] == "in_these_cells"
                          else math.nan})
    return pd.DataFrame(out, columns=KEY + RAW_COLUMNS[len(KEY):])


# ---- families and labels -------------------------------------------------------------------

def tarone(min_p: pd.Series, alpha: float = ALPHA) -> tuple[pd.Series, int]:
    """(which rows stay in the family, K): the smallest K with at most K rows whose smallest
    attainable p is below alpha / K (Tarone 1990)."""
    for k in range(1, len(min_p) + 1):
        keep = min_p < alpha / k
        if keep.sum() <= k:
            return keep, int(keep.sum())
    return min_p < 0, 0


def units_needed(threshold: float, sided: int = 2) -> int:
    """The fewest nonzero units whose smallest exact p (sided/2^k) is below ``threshold``."""
    return max(1, math.floor(math.log2(sided / threshold)) + 1)


def power_mde(sd_units: float, n_units: int, scope: str, threshold: float) -> float:
    """The difference the row's test detects with 80% power at ``threshold`` (two-sided)."""
    if not (sd_units == sd_units) or sd_units <= 0:
        return math.nan
    if scope == "in_these_cells":  # normal approximation, sd_units = bootstrap standard error
        return float((stats.norm.ppf(1 - threshold / 2) + stats.norm.ppf(POWER)) * sd_units)
    if n_units < 2:
        return math.nan
    return float(effect_for_power(n_units, threshold) * sd_units)


def label(p_holm: float, p_eq_holm: float, estimate: float, testable: bool) -> str:
    if not testable:
        return NOT_TESTABLE
    if p_holm < ALPHA:
        return BETTER if estimate > 0 else WORSE
    if p_eq_holm < ALPHA:
        return EQUIVALENT
    return INCONCLUSIVE


def finalise(raw: pd.DataFrame, primary: str = PRIMARY, key=tuple(KEY)) -> pd.DataFrame:
    """Families per scope over the primary metric's rows (Tarone, then Holm), the labels, the
    units needed and the power; secondary-metric rows: unadjusted, no label."""
    v = raw.copy()
    for col, default in (("in_family", False), ("family_size", 0), ("p_holm", math.nan),
                         ("p_equivalent_holm", math.nan), ("testable", False),
                         ("cells_needed", math.nan), ("seeds_needed", math.nan),
                         ("mde", math.nan), ("verdict", "")):
        v[col] = default
    v = v.astype({"in_family": bool, "testable": bool, "verdict": object})
    for scope in SCOPES:
        fam = (v["scope"] == scope) & (v["metric"] == primary)
        if not fam.any():
            continue
        keep, size = tarone(v.loc[fam, "min_attainable_p"])
        idx = keep[keep].index
        v.loc[fam, "family_size"] = size
        v.loc[idx, "in_family"] = True
        v.loc[fam, "testable"] = v.loc[fam, "in_family"]
        v.loc[idx, "p_holm"] = holm(v.loc[idx, "p"]).to_numpy()
        v.loc[idx, "p_equivalent_holm"] = holm(v.loc[idx, "p_equivalent"]).to_numpy()
        threshold = ALPHA / max(size, 1)
        rows = v.loc[fam]
        v.loc[fam, "verdict"] = [label(r.p_holm, r.p_equivalent_holm, r.mean_diff, r.testable)
                                 for r in rows.itertuples()]
        v.loc[fam, "mde"] = [power_mde(r.sd_units, r.n_cells, scope, threshold)
                             for r in rows.itertuples()]
        out = rows[~rows["testable"]]
        # what a test that cannot pass would need: units whose floor passes Holm's first
        # threshold were every row of the scope's family testable
        need_threshold = ALPHA / max(int(fam.sum()), 1)
        if scope == "across_tasks":
            v.loc[out.index, "cells_needed"] = units_needed(need_threshold)
        else:
            pairs = units_needed(need_threshold)
            v.loc[out.index, "seeds_needed"] = [math.ceil(pairs / max(r.n_cells, 1))
                                                for r in out.itertuples()]
    return v[list(key) + VERDICT_COLUMNS[len(KEY):]].reset_index(drop=True)


def claims(v: pd.DataFrame) -> pd.DataFrame:
    """The labelled rows (primary metric), in both scopes."""
    return v[v["verdict"] != ""]
