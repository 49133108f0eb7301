"""Scores, per-cell comparisons, minimum detectable differences, verdicts and ranks against
references that share no code with benchmark/ (hand formulas, naive loops, exact
enumeration, the noncentral t, the studentized range); tables from a synthetic frame."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy import stats as ss

from benchmark.analysis import ranks, scores, stats, tables, verdicts

ALM, BASES = ("almkd",), ("kd", "fixed_alpha", "ce")


def runs_frame(seeds=5, gain=0.02, noise_sd=0.002, seed=0, noise_id="symmetric_0.40",
               fa_gain=-0.005):
    """A fake tidy runs frame: one cell, ce/kd/fixed_alpha(2)/almkd, almkd better by ``gain``."""
    rng = np.random.default_rng(seed)
    rows = []
    base = rng.normal(0.70, 0.01, seeds)
    for s in range(seeds):
        def add(method, method_id, setup_id, acc, val, alpha=None, s=s):
            rows.append({"dataset": "digits", "noise_id": noise_id,
                         "setup_id": setup_id, "setup": setup_id.split("-")[0],
                         "method": method, "method_id": method_id, "alpha": alpha, "seed": s,
                         "test_acc_best_val": acc, "test_acc_last": acc - 0.01,
                         "val_acc_best": val, "val_acc_last": val - 0.01,
                         "path": f"runs/digits/{noise_id}/{setup_id}/{method_id}/seed{s}"})
        add("ce", "ce", "none", base[s] - 0.01 + rng.normal(0, noise_sd), 0.5)
        add("kd", "kd", "single-x", base[s] + rng.normal(0, noise_sd), 0.5)
        # alpha 0.3 wins validation in even seeds, 0.7 in odd ones
        add("fixed_alpha", "fixed_alpha-a0.30", "single-x",
            base[s] + fa_gain + rng.normal(0, noise_sd), 0.6 + (s % 2 == 0), 0.3)
        add("fixed_alpha", "fixed_alpha-a0.70", "single-x",
            base[s] + fa_gain + 0.002 + rng.normal(0, noise_sd), 0.6 + (s % 2 == 1), 0.7)
        add("almkd", "almkd", "single-x", base[s] + gain + rng.normal(0, noise_sd), 0.5)
    return pd.DataFrame(rows)


def table_scores(runs, metric="best"):
    return scores.common_seeds(scores.method_scores(runs, metric))


# ---------------------------------------------------------------- scores


def test_fixed_alpha_is_the_best_validation_alpha_per_seed_and_scores_are_percent():
    runs = runs_frame()
    sc = scores.method_scores(runs, "best")
    fa = sc[sc["row"] == "fixed_alpha"].sort_values("seed")
    assert fa["alpha"].tolist() == [0.3, 0.7, 0.3, 0.7, 0.3]
    picked = [runs[(runs["method_id"] == f"fixed_alpha-a0.{3 if s % 2 == 0 else 7}0")
                   & (runs["seed"] == s)]["test_acc_best_val"].item() * 100 for s in range(5)]
    np.testing.assert_allclose(fa["score"], picked)
    ce = sc[sc["row"] == "ce"]
    assert set(ce["setup"]) == {"single"}  # ce joins every setup's cell
    last = scores.method_scores(runs, "last")
    kd = runs[runs["method"] == "kd"].sort_values("seed")
    np.testing.assert_allclose(last[last["row"] == "kd"]["score"], 100 * kd["test_acc_last"])


def test_the_chosen_hyper_parameter_is_the_catalogs_selected_not_a_name(monkeypatch):
    """The per-seed choice follows the catalog's ``selected``: a method whose entry names
    one (here kd, as if it swept a temperature) is collapsed to its best-validation value;
    fixed_alpha without one is left as two rows."""
    runs = runs_frame()
    kd = runs[runs["method"] == "kd"]
    hot = kd.assign(method_id="kd-t8.00", alpha=8.0,
                    test_acc_best_val=kd["test_acc_best_val"] + 0.05,
                    val_acc_best=np.where(kd["seed"] % 2 == 0, 0.9, 0.1))
    runs = pd.concat([runs, hot.assign(hparams='{"T":8.0}'),
                      kd.assign(method_id="kd-t4.00", alpha=4.0, hparams='{"T":4.0}')])
    runs = runs[~((runs["method"] == "kd") & (runs["method_id"] == "kd"))]
    monkeypatch.setattr(scores, "selected_hparam", {"kd": "T"}.get)
    sc = scores.method_scores(runs.assign(hparams=runs.get("hparams", "{}")).fillna(
        {"hparams": "{}"}), "best")
    picked = sc[sc["row"] == "kd"].sort_values("seed")
    assert picked["alpha"].tolist() == [8.0, 4.0, 8.0, 4.0, 8.0]
    assert set(picked["method_ids"]) == {"kd-t4.00;kd-t8.00"}
    # fixed_alpha, no longer selected: one row per alpha, each with all its seeds
    fa = sc[sc["method"] == "fixed_alpha"]
    assert len(fa) == 10 and fa["alpha"].isna().all()


def test_every_row_of_a_cell_uses_the_seeds_all_rows_have():
    other = runs_frame(seed=1, noise_id="symmetric_0.20")
    runs = pd.concat([runs_frame(), other])
    runs = runs[~((runs["method"] == "kd") & (runs["seed"] == 4)
                  & (runs["noise_id"] == "symmetric_0.40"))]
    summary = scores.summarise(table_scores(runs))
    cut = summary[summary["noise_id"] == "symmetric_0.40"]
    assert set(cut["n"]) == {4}  # kd lost seed 4: so did every row of that cell
    ref = runs[(runs["method"] == "almkd") & (runs["noise_id"] == "symmetric_0.40")
               & (runs["seed"] < 4)]["test_acc_best_val"] * 100
    assert cut[cut["row"] == "almkd"]["mean"].item() == pytest.approx(ref.mean())
    assert set(summary[summary["noise_id"] == "symmetric_0.20"]["n"]) == {5}


def test_variants_are_named_by_their_differing_hparams_in_every_setup():
    """One cell holds two almkd variants: almkd is named by the hyper-parameter that differs
    in every cell and every setup of the study (issue 26: today's 'almkd' meant different
    hyper-parameters in different setups), so one row name is one variant everywhere."""
    from benchmark.analysis.collect import resolved_hparams

    a, b = (f.assign(hparams=[resolved_hparams(m, {}) for m in f["method"]])
            for f in (runs_frame(), runs_frame(seed=1, noise_id="symmetric_0.20")))
    extra = a[a["method"] == "almkd"].assign(method_id="almkd-1a2b3c",
                                             hparams=resolved_hparams("almkd",
                                                                      {"meta_every": 5}))
    multi = a.assign(setup="multi", setup_id="multi-2t-x")
    sc = scores.method_scores(pd.concat([a, b, extra, multi[multi["method"] != "ce"]]), "best")
    rows = sc[sc["method"] == "almkd"].groupby(["setup", "noise_id"])["row"].agg(set)
    assert rows.to_dict() == {
        ("multi", "symmetric_0.40"): {"almkd (meta_every=10)"},
        ("single", "symmetric_0.20"): {"almkd (meta_every=10)"},
        ("single", "symmetric_0.40"): {"almkd (meta_every=10)", "almkd (meta_every=5)"}}
    assert set(sc[sc["method"] == "kd"]["row"]) == {"kd"}  # one variant: its plain name


def test_fixed_alpha_seeds_missing_an_alpha_are_dropped_from_the_cell():
    runs = runs_frame()
    runs = runs[~((runs["method_id"] == "fixed_alpha-a0.70") & (runs["seed"] == 1))]
    sc = table_scores(runs)
    assert set(sc["seed"]) == {0, 2, 3, 4}  # seed 1 lost a candidate: out for every row
    assert sc.groupby("row")["seed"].nunique().eq(4).all()


def test_summary_matches_numpy():
    runs = runs_frame()
    summary = scores.summarise(table_scores(runs))
    alm = summary[summary["row"] == "almkd"].iloc[0]
    ref = 100 * runs[runs["method"] == "almkd"]["test_acc_best_val"].to_numpy()
    assert alm["mean"] == pytest.approx(ref.mean())
    assert alm["std"] == pytest.approx(ref.std(ddof=1))
    assert alm["n"] == 5
    assert summary[summary["row"] == "fixed_alpha"].iloc[0]["alphas"] == "0.3,0.7,0.3,0.7,0.3"


# ---------------------------------------------------------------- per-cell comparisons


def holm_reference(p):
    """Holm's step-down adjustment written out: sort, multiply by (m - rank), running max."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def wilcoxon_exact(d):
    """Two-sided exact signed-rank p by enumerating every sign pattern (no ties, no zeros)."""
    d = np.asarray(d, float)
    r = ss.rankdata(np.abs(d))
    w = r[d > 0].sum()
    null = [sum(ri for ri, s in zip(r, signs, strict=True) if s)
            for signs in itertools.product([0, 1], repeat=len(d))]
    centre = r.sum() / 2
    return min(1.0, np.mean([abs(x - centre) >= abs(w - centre) - 1e-9 for x in null]))


def t_reference(d):
    n = len(d)
    mean, sd = sum(d) / n, math.sqrt(sum((x - sum(d) / n) ** 2 for x in d) / (n - 1))
    t = mean / (sd / math.sqrt(n))
    half = ss.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return 2 * ss.t.sf(abs(t), n - 1), mean - half, mean + half


def test_paired_tests_ci_wilcoxon_and_holm_against_references():
    runs = pd.concat([runs_frame(seeds=6), runs_frame(seeds=5, seed=2, noise_id="pairflip_0.30")])
    sc = table_scores(runs)
    comp = stats.paired_comparisons(sc, ALM, BASES)
    assert len(comp) == 6 and set(comp["alm"]) == {"almkd"}
    # declared order: kd, fixed_alpha, ce within each cell
    assert comp["baseline"].tolist()[:3] == ["kd", "fixed_alpha", "ce"]
    for r in comp.itertuples():
        cell = sc[sc["noise_id"] == r.noise_id]
        a = cell[cell["row"] == r.alm].sort_values("seed")["score"].to_numpy()
        b = cell[cell["row"] == r.baseline].sort_values("seed")["score"].to_numpy()
        d = list(a - b)
        p, lo, hi = t_reference(d)
        assert r.n == len(d) and r.mean_diff == pytest.approx(np.mean(d))
        assert (r.p, r.ci_low, r.ci_high) == pytest.approx((p, lo, hi), rel=1e-9)
        if len(d) >= 6:
            assert r.p_wilcoxon == pytest.approx(wilcoxon_exact(d))
        else:
            assert np.isnan(r.p_wilcoxon)  # with <= 5 pairs it cannot reach 0.05
    np.testing.assert_allclose(comp["p_holm"], holm_reference(comp["p"]))
    assert (comp["marker"] == np.where(comp["p_holm"] < 0.05,
                                       np.where(comp["mean_diff"] > 0, "+", "-"), "")).all()


def test_cells_of_equal_size_are_tested_row_by_row():
    """Several cells share one n (one vectorised call per n): every row must still be its
    own cell's test, whatever the order of the input rows."""
    runs = pd.concat([runs_frame(seeds=n, seed=i, noise_id=f"symmetric_0.{i + 1}0",
                                 noise_sd=0.005)
                      for i, n in enumerate([5, 6, 5, 6, 5])], ignore_index=True)
    sc = table_scores(runs).sample(frac=1.0, random_state=0)
    comp = stats.paired_comparisons(sc, ALM, BASES)
    assert len(comp) == 15
    for r in comp.itertuples():
        cell = sc[sc["noise_id"] == r.noise_id]
        a = cell[cell["row"] == r.alm].sort_values("seed")["score"].to_numpy()
        b = cell[cell["row"] == r.baseline].sort_values("seed")["score"].to_numpy()
        p, lo, hi = t_reference(list(a - b))
        assert (r.n, r.p, r.ci_low, r.ci_high) == pytest.approx((len(a), p, lo, hi), rel=1e-9)


def test_only_declared_baselines_are_compared_and_form_the_holm_family():
    sc = table_scores(runs_frame(seeds=6))
    only_kd = stats.paired_comparisons(sc, ALM, ("kd",))
    assert only_kd["baseline"].tolist() == ["kd"]
    assert only_kd["p_holm"].item() == pytest.approx(only_kd["p"].item())  # a family of one
    assert stats.paired_comparisons(sc, (), BASES).empty


def test_markers_never_depend_on_which_baseline_has_the_best_test_mean():
    """fixed_alpha has the best baseline test mean and almkd does not beat it; almkd is
    still marked better than kd (the old code tested only against the best baseline)."""
    runs = runs_frame(seeds=8, gain=0.03, fa_gain=0.05, noise_sd=0.002)
    comp = stats.paired_comparisons(table_scores(runs), ALM, BASES)
    marks = dict(zip(comp["baseline"], comp["marker"], strict=True))
    assert marks == {"kd": "+", "fixed_alpha": "-", "ce": "+"}


def test_zero_variance_difference_has_no_test_and_no_marker():
    runs = runs_frame(seeds=4)
    kd = runs["method"] == "kd"
    runs.loc[runs["method"] == "almkd", "test_acc_best_val"] = (
        runs.loc[kd, "test_acc_best_val"].to_numpy() + 0.01)
    comp = stats.paired_comparisons(table_scores(runs), ALM, BASES)
    r = comp[comp["baseline"] == "kd"].iloc[0]
    assert np.isnan(r.p) and r.marker == "" and r.ci_low == pytest.approx(1.0)
    tested = comp["p"].notna()
    assert tested.sum() == 2  # the family: the two comparisons with a test
    np.testing.assert_allclose(comp.loc[tested, "p_holm"], holm_reference(comp.loc[tested, "p"]))


def test_differences_equal_up_to_float_noise_are_flat():
    """almkd = kd + 0.013 in every seed: 100 * acc leaves differences that differ in the
    15th digit; a t-test on them would give p ~ 1e-58 and a marker."""
    rng = np.random.default_rng(7)
    runs = pd.concat([runs_frame(seeds=5, seed=i, noise_id=f"symmetric_0.{i + 1}0")
                      for i in range(3)], ignore_index=True)
    kd = runs["method"] == "kd"
    runs.loc[kd, "test_acc_best_val"] = rng.uniform(0.6, 0.8, kd.sum())
    runs.loc[runs["method"] == "almkd", "test_acc_best_val"] = (
        runs.loc[kd, "test_acc_best_val"].to_numpy() + 0.013)
    comp = stats.paired_comparisons(table_scores(runs), ALM, ("kd",))
    assert comp["p"].isna().all() and (comp["marker"] == "").all()
    assert comp["mean_diff"].to_numpy() == pytest.approx(1.3)


def nct_effect(n, alpha, power=0.8):
    """The effect a two-sided one-sample t-test over n detects with the given power, from the
    noncentral t directly (upper bracket found by doubling)."""
    crit = ss.t.ppf(1 - alpha / 2, n - 1)

    def excess(d):
        nc = d * math.sqrt(n)
        lower = ss.nct.cdf(-crit, n - 1, nc)  # about 0; scipy gives NaN far in the tail
        return ss.nct.sf(crit, n - 1, nc) + (0.0 if np.isnan(lower) else lower) - power

    hi = 1.0
    while excess(hi) < 0:
        hi *= 2
    return optimize.brentq(excess, hi / 2 if hi > 1 else 1e-6, hi, xtol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 5, 10])
@pytest.mark.parametrize("m", [1, 12, 60, 120, 240])
def test_effect_for_power_against_the_noncentral_t(n, m):
    assert stats.effect_for_power(n, 0.05 / m) == pytest.approx(nct_effect(n, 0.05 / m),
                                                                 rel=1e-6)


def test_minimum_detectable_pools_the_table():
    sc = table_scores(pd.concat([runs_frame(seeds=5, noise_sd=0.01, seed=i,
                                            noise_id=f"symmetric_0.{i + 1}0") for i in range(4)]))
    comp = stats.paired_comparisons(sc, ALM, BASES)
    mde = stats.minimum_detectable(comp)
    sd = math.sqrt(sum(s ** 2 for s in comp["sd_diff"]) / len(comp))
    assert mde["n"] == 5 and mde["m"] == 12 and mde["sd"] == pytest.approx(sd)
    assert mde["unadjusted"] == pytest.approx(nct_effect(5, 0.05) * sd, rel=1e-6)
    assert mde["holm"] == pytest.approx(nct_effect(5, 0.05 / 12) * sd, rel=1e-6)


# ---------------------------------------------------------------- aggregate verdicts


def _cells(k_by_n, effect, rng):
    """Scores frame of one setup with cells of given seed counts; almkd = kd + effect."""
    rows = []
    c = 0
    for n, k in k_by_n.items():
        for _ in range(k):
            for s in range(n):
                kd = rng.normal(70, 1)
                for row, v in (("kd", kd), ("almkd", kd + effect + rng.normal(0, 1)),
                               ("ce", kd - 1 + rng.normal(0, 1))):
                    rows.append({"dataset": f"d{c}", "noise_id": "symmetric_0.20",
                                 "setup": "single", "seed": s, "row": row, "score": v,
                                 "method": row})
            c += 1
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- ranks


def test_friedman_and_nemenyi_per_setup_against_formulas():
    frames = [runs_frame(seed=i, noise_sd=0.01).assign(noise_id=f"symmetric_0.{i + 1}0")
              for i in range(6)]
    runs = pd.concat(frames)
    multi = runs[runs["setup"] != "none"].assign(setup="multi", setup_id="multi-2t-x")
    summary = scores.summarise(table_scores(pd.concat([runs, multi])))
    for setup in ("single", "multi"):
        s = summary[summary["setup"] == setup]
        avg, test, nem = ranks.setup_ranks(s)
        wide = s.pivot_table(index="noise_id", columns="row", values="mean")
        assert test["blocks"] == 6 and test["methods"] == 4  # ce counted once per setup
        r = wide.rank(axis=1, ascending=False)
        ref = r.mean()
        for row in avg.itertuples():
            assert row.avg_rank == pytest.approx(ref[row.row])
        n, k = r.shape
        chi2 = 12 * n / (k * (k + 1)) * ((ref - (k + 1) / 2) ** 2).sum()
        assert test["statistic"] == pytest.approx(chi2)
        # a permutation p, not the chi-square approximation (tests/analysis/test_table_traps.py)
        assert test["p_method"] == "Monte Carlo, 9999 resamples" and test["p"] < 0.05
        se = math.sqrt(k * (k + 1) / (6 * n))
        for i, j in itertools.combinations(wide.columns, 2):
            q = abs(ref[i] - ref[j]) / se * math.sqrt(2)
            assert nem.loc[i, j] == pytest.approx(
                ss.studentized_range.sf(q, k, np.inf), abs=2e-3), (i, j)


# ---------------------------------------------------------------- tables


def _table(runs=None, mixed=frozenset()):
    runs = runs_frame(gain=0.03) if runs is None else runs
    sc = table_scores(runs)
    summary = scores.summarise(sc)
    comp = stats.paired_comparisons(sc, ALM, BASES)
    v = verdicts.finalise(verdicts.setup_verdicts(sc, "single", "best", ALM, BASES))
    teachers = pd.DataFrame([{"dataset": "digits", "noise_id": "symmetric_0.40",
                              "setup": "single", "teacher_acc": 0.8,
                              "teacher_agreement_noisy": 0.6,
                              "teacher_agreement_clean": 0.7}])
    return tables.build_table("single", "best", summary, comp, teachers, baselines=BASES,
                              mixed=set(mixed), mde=stats.minimum_detectable(comp),
                              verdicts=v, n_verdicts=len(v))


def test_markdown_table():
    md = tables.to_markdown(_table())
    body = md.split("## Per cell")[1]
    row = next(line for line in body.splitlines() if line.startswith("| almkd"))
    assert "**" in row and "(+K +F +C)" in row  # best mean, better than each baseline
    assert [line.split("|")[1].strip() for line in body.splitlines()
            if line.startswith("| ")][1:] == [
        "ce", "kd", "fixed_alpha", "chosen alpha", "almkd‡", "teacher acc",
        "teacher agreement (noisy labels)", "teacher agreement (clean labels)"]
    assert "‡: trains on clean labels, the meta split (almkd)" in md  # the clean budget
    cells = {line.split("|")[1].strip(): line.split("|")[2].strip()
             for line in body.splitlines() if line.startswith("| teacher")}
    assert cells == {"teacher acc": "80.00", "teacher agreement (noisy labels)": "60.00",
                     "teacher agreement (clean labels)": "70.00"}
    assert "Holm-corrected over the 3 comparisons" in md and "n = 5 seeds" in md
    assert "80% power from" in md and "K = kd, F = fixed_alpha, C = ce" in md
    verdict = md.split("## Verdicts")[1].split("## Per cell")[0]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in verdict.splitlines()
             if line.startswith("| in_these") or line.startswith("| across")]
    assert [c[:4] for c in cells] == [[s, "almkd", b, "1"] for b in BASES
                                      for s in ("in_these_cells", "across_tasks")]
    # one cell: across tasks nothing is testable, and the label says what it would need
    # (3 rows in the family: 2/2^k < 0.05 / 3 needs k = 7)
    assert {c[-1] for c in cells if c[0] == "across_tasks"} == {"not testable (needs 7 cells)"}
    assert "no difference" not in md


def test_mixed_cell_is_marked_in_every_format():
    t = _table(mixed={("digits", "symmetric_0.40", "single")})
    assert "symmetric_0.40†" in tables.to_markdown(t)
    assert r"$^\dagger$" in tables.to_latex(t)
    assert tables.tidy(t)["mixed"].all()


def test_latex_table_is_a_standalone_booktabs_document_split_by_dataset():
    runs = pd.concat([runs_frame(gain=0.03),
                      runs_frame(seed=4).assign(dataset="synthetic")])
    tex = tables.to_latex(_table(runs))
    assert tex.startswith("\\documentclass") and "\\usepackage{booktabs}" in tex
    for token in ("\\toprule", "\\midrule", "\\bottomrule", "\\textbf{", "$^{+K,+F,+C}$",
                  "$\\pm$", "fixed\\_alpha", "\\end{document}"):
        assert token in tex, token
    assert tex.count("\\toprule") == 2  # one tabular per dataset
    assert "\\textbackslash" not in tex


def test_latex_compiles_when_a_tex_engine_is_installed(tmp_path):
    import shutil
    import subprocess

    if not shutil.which("pdflatex"):
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-extra)")
    (tmp_path / "t.tex").write_text(tables.to_latex(_table()))
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "t.tex"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:]


def test_csv_table_is_percent_with_setup_and_metric():
    import io

    runs = runs_frame()
    frame = pd.read_csv(io.StringIO(tables.to_csv(_table(runs))))
    assert list(frame.columns) == tables.TABLE_CSV_COLUMNS
    assert set(frame["row"]) == {"ce", "kd", "fixed_alpha", "almkd"}
    assert set(frame["setup"]) == {"single"} and set(frame["metric"]) == {"best"}
    ref = 100 * runs[runs["method"] == "almkd"]["test_acc_best_val"].mean()
    assert frame.loc[frame["row"] == "almkd", "mean"].item() == pytest.approx(ref, abs=1e-4)
    assert frame.loc[frame["row"] == "almkd", "markers"].item() == "+K +F +C"


def test_alpha_summary_against_hand_computed_values():
    """Two refreshes, four instances (two with a flipped label), one teacher: every number
    of the summary written out by hand."""
    from benchmark.analysis import alpha_summary

    w = np.array([[[0.5, 0.5], [0.2, 0.8], [0.9, 0.1], [0.6, 0.4]],
                  [[0.4, 0.6], [0.1, 0.9], [1.0, 0.0], [0.7, 0.3]]])  # [R, N, K]
    w[1] *= 2  # amal-style weights that do not sum to 1: the share is w_kd / (w_ce + w_kd)
    arrays = {"weights": w, "refresh_epoch": np.array([5, 10]),
              "clean_labels": np.array([0, 1, 2, 0]), "noisy_labels": np.array([0, 1, 0, 1]),
              "teacher_agrees_noisy": np.array([[[True], [False], [True], [False]]] * 2),
              "teacher_prob_noisy": np.array([[[0.95], [0.05], [0.55], [0.31]]] * 2)}
    s = alpha_summary.summarise(arrays)
    assert s["refresh_epoch"] == [5, 10] and (s["n_instances"], s["n_noisy"]) == (4, 2)
    assert s["share_clean"] == pytest.approx([(0.5 + 0.8) / 2, (0.6 + 0.9) / 2])
    assert s["share_noisy"] == pytest.approx([(0.1 + 0.4) / 2, (0.0 + 0.3) / 2])
    assert s["share_agree"] == pytest.approx([(0.5 + 0.1) / 2, (0.6 + 0.0) / 2])
    assert s["share_disagree"] == pytest.approx([(0.8 + 0.4) / 2, (0.9 + 0.3) / 2])
    assert s["n_agree"] == [2, 2] and s["n_disagree"] == [2, 2]
    b = s["bins_last"]
    # probabilities 0.95, 0.05, 0.55, 0.31 fall in bins 9, 0, 5, 3
    assert b["count"] == [1, 0, 0, 1, 0, 1, 0, 0, 0, 1]
    assert b["share_sum"] == pytest.approx([0.9, 0, 0, 0.3, 0, 0.0, 0, 0, 0, 0.6])
    assert s["quantiles_last"]["clean"][2] == pytest.approx(0.75)  # median of 0.6, 0.9
    assert alpha_summary.summarise({k: v for k, v in arrays.items() if k != "weights"}) is None


def test_alpha_table_and_figures_from_npz_or_summary(tmp_path):
    """A run read from its alpha.npz and the same run read from the alpha_summary.json a
    bundle carries give one table; the difference's interval is a t interval over seeds;
    runs without teacher diagnostics keep their weights panel and stay out of the bins."""
    import json

    from benchmark.analysis import alpha_summary, figures

    n = 40
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 3, n)
    noisy = clean.copy()
    noisy[:10] = (noisy[:10] + 1) % 3
    diffs = {}
    for seed, kd_noisy in enumerate((0.2, 0.3, 0.5)):
        share = np.where(clean != noisy, kd_noisy, 0.7)
        w = np.stack([1 - share, share], -1)[None]
        base = {"refresh_epoch": np.array([2]), "weights": w, "clean_labels": clean,
                "noisy_labels": noisy}
        with_diag = {**base, "teacher_agrees_noisy": (np.arange(n) % 2 == 0)[None, :, None],
                     "teacher_prob_noisy": np.linspace(0, 1, n)[None, :, None]}
        for method, arrays in (("almkd", with_diag), ("almkd_full", base)):
            d = tmp_path / "runs" / "digits" / "symmetric_0.20" / "single-x-cleanT" / method
            d = d / f"seed{seed}"
            d.mkdir(parents=True)
            if seed == 2 and method == "almkd":  # as an imported summary-only bundle has it
                (d / alpha_summary.SUMMARY_NAME).write_text(
                    json.dumps(alpha_summary.summarise(with_diag)))
            else:
                np.savez(d / "alpha.npz", **arrays)
        diffs[seed] = kd_noisy - 0.7
    refreshes, bins = alpha_summary.load(tmp_path)
    assert len(refreshes) == 6 and set(refreshes["teacher_labels"]) == {"clean"}
    table = alpha_summary.alpha_table(refreshes)
    row = table[table["method"] == "almkd"].iloc[0]
    d = np.array(list(diffs.values()))
    half = ss.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert (row["n"], row["share_clean"], row["diff"]) == (3, pytest.approx(0.7),
                                                            pytest.approx(d.mean()))
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(d.mean() - half),
                                               pytest.approx(d.mean() + half))
    full = refreshes[refreshes["method"] == "almkd_full"]
    assert full["share_agree"].isna().all()
    assert set(bins["method"]) == {"almkd"} and bins["count"].sum() == 3 * n
    figures.alm_weights(refreshes, tmp_path / "w")
    figures.alm_weight_by_teacher_labels(refreshes, tmp_path / "b")
    figures.alm_weight_vs_teacher(bins, tmp_path / "t")
    figures.alm_weight_vs_teacher(bins.iloc[0:0], tmp_path / "empty")  # no diagnostics
    for stem in ("w", "b", "t", "empty"):
        assert (tmp_path / f"{stem}.png").exists()


def test_rules_that_read_the_label_are_marked_and_zoo_rules_carry_markers():
    """A zoo rule is a rule under test like an ALM method (its markers against every
    baseline), and a rule whose trust in the teacher is computed from the given label (dkd,
    wsld, camkd) carries § with a legend that names it; the tables without the zoo keep
    their words."""
    runs = runs_frame(gain=0.03)
    zoo = runs[runs["method"] == "almkd"].assign(method="dkd", method_id="dkd")
    zoo["path"] = zoo["path"].str.replace("/almkd/", "/dkd/")
    zoo2 = runs[runs["method"] == "almkd"].assign(method="lskd", method_id="lskd")
    zoo2["path"] = zoo2["path"].str.replace("/almkd/", "/lskd/")
    runs = pd.concat([runs, zoo, zoo2], ignore_index=True)
    sc = table_scores(runs)
    rules = ("almkd", "dkd", "lskd")
    comp = stats.paired_comparisons(sc, rules, BASES)
    v = verdicts.finalise(verdicts.setup_verdicts(sc, "single", "best", rules, BASES))
    t = tables.build_table("single", "best", scores.summarise(sc), comp, pd.DataFrame(),
                           baselines=BASES, mixed=set(), mde=stats.minimum_detectable(comp),
                           verdicts=v, n_verdicts=len(v))
    md = tables.to_markdown(t)
    body = md.split("## Per cell")[1]
    names = [line.split("|")[1].strip() for line in body.splitlines() if line.startswith("| ")]
    assert names[1:] == ["ce", "kd", "fixed_alpha", "chosen alpha", "almkd‡", "dkd§", "lskd"]
    dkd_row = next(line for line in body.splitlines() if line.startswith("| dkd§"))
    assert "(+K +F +C)" in dkd_row
    assert ("§: computes its trust in the teacher from the given (noisy) label (dkd)"
            in md)
    assert "Markers after a rule under test (an ALM method or a trust rule of the zoo)" in md
    assert "Markers after an ALM method" in tables.to_markdown(_table())
    assert "§" not in tables.to_markdown(_table())


def test_legends_name_the_rules_under_test():
    """The report's legends were written for the ALM methods: they keep their words (and the
    reference tables their bytes) when every rule under test is one, and speak of rules
    under test once the zoo is among them, leaving no 'ALM method' behind."""
    from benchmark.analysis import headline, report
    from benchmark.analysis.scores import for_rules

    for legend in (headline.LEGEND, report.VERDICT_LEGEND, report.MODERATOR_LEGEND):
        assert for_rules(legend, ["almkd", "amal (meta_every=5)"]) == legend
        zoo = for_rules(legend, ["almkd", "dkd"])
        assert "ALM" not in zoo and "rule" in zoo and zoo != legend
    assert for_rules("# Headline: the ALM methods against the baselines", ["wsld"]) == (
        "# Headline: the rules under test against the baselines")
    assert for_rules("# Verdicts: each ALM method against each declared baseline",
                     ["almkd", "tfkd"]) == (
        "# Verdicts: each rule under test against each declared baseline")


def test_gain_over_the_strongest_clean_budget_baseline_by_hand():
    """Two cells, three seeds: the bar is the clean-budget baseline with the higher mean
    (kd_union in one cell, ce_clean in the other; kd, a baseline without clean labels, never),
    the gain is paired by seed, the interval is the t formula written out."""
    from scipy import stats as ss

    from benchmark.analysis.scores import gains_over_clean_budget

    table = {  # (setup, row) -> per-seed scores
        ("single", "kd"): [90.0, 91.0, 92.0],  # the highest, but no clean labels
        ("single", "ce_clean"): [70.0, 71.0, 72.0],
        ("single", "kd_union"): [75.0, 74.0, 76.0],
        ("single", "amal"): [77.0, 79.0, 76.0],
        ("single", "wsld"): [70.0, 70.0, 70.0],
        ("single-cleanT", "ce_clean"): [70.0, 71.0, 72.0],
        ("single-cleanT", "kd_union"): [60.0, 61.0, 62.0],
        ("single-cleanT", "amal"): [71.0, 70.0, 75.0],
    }
    sc = pd.DataFrame([{"dataset": "d", "noise_id": "symmetric_0.40", "setup": s, "row": r,
                        "seed": i, "score": v} for (s, r), vals in table.items()
                       for i, v in enumerate(vals)])
    g = gains_over_clean_budget(sc).set_index(["setup", "row"])
    assert set(g.index) == {("single", "amal"), ("single", "wsld"),
                            ("single-cleanT", "amal")}
    assert g.loc[("single", "amal"), "baseline"] == "kd_union"
    assert g.loc[("single-cleanT", "amal"), "baseline"] == "ce_clean"
    d = np.array([77 - 75, 79 - 74, 76 - 76], float)
    assert g.loc[("single", "amal"), "gain"] == pytest.approx(d.mean())
    assert g.loc[("single", "amal"), "ci_half"] == pytest.approx(
        ss.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3))
    assert g.loc[("single", "wsld"), "gain"] == pytest.approx(70 - 75)
    assert g.loc[("single-cleanT", "amal"), "gain"] == pytest.approx((1 - 1 + 3) / 3)
    assert g.loc[("single-cleanT", "amal"), "teacher_labels"] == "clean"
    assert g.loc[("single", "amal"), "teacher_labels"] == "noisy"


def test_gain_figure_draws_both_teacher_conditions_and_an_empty_study(tmp_path):
    from benchmark.analysis import figures
    from benchmark.analysis.scores import GAIN_COLUMNS

    rows = [{"dataset": "d", "noise_id": f"symmetric_0.{k}0", "setup": setup,
             "teacher_labels": "clean" if setup.endswith("-cleanT") else "noisy", "row": row,
             "gain": g, "ci_half": 0.5, "n": 3, "baseline": "kd_finetune",
             "baseline_mean": 80.0}
            for k in (2, 4) for setup in ("single", "single-cleanT")
            for row, g in (("amal", 1.0 + k), ("wsld", -30.0))]
    out = figures.gain_over_clean_budget(pd.DataFrame(rows, columns=GAIN_COLUMNS),
                                         tmp_path / "gain")
    assert sorted(p.suffix for p in out) == [".pdf", ".png"]
    assert all(p.stat().st_size > 1000 for p in out)
    empty = figures.gain_over_clean_budget(pd.DataFrame(columns=GAIN_COLUMNS),
                                           tmp_path / "none")
    assert all(p.exists() for p in empty)
