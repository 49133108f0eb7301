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

``reads_label`` is a factor of the rules, not of the cells (``reads_label_raw``): does a
rule whose trust in the teacher is computed from the given label (wsld, dkd, camkd) score
higher than one of the same family whose trust is not (bootstrap and proselflc, lskd, ebkd
and aekd)? Per cell and seed, the contrast is the mean over the zoo families that have
rules of both kinds in the cell of [mean score of the label-reading rules - mean score of
the others]: the same for every baseline (a baseline's score cancels), so it is one row per
scope and metric, with the cells as its strata, in the moderators' family.
"""

from __future__ import annotations

import functools
import math

import pandas as pd

from benchmark.analysis.scores import CELL
from benchmark.analysis.verdicts import RAW_COLUMNS, finalise, scoped_rows
from benchmark.core.layout import teacher_labels_of
from benchmark.spec.vocabulary import DEFAULT_FACTORS, MARGIN, RULE_FACTORS

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
            "teacher_labels": teacher_labels_of(setup)}


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


#: the moderators table's sentence on the ``reads_label`` row, written when it has one
READS_LABEL_LEGEND = (
    "reads_label, a factor of the rules: per cell and seed, within each zoo family that has "
    "both kinds in the cell, the mean score of the rules whose trust reads the given label "
    "(wsld, dkd, camkd) minus that of the family's other rules (bootstrap, proselflc; lskd; "
    "ebkd, aekd), averaged over those families; strata are the cells, and a baseline's "
    "score cancels, so it is one row per scope. better: the label-reading rules score "
    "higher.\n\n")

#: the names of the two sides of the ``reads_label`` row (its alm and baseline columns)
READS_LABEL_SIDES = ("rules reading the label", "rules of their family that do not")


def _label_kinds(rows) -> dict:
    """row -> (family, reads the label) for the zoo rows whose catalog entry says which."""
    from benchmark.analysis.scores import base_method
    from methods.catalog import CATALOG

    out = {}
    for r in rows:
        entry = CATALOG.get(base_method(r))
        if entry is not None and entry.trust_from_label is not None:
            out[r] = (entry.family, entry.trust_from_label)
    return out


def reads_label_contrasts(wide: pd.DataFrame) -> dict:
    """cell -> per-seed contrast (a Series over seeds): the mean over the families with
    rules of both kinds in the cell of [mean of the label-reading rules - mean of the
    others], on the seeds where every such rule has a score."""
    kinds = _label_kinds(wide.columns)
    out = {}
    for cell, g in wide.groupby(level=CELL):
        g = g.droplevel(CELL)
        present = [r for r in kinds if r in g and g[r].notna().any()]
        per_family = []
        for family in sorted({kinds[r][0] for r in present}):
            yes = [r for r in present if kinds[r] == (family, True)]
            no = [r for r in present if kinds[r] == (family, False)]
            if yes and no:
                per_family.append(g[yes].mean(axis=1, skipna=False)
                                  - g[no].mean(axis=1, skipna=False))
        if per_family:
            x = pd.concat(per_family, axis=1).mean(axis=1, skipna=False).dropna()
            if len(x):
                out[tuple(cell)] = x
    return out


def reads_label_raw(scores: pd.DataFrame, metric: str, margin: float = MARGIN) -> pd.DataFrame:
    """The ``reads_label`` rows of one metric (both scopes; strata: the cells)."""
    from benchmark.analysis.stats import wide_scores

    cols = KEY + ["n_strata", "strata"] + RAW_COLUMNS[RAW_COLUMNS.index("n_pairs"):]
    if scores.empty:
        return pd.DataFrame(columns=cols + ["n_cells", "prob_improvement"])
    contrasts = {c: x for c, x in reads_label_contrasts(wide_scores(scores)).items()
                 if len(x) >= 2}
    cells = sorted(contrasts)
    names = ["/".join(map(str, c[:2])) + "/" + c[2] for c in cells]
    yes, no = READS_LABEL_SIDES
    rows = [{"metric": metric, "factor": "reads_label", "level": "yes", "reference": "no",
             "alm": yes, "baseline": no, "n_strata": len(cells), "strata": "; ".join(names)}
            | r | {"prob_improvement": math.nan}
            for r in scoped_rows([contrasts[c].to_numpy(float) for c in cells],
                                 (metric, "reads_label", "yes", "no", yes, no), margin)]
    return pd.DataFrame(rows, columns=cols + ["n_cells", "prob_improvement"])


def moderators(scores_by_metric: dict, alm: tuple, baselines: tuple, factors=DEFAULT_FACTORS,
               margin: float = MARGIN, primary: str = "best") -> pd.DataFrame:
    """Every metric's moderator rows with families (per scope, primary metric) and labels."""
    cell_factors = tuple(f for f in factors if f not in RULE_FACTORS)
    raw = [moderator_raw(s, m, alm, baselines, cell_factors, margin)
           for m, s in scores_by_metric.items()]
    if "reads_label" in factors:
        raw += [reads_label_raw(s, m, margin) for m, s in scores_by_metric.items()]
    raw = [r for r in raw if len(r)]
    if not raw:
        return pd.DataFrame(columns=MODERATOR_COLUMNS)
    out = finalise(pd.concat(raw, ignore_index=True), primary=primary, key=KEY
                   + ["n_strata", "strata"])
    return out.drop(columns=["n_cells", "prob_improvement"])[MODERATOR_COLUMNS]


def factors_without_strata(cells, factors, scores: pd.DataFrame | None = None) -> list[str]:
    """The declared factors no two cells contrast (``reads_label``: no cell of ``scores``
    has rules of both kinds in one family)."""
    out = []
    for f in factors:
        if f in RULE_FACTORS:
            from benchmark.analysis.stats import wide_scores

            if scores is None or scores.empty or not reads_label_contrasts(
                    wide_scores(scores)):
                out.append(f)
        elif not strata(cells, f):
            out.append(f)
    return out


MODERATOR_COLUMNS = KEY + ["n_strata", "strata", "n_pairs", "mean_diff", "ci_low", "ci_high",
                           "ci_method", "ci_adjusted", "p", "p_method", "p_equivalent",
                           "margin", "min_attainable_p", "in_family", "family_size", "p_holm",
                           "p_equivalent_holm", "testable", "cells_needed", "seeds_needed",
                           "mde", "verdict"]
