"""Moderators: does a factor of the cells change how much an ALM method gains on a baseline?

A claimed pattern such as "ALM-KD pays only when the teacher saw the noisy labels" is an
interaction, and reading it off separate tables tests nothing (the difference between
significant and not significant is not itself significant). This module tests it.

Every table cell (dataset, noise, setup kind) has attributes: ``dataset``, ``noise_type``
(the noise kind, with ``-incl`` or the human variant), ``noise_rate``, ``setup`` (single,
multi, self) and ``teacher_labels`` (noisy, or clean for the ``-cleanT`` kinds). For a
declared factor F, a level L and its reference level R (``REFERENCE``: teacher_labels clean,
noise_type symmetric, the lowest noise_rate, setup single; else the first level in sorted
order), a **stratum** is a set of cells that agree on every attribute but F, with one cell at
L and one at R. Per stratum and seed, the difference of differences

    DoD(s) = [a - b](cell at L, seed s) - [a - b](cell at R, seed s)

for an ALM row a and a baseline row b, on the seeds both cells have (the same seed shares
its labels file, split and student initialisation across the two cells; ``ce`` rows are the
same runs in both teacher conditions). Both scopes as for the verdicts (verdicts.py): in
these cells, the stratified sign-flip test over (stratum, seed) with the stratified bootstrap
interval; across tasks, strata are the units (exact Wilcoxon over per-stratum mean DoDs,
t interval). Strata in different setups of one dataset share that dataset: across tasks
they are units, not independent datasets, and the legend says so. Families: per scope, the
primary metric's moderator rows (a family of their own: a moderator is a separate declared
question), Tarone then Holm; labels from the one vocabulary: ``better`` means the ALM row's
advantage over the baseline is larger at L than at R.
"""

from __future__ import annotations

import functools
import math

import pandas as pd

from benchmark.analysis.scores import CELL
from benchmark.analysis.verdicts import RAW_COLUMNS, finalise, scoped_rows
from benchmark.spec.vocabulary import DEFAULT_FACTORS, MARGIN

REFERENCE = {"teacher_labels": "clean", "noise_type": "symmetric", "setup": "single"}
ATTRIBUTES = ("dataset", "noise_type", "noise_rate", "setup", "teacher_labels")
KEY = ["metric", "scope", "factor", "level", "reference", "alm", "baseline"]


@functools.cache
def cell_attributes(dataset: str, noise_id: str, setup: str) -> dict:
    from benchmark.data.noise import NoiseSpec

    spec = NoiseSpec.parse(noise_id)
    return {"dataset": dataset, "noise_type": spec.kind_id,
            "noise_rate": "" if spec.rate is None else f"{spec.rate:g}",
            "setup": setup.removesuffix("-cleanT"),
            "teacher_labels": "clean" if setup.endswith("-cleanT") else "noisy"}


def _level_order(factor: str, levels) -> list[str]:
    if factor == "noise_rate":
        return sorted(levels, key=lambda v: float(v) if v else math.inf)
    ref = REFERENCE.get(factor)
    return sorted(levels, key=lambda v: (v != ref, v))


def strata(cells, factor: str) -> list[tuple[str, dict, tuple, tuple]]:
    """(level, reference, cell at the level, cell at the reference) for every stratum of
    ``factor`` among ``cells`` (tuples dataset, noise_id, setup)."""
    attrs = {c: cell_attributes(*c) for c in cells}
    levels = _level_order(factor, {a[factor] for a in attrs.values()})
    if len(levels) < 2:
        return []
    ref = levels[0]
    groups: dict = {}
    for c, a in attrs.items():
        key = tuple(a[k] for k in ATTRIBUTES if k != factor)
        groups.setdefault(key, {})[a[factor]] = c
    out = []
    for level in levels[1:]:
        for key in sorted(groups):
            g = groups[key]
            if level in g and ref in g:
                out.append((level, ref, g[level], g[ref]))
    return out


def _seed_diffs(wide: pd.DataFrame, a: str, b: str) -> dict:
    """cell -> a - b by seed (the seeds where both rows have a score in that cell)."""
    pair = wide[[a, b]].dropna()
    diff = pair[a] - pair[b]
    return {tuple(cell): g.droplevel(CELL) for cell, g in diff.groupby(level=CELL)}


def moderator_raw(scores: pd.DataFrame, metric: str, alm: tuple, baselines: tuple,
                  factors=DEFAULT_FACTORS, margin: float = MARGIN) -> pd.DataFrame:
    """The raw moderator rows of one metric (common-seed scores of every setup)."""
    from benchmark.analysis.stats import declared_pairs, wide_scores

    cols = KEY + ["n_strata", "strata"] + RAW_COLUMNS[RAW_COLUMNS.index("n_pairs"):]
    if scores.empty:
        return pd.DataFrame(columns=cols)
    wide = wide_scores(scores)
    cells = sorted({tuple(i) for i in wide.index.droplevel("seed").unique()})
    pairs_ab = declared_pairs(wide.columns, alm, baselines)
    seed_diffs = {(a, b): _seed_diffs(wide, a, b) for a, b in pairs_ab}  # once per pair
    rows = []
    for factor in factors:
        pairs = strata(cells, factor)
        by_level: dict = {}
        for level, ref, c_l, c_r in pairs:
            by_level.setdefault((level, ref), []).append((c_l, c_r))
        for (level, ref), members in by_level.items():
            for a, b in pairs_ab:
                d = seed_diffs[(a, b)]
                dods, names = [], []
                for c_l, c_r in members:
                    if c_l in d and c_r in d:
                        x = (d[c_l] - d[c_r]).dropna()
                        if len(x) >= 2:
                            dods.append(x.to_numpy(float))
                            names.append("/".join(map(str, c_l[:2])) + "/" + c_l[2])
                for r in scoped_rows(dods, (metric, factor, level, ref, a, b), margin):
                    rows.append({"metric": metric, "factor": factor, "level": level,
                                 "reference": ref, "alm": a, "baseline": b,
                                 "n_strata": len(dods), "strata": "; ".join(names)}
                                | r | {"prob_improvement": math.nan})
    out = pd.DataFrame(rows, columns=cols + ["n_cells", "prob_improvement"])
    return out


def moderators(scores_by_metric: dict, alm: tuple, baselines: tuple, factors=DEFAULT_FACTORS,
               margin: float = MARGIN, primary: str = "best") -> pd.DataFrame:
    """Every metric's moderator rows with families (per scope, primary metric) and labels."""
    raw = [moderator_raw(s, m, alm, baselines, factors, margin)
           for m, s in scores_by_metric.items()]
    raw = [r for r in raw if len(r)]
    if not raw:
        return pd.DataFrame(columns=MODERATOR_COLUMNS)
    out = finalise(pd.concat(raw, ignore_index=True), primary=primary, key=KEY
                   + ["n_strata", "strata"])
    return out.drop(columns=["n_cells", "prob_improvement"])[MODERATOR_COLUMNS]


def factors_without_strata(cells, factors) -> list[str]:
    return [f for f in factors if not strata(cells, f)]


MODERATOR_COLUMNS = KEY + ["n_strata", "strata", "n_pairs", "mean_diff", "ci_low", "ci_high",
                           "ci_method", "ci_adjusted", "p", "p_method", "p_equivalent",
                           "margin", "min_attainable_p", "in_family", "family_size", "p_holm",
                           "p_equivalent_holm", "testable", "cells_needed", "seeds_needed",
                           "mde", "verdict"]
