"""Scoped verdicts (benchmark/analysis/verdicts.py) and moderators
(benchmark/analysis/moderators.py) against references that share no code with them: sign
patterns enumerated with itertools, Wilcoxon by enumeration, scipy's permutation_test, t
intervals from the formula, Holm and Tarone written out; and calibration and power on
simulated trees with known truths (fast versions; the script scripts/simulate_report.py
runs hundreds of trees)."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss

from benchmark.analysis import moderators, scores, verdicts
from benchmark.spec.vocabulary import LABELS
from tests.helpers import moderator_scores
from tests.simulate import simulate_runs

ALM, BASES = ("almkd", "amal"), ("kd", "fixed_alpha", "ce")


def naive_sign_flip(diffs, shift=0.0):
    """Two-sided, 'greater' and 'less' p of the mean of stratum means by enumerating every
    sign pattern of every pair."""
    d = [np.asarray(x, float) - shift for x in diffs]
    flat = [(i, v) for i, x in enumerate(d) for v in x]

    def stat(values):
        per = [[] for _ in d]
        for (i, _), v in zip(flat, values, strict=True):
            per[i].append(v)
        return np.mean([np.mean(p) for p in per])

    obs = stat([v for _, v in flat])
    null = [stat([s * v for s, (_, v) in zip(signs, flat, strict=True)])
            for signs in itertools.product((1, -1), repeat=len(flat))]
    null = np.array(null)
    ge = np.mean(null >= obs - 1e-12)
    le = np.mean(null <= obs + 1e-12)
    return min(1.0, 2 * min(ge, le)), ge, le


def test_sign_flip_exact_equals_enumeration_with_unequal_strata():
    rng = np.random.default_rng(0)
    diffs = [rng.normal(0.8, 1, 3), rng.normal(0.8, 1, 5), rng.normal(0.8, 1, 2)]
    two, ge, le = naive_sign_flip(diffs)
    assert verdicts.sign_flip(diffs, rng)[0] == pytest.approx(two)
    assert verdicts.sign_flip(diffs, rng, "greater")[0] == pytest.approx(ge)
    assert verdicts.sign_flip(diffs, rng, "less")[0] == pytest.approx(le)
    two, ge, le = naive_sign_flip(diffs, shift=1.0)
    assert verdicts.sign_flip(diffs, rng, "less", 1.0)[0] == pytest.approx(le)
    # the weights are per stratum: a pooled mean over pairs would give another p
    pooled = np.concatenate(diffs)
    assert verdicts.sign_flip([pooled], rng)[0] != pytest.approx(two)


def test_sign_flip_agrees_with_scipy_permutation_test():
    rng = np.random.default_rng(1)
    diffs = [rng.normal(0.5, 1.4, 8), rng.normal(0.5, 1.4, 8)]
    d = np.concatenate(diffs)
    w = np.full(16, 1 / 16)
    ref = ss.permutation_test((d, np.zeros(16)), lambda x, y, axis=-1: np.sum(w * (x - y), axis),
                              permutation_type="samples", vectorized=True, n_resamples=2 ** 16)
    assert verdicts.sign_flip(diffs, rng)[0] == pytest.approx(ref.pvalue)
    # Monte Carlo: close to the exact p of a large design
    big = [rng.normal(0.3, 1, 5) for _ in range(20)]
    p_mc, how = verdicts.sign_flip(big, np.random.default_rng(2))
    assert how.startswith("Monte Carlo")
    d = np.concatenate(big)
    w = np.concatenate([np.full(5, 1 / 100)] * 20)
    ref = ss.permutation_test((d, np.zeros(100)),
                              lambda x, y, axis=-1: np.sum(w * (x - y), axis),
                              permutation_type="samples", vectorized=True, n_resamples=20000,
                              rng=3)
    assert p_mc == pytest.approx(ref.pvalue, abs=0.01)


def test_min_attainable_p_is_the_design_floor():
    assert verdicts.sign_flip_min_p([np.ones(3), np.ones(4)]) == pytest.approx(2 / 2 ** 7)
    assert verdicts.across_tasks(np.array([1.0, 2.0]))["min_attainable_p"] == 0.5
    # the smallest exact p is reached when every difference has one sign
    rng = np.random.default_rng(0)
    diffs = [np.array([1.0, 2.0, 0.5]), np.array([0.3, 0.7])]
    assert verdicts.sign_flip(diffs, rng)[0] == pytest.approx(2 / 2 ** 5)


def wilcoxon_enumerated(x):
    r = ss.rankdata(np.abs(x))
    w = r[x > 0].sum()
    null = np.array([sum(ri for ri, s in zip(r, signs, strict=True) if s)
                     for signs in itertools.product([0, 1], repeat=len(x))])
    centre = r.sum() / 2
    return min(1.0, np.mean(np.abs(null - centre) >= abs(w - centre) - 1e-9))


def test_across_tasks_numbers_against_formulas():
    x = np.array([0.4, -0.2, 1.3, 0.9, 2.2, 0.1, 1.7])
    r = verdicts.across_tasks(x, margin=1.0)
    assert r["mean_diff"] == pytest.approx(x.mean())
    half = ss.t.ppf(0.975, 6) * x.std(ddof=1) / math.sqrt(7)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((x.mean() - half, x.mean() + half))
    assert r["p"] == pytest.approx(wilcoxon_enumerated(x))
    lower = ss.wilcoxon(x + 1.0, alternative="greater", method="exact").pvalue
    upper = ss.wilcoxon(x - 1.0, alternative="less", method="exact").pvalue
    assert r["p_equivalent"] == pytest.approx(max(lower, upper))
    assert r["min_attainable_p"] == pytest.approx(2 / 2 ** 7)


def tarone_reference(min_p, alpha=0.05):
    for k in range(1, len(min_p) + 1):
        keep = [m < alpha / k for m in min_p]
        if sum(keep) <= k:
            return keep
    return [False] * len(min_p)


def holm_reference(p):
    order = np.argsort(p)
    adj, running = np.empty(len(p)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adj[i] = running
    return adj


def _raw(rows):
    base = {"setup": "single", "alm": "almkd", "n_pairs": 10, "ci_low": 0.0, "ci_high": 1.0,
            "ci_method": "", "ci_adjusted": False, "p_method": "", "margin": 1.0,
            "sd_units": 0.3, "prob_improvement": np.nan, "n_cells": 5}
    return pd.DataFrame([base | r for r in rows])


def test_tarone_then_holm_and_the_labels():
    rows = [
        {"baseline": "kd", "scope": "across_tasks", "metric": "best", "mean_diff": 1.2,
         "p": 0.001, "p_equivalent": 0.9, "min_attainable_p": 0.0001},
        {"baseline": "ce", "scope": "across_tasks", "metric": "best", "mean_diff": -1.2,
         "p": 0.004, "p_equivalent": 0.9, "min_attainable_p": 0.0001},
        {"baseline": "fixed_alpha", "scope": "across_tasks", "metric": "best",
         "mean_diff": 0.1, "p": 0.6, "p_equivalent": 0.001, "min_attainable_p": 0.0001},
        {"baseline": "x", "scope": "across_tasks", "metric": "best", "mean_diff": 3.0,
         "p": 0.5, "p_equivalent": 1.0, "min_attainable_p": 0.5},  # 2 cells: leaves
        {"baseline": "y", "scope": "across_tasks", "metric": "best", "mean_diff": 0.3,
         "p": 0.3, "p_equivalent": 0.4, "min_attainable_p": 0.001},
        {"baseline": "kd", "scope": "across_tasks", "metric": "last", "mean_diff": 1.0,
         "p": 0.0001, "p_equivalent": 0.9, "min_attainable_p": 0.0001},
    ]
    v = verdicts.finalise(_raw(rows))
    best = v[v["metric"] == "best"]
    keep = tarone_reference(list(best["min_attainable_p"]))
    assert best["in_family"].tolist() == keep == [True, True, True, False, True]
    fam = best[best["in_family"]]
    np.testing.assert_allclose(fam["p_holm"], holm_reference(fam["p"].to_numpy()))
    np.testing.assert_allclose(fam["p_equivalent_holm"],
                               holm_reference(fam["p_equivalent"].to_numpy()))
    assert best["verdict"].tolist() == ["better", "worse", "equivalent", "not testable",
                                        "inconclusive"]
    assert (best["family_size"] == 4).all()
    # the row that left the family says how many cells it would need were all 5 rows
    # testable: 2/2^k < 0.05/5
    assert best["cells_needed"].iloc[3] == 8 and 2 / 2 ** 8 < 0.05 / 5 <= 2 / 2 ** 7
    last = v[v["metric"] == "last"]
    assert last["verdict"].tolist() == [""] and last["p_holm"].isna().all()
    assert set(v["verdict"]) - {""} <= set(LABELS)
    assert "no difference" not in set(v["verdict"])


def _cells(n_cells, seeds, effect, rng, sd=1.0):
    rows = []
    for c in range(n_cells):
        for s in range(seeds):
            kd = rng.normal(70, 1)
            for row, v in (("kd", kd), ("almkd", kd + effect + rng.normal(0, sd))):
                rows.append({"dataset": f"d{c}", "noise_id": "symmetric_0.20",
                             "setup": "single", "seed": s, "row": row, "score": v,
                             "method": row})
    return pd.DataFrame(rows)


def test_setup_verdicts_match_a_naive_recomputation():
    rng = np.random.default_rng(4)
    sc = _cells(3, 4, 0.8, rng)
    raw = verdicts.setup_verdicts(sc, "single", "best", ("almkd",), ("kd",))
    assert raw["scope"].tolist() == ["in_these_cells", "across_tasks"]
    diffs = [g[g.row == "almkd"].sort_values("seed")["score"].to_numpy()
             - g[g.row == "kd"].sort_values("seed")["score"].to_numpy()
             for _, g in sc.groupby("dataset")]
    inside, across = raw.iloc[0], raw.iloc[1]
    assert inside["mean_diff"] == pytest.approx(np.mean([d.mean() for d in diffs]))
    assert inside["p"] == pytest.approx(naive_sign_flip(diffs)[0])
    eq = max(naive_sign_flip(diffs, -1.0)[1], naive_sign_flip(diffs, 1.0)[2])
    assert inside["p_equivalent"] == pytest.approx(eq)
    assert across["p"] == pytest.approx(wilcoxon_enumerated(np.array([d.mean()
                                                                      for d in diffs])))
    assert inside["n_pairs"] == 12 and across["n_cells"] == 3


def test_two_cells_with_a_large_effect_better_in_these_cells_not_testable_across():
    """The issue's scenario: 2 cells x 8 seeds, +3 points, run sd 1: better in these cells
    with power >= 80%, not testable across tasks (its smallest p is 0.5)."""
    better = 0
    for i in range(20):
        sc = _cells(2, 8, 3.0, np.random.default_rng([7, i]))
        v = verdicts.finalise(verdicts.setup_verdicts(sc, "single", "best", ("almkd",),
                                                      ("kd",)))
        inside = v[v["scope"] == "in_these_cells"].iloc[0]
        across = v[v["scope"] == "across_tasks"].iloc[0]
        better += inside["verdict"] == "better"
        assert across["verdict"] == "not testable" and across["cells_needed"] == 6
    assert better >= 16


TREES = 30


@pytest.fixture
def fast_permutations(monkeypatch):
    monkeypatch.setattr(verdicts, "N_PERMUTATIONS", 4999)


def tree_verdicts(runs):
    sc = scores.common_seeds(scores.method_scores(runs, "best"))
    return verdicts.finalise(verdicts.setup_verdicts(sc, "single", "best", ALM, BASES))


def test_null_rate_of_better_or_worse_at_most_five_percent_in_both_scopes(fast_permutations):
    """Every method equal, 20 cells x 5 seeds, run sd 1: trees with any better / worse
    label, per scope (family-wise). With 30 trees, 4 or more would have probability 0.06 at
    a true rate of 5%."""
    hits = {s: 0 for s in verdicts.SCOPES}
    for i in range(TREES):
        v = tree_verdicts(simulate_runs(np.random.default_rng([11, i])))
        for s in verdicts.SCOPES:
            hits[s] += v[(v["scope"] == s) & v["verdict"].isin(["better", "worse"])].shape[0] > 0
    assert max(hits.values()) <= 3, hits


def test_a_one_point_gain_is_better_in_both_scopes_with_power(fast_permutations):
    """almkd 1 point better in every cell (20 cells x 5 seeds, run sd 1): better against
    every baseline in both scopes in >= 80% of trees; amal (equal) never better or worse."""
    better = {s: 0 for s in verdicts.SCOPES}
    amal = 0
    n = TREES // 2
    for i in range(n):
        v = tree_verdicts(simulate_runs(np.random.default_rng([12, i]),
                                        gain=lambda m, c: 1.0 if m == "almkd" else 0.0))
        for s in verdicts.SCOPES:
            sub = v[(v["scope"] == s) & (v["alm"] == "almkd")]
            better[s] += (sub["verdict"] == "better").all()
        amal += v[(v["alm"] == "amal") & v["verdict"].isin(["better", "worse"])].shape[0] > 0
    assert min(better.values()) >= 0.8 * n and amal <= 1, (better, amal)


def test_a_worse_method_is_worse_and_an_equal_one_is_not_better(fast_permutations):
    v = tree_verdicts(simulate_runs(np.random.default_rng(5),
                                    gain=lambda m, c: -1.0 if m == "amal" else 0.0))
    assert set(v[v["alm"] == "amal"]["verdict"]) == {"worse"}
    assert not set(v[v["alm"] == "almkd"]["verdict"]) & {"better", "worse"}


# ---------------------------------------------------------------- moderators


def test_moderator_difference_of_differences_against_a_naive_loop():
    sc = moderator_scores(np.random.default_rng(3), 3.0, n_strata=3, seeds=3)
    m = moderators.moderators({"best": sc}, ("almkd",), ("kd",), ("teacher_labels",))
    inside = m[m["scope"] == "in_these_cells"].iloc[0]
    assert (inside["factor"], inside["level"], inside["reference"]) == (
        "teacher_labels", "noisy", "clean")
    dods = []
    for _, g in sc.groupby(["dataset", "noise_id"]):
        per = []
        for s in range(3):
            x = g[g.seed == s].set_index(["setup", "row"])["score"]
            per.append((x["single", "almkd"] - x["single", "kd"])
                       - (x["single-cleanT", "almkd"] - x["single-cleanT", "kd"]))
        dods.append(np.array(per))
    assert inside["n_strata"] == 3 and inside["n_pairs"] == 9
    assert inside["mean_diff"] == pytest.approx(np.mean([x.mean() for x in dods]))
    assert inside["p"] == pytest.approx(naive_sign_flip(dods)[0])
    across = m[m["scope"] == "across_tasks"].iloc[0]
    assert across["p"] == pytest.approx(wilcoxon_enumerated(np.array([x.mean()
                                                                      for x in dods])))
    # a sign flip in the contrast would flip the estimate
    assert inside["mean_diff"] > 0


def test_factor_without_a_stratum_is_named():
    sc = moderator_scores(np.random.default_rng(3), 3.0, n_strata=3, seeds=3)
    cells = {tuple(c) for c in sc[["dataset", "noise_id", "setup"]].drop_duplicates().to_numpy()}
    assert moderators.factors_without_strata(cells, ("teacher_labels", "noise_type")) == [
        "noise_type"]
    rates = moderators.strata(cells, "noise_rate")
    assert {(lv, ref) for lv, ref, _, _ in rates} == {("0.2", "0.1"), ("0.3", "0.1")}


def test_moderator_null_rate_and_power_over_six_strata(fast_permutations):
    """An interaction of 3 points over 6 strata (5 seeds, run sd 1): better in these cells
    with power >= 80% (across tasks 6 strata allow p = 2/64 alone: testable in a family of
    one); no interaction: better / worse in at most 5% (3 of 30 trees)."""
    null_hits = power = across = 0
    for i in range(TREES):
        m = moderators.moderators({"best": moderator_scores(np.random.default_rng([21, i]),
                                                            0.0)},
                                  ("almkd",), ("kd",), ("teacher_labels",))
        null_hits += m["verdict"].isin(["better", "worse"]).any()
    for i in range(TREES // 2):
        m = moderators.moderators({"best": moderator_scores(np.random.default_rng([22, i]),
                                                            3.0)},
                                  ("almkd",), ("kd",), ("teacher_labels",))
        power += (m.loc[m["scope"] == "in_these_cells", "verdict"] == "better").all()
        across += (m.loc[m["scope"] == "across_tasks", "verdict"] == "better").all()
    assert null_hits <= 3 and power >= 0.8 * (TREES // 2), (null_hits, power)
    assert across >= 0.8 * (TREES // 2)


def _zoo_scores(rng, shift, cells=4, seeds=3):
    """Scores of zoo rows in ``cells`` single-setup cells: the label-reading rules (wsld,
    dkd) ``shift`` points above their family's other rules, plus noise; kd as a baseline."""
    rows = []
    for c in range(cells):
        for s in range(seeds):
            base = 80 + rng.normal()
            for row, bump in (("kd", 0.0), ("wsld", shift), ("bootstrap", 0.0),
                              ("proselflc", 0.0), ("dkd", shift), ("lskd", 0.0),
                              ("gce_kd", 9.0)):
                rows.append({"dataset": f"d{c}", "noise_id": "symmetric_0.40",
                             "setup": "single", "row": row, "seed": s,
                             "score": base + bump + rng.normal()})
    return pd.DataFrame(rows)


def test_reads_label_contrast_against_a_naive_loop():
    sc = _zoo_scores(np.random.default_rng(5), 2.0)
    m = moderators.moderators({"best": sc}, ("wsld",), ("kd",), ("reads_label",))
    assert set(m["factor"]) == {"reads_label"} and len(m) == 2
    per_cell = []
    for _, g in sc.groupby("dataset"):
        x = []
        for s in range(3):
            v = g[g.seed == s].set_index("row")["score"]
            # per family: wsld vs mean(bootstrap, proselflc); dkd vs lskd; then their mean
            x.append(((v["wsld"] - (v["bootstrap"] + v["proselflc"]) / 2)
                      + (v["dkd"] - v["lskd"])) / 2)
        per_cell.append(np.array(x))
    inside = m[m["scope"] == "in_these_cells"].iloc[0]
    assert (inside["alm"], inside["baseline"]) == moderators.READS_LABEL_SIDES
    assert inside["n_strata"] == 4 and inside["n_pairs"] == 12
    assert inside["mean_diff"] == pytest.approx(np.mean([x.mean() for x in per_cell]))
    assert inside["mean_diff"] > 1.0  # the label-reading rules are 2 points up
    across = m[m["scope"] == "across_tasks"].iloc[0]
    assert across["p"] == pytest.approx(wilcoxon_enumerated(
        np.array([x.mean() for x in per_cell])))


def test_reads_label_needs_both_kinds_in_one_family():
    sc = _zoo_scores(np.random.default_rng(6), 2.0)
    # wsld (per-instance, reads) beside lskd (logit KD, does not): no family has both
    lone = sc[sc["row"].isin(["kd", "wsld", "lskd", "gce_kd"])]
    m = moderators.moderators({"best": lone}, ("wsld",), ("kd",), ("reads_label",))
    assert m.empty
    cells = {tuple(c) for c in lone[["dataset", "noise_id", "setup"]].drop_duplicates()
             .to_numpy()}
    assert moderators.factors_without_strata(cells, ("reads_label",), lone) == ["reads_label"]
    assert moderators.factors_without_strata(cells, ("reads_label",), sc) == []
    # and a rule outside the contrast (gce_kd, 9 points up) never enters it
    m = moderators.moderators({"best": sc}, ("wsld",), ("kd",), ("reads_label",))
    assert m["mean_diff"].abs().max() < 4.0


def _tail_enumerated(x, alternative):
    """P(T+ >= t) or P(T+ <= t) by enumerating every sign pattern (zeros dropped)."""
    x = x[x != 0]
    r = ss.rankdata(np.abs(x))
    w = r[x > 0].sum()
    null = np.array([sum(ri for ri, s in zip(r, signs, strict=True) if s)
                     for signs in itertools.product([0, 1], repeat=len(x))])
    return np.mean(null >= w - 1e-9) if alternative == "greater" else np.mean(null <= w + 1e-9)


def test_wilcoxon_with_ties_is_the_exact_sign_flip_distribution():
    """Cell means that tie (a 360-image test set moves accuracy in steps of 0.28 points):
    the p-values of every alternative equal the enumeration over all 2^k sign patterns with
    average ranks, for 1 to 12 units, and scipy's own permutation method where it is exact."""
    rng = np.random.default_rng(11)
    checked = 0
    for k in range(1, 13):
        for _ in range(6):
            x = np.round(rng.normal(0.4, 1.0, k), 1)  # ties and zeros likely
            x = x[x != 0] if (x != 0).any() else np.array([0.5])
            if len(np.unique(np.abs(x))) == len(x):
                continue
            checked += 1
            assert verdicts.wilcoxon_p(x) == pytest.approx(wilcoxon_enumerated(x), abs=1e-12)
            for alt in ("greater", "less"):
                assert verdicts.wilcoxon_p(x, alt) == pytest.approx(_tail_enumerated(x, alt),
                                                                    abs=1e-12)
    assert checked >= 30
    x = np.array([0.3, -0.3, 0.6, 0.6, 1.2, -0.9, 0.3, 2.1, 0.6, -0.3, 1.5, 0.9, 0.3])
    method = ss.PermutationMethod(n_resamples=99_999, rng=0)  # 2^13 < 99,999: exact
    assert verdicts.wilcoxon_p(x) == pytest.approx(ss.wilcoxon(x, method=method).pvalue,
                                                   abs=1e-12)
    # a shift that removes every tie takes scipy's exact path, and one that makes the ranks
    # all positive gives the smallest attainable p
    assert verdicts.wilcoxon_p(np.array([0.5, 0.5, 1.0, 1.0])) == pytest.approx(2 / 16)


def test_signed_rank_null_sums_to_one_and_is_symmetric():
    dist, total = verdicts.signed_rank_null(ss.rankdata([0.3, 0.3, 0.7, 1.1, 1.1, 1.1]))
    assert dist.sum() == pytest.approx(1.0) and total == 21 and len(dist) == 43
    assert np.allclose(dist, dist[::-1])
    assert dist[0] == pytest.approx(1 / 2 ** 6)
