"""Statistics against scipy and hand computation; tables from a synthetic results frame."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss

from benchmark import stats, tables


def runs_frame(seeds=5, gain=0.02, noise_sd=0.002, seed=0):
    """A fake tidy runs frame: one cell, ce/kd/fixed_alpha(2)/almkd, almkd better by ``gain``."""
    rng = np.random.default_rng(seed)
    rows = []
    base = rng.normal(0.70, 0.01, seeds)
    for s in range(seeds):
        def add(method, method_id, setup_id, acc, val, alpha=None, s=s):
            rows.append({"dataset": "digits", "noise_id": "symmetric_0.40",
                         "setup_id": setup_id, "setup": setup_id.split("-")[0],
                         "method": method, "method_id": method_id, "alpha": alpha, "seed": s,
                         "test_acc_best_val": acc, "test_acc_last": acc - 0.01,
                         "val_acc_best": val, "val_acc_last": val - 0.01})
        add("ce", "ce", "none", base[s] - 0.01, 0.5)
        add("kd", "kd", "single-x", base[s] + rng.normal(0, noise_sd), 0.5)
        # alpha 0.3 wins validation in even seeds, 0.7 in odd ones
        add("fixed_alpha", "fixed_alpha-a0.30", "single-x", base[s] - 0.005, 0.6 + (s % 2 == 0),
            0.3)
        add("fixed_alpha", "fixed_alpha-a0.70", "single-x", base[s] - 0.003, 0.6 + (s % 2 == 1),
            0.7)
        add("almkd", "almkd", "single-x", base[s] + gain + rng.normal(0, noise_sd), 0.5)
    return pd.DataFrame(rows)


def test_fixed_alpha_is_the_best_validation_alpha_per_seed():
    scores = stats.method_scores(runs_frame(), "best")
    fa = scores[scores["row"] == "fixed_alpha"].sort_values("seed")
    assert fa["alpha"].tolist() == [0.3, 0.7, 0.3, 0.7, 0.3]
    ce = scores[scores["row"] == "ce"]
    assert set(ce["setup"]) == {"single"}  # ce joins every setup's cell


def test_summary_matches_numpy():
    runs = runs_frame()
    summary = stats.summarise(stats.method_scores(runs, "best"))
    alm = summary[summary["row"] == "almkd"].iloc[0]
    ref = runs[runs["method"] == "almkd"]["test_acc_best_val"].to_numpy()
    assert alm["mean"] == pytest.approx(ref.mean())
    assert alm["std"] == pytest.approx(ref.std(ddof=1))
    assert alm["n"] == 5
    assert summary[summary["row"] == "fixed_alpha"].iloc[0]["alphas"] == "0.3,0.7,0.3,0.7,0.3"


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


def test_paired_tests_ci_and_holm_against_references():
    runs = runs_frame(seeds=7)
    scores = stats.method_scores(runs, "best")
    comp = stats.paired_comparisons(scores)
    assert set(comp["baseline"]) == {"ce", "kd", "fixed_alpha"} and set(comp["alm"]) == {"almkd"}
    wide = scores.pivot_table(index="seed", columns="row", values="score")
    for r in comp.itertuples():
        a, b = wide[r.alm].to_numpy(), wide[r.baseline].to_numpy()
        d = a - b
        assert r.t_p == pytest.approx(ss.ttest_rel(a, b).pvalue)
        half = ss.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        assert (r.ci_low, r.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))
        assert r.wilcoxon_p == pytest.approx(ss.wilcoxon(a, b).pvalue)  # n = 7 >= 6
    np.testing.assert_allclose(comp["t_p_holm"], holm_reference(comp["t_p"]))


def test_no_wilcoxon_below_six_pairs():
    comp = stats.paired_comparisons(stats.method_scores(runs_frame(seeds=5), "best"))
    assert comp["wilcoxon_p"].isna().all()


def test_markers_against_the_best_baseline():
    better = runs_frame(gain=0.03)
    scores = stats.method_scores(better, "best")
    summary = stats.summarise(scores)
    marks = stats.markers(summary, stats.paired_comparisons(scores))
    assert marks == {(("digits", "symmetric_0.40", "single"), "almkd"): "+"}
    worse = runs_frame(gain=-0.03)
    scores = stats.method_scores(worse, "best")
    marks = stats.markers(stats.summarise(scores), stats.paired_comparisons(scores))
    assert set(marks.values()) == {"-"}
    null = runs_frame(gain=0.0, noise_sd=0.01)
    scores = stats.method_scores(null, "best")
    assert stats.markers(stats.summarise(scores), stats.paired_comparisons(scores)) == {}


def test_ranks_and_friedman_against_scipy():
    frames = [runs_frame(seed=i).assign(noise_id=f"symmetric_0.{i + 1}0") for i in range(4)]
    summary = stats.summarise(stats.method_scores(pd.concat(frames), "best"))
    avg, test = stats.ranks(summary)
    wide = summary.pivot_table(index=["dataset", "noise_id", "setup"], columns="row",
                               values="mean")
    ref = wide.rank(axis=1, ascending=False).mean()
    for r in avg.itertuples():
        assert r.avg_rank == pytest.approx(ref[r.row])
    assert avg.iloc[0]["row"] == "almkd"
    assert test["p"] == pytest.approx(ss.friedmanchisquare(*[wide[c] for c in wide]).pvalue)


def _table():
    runs = runs_frame(gain=0.03)
    scores = stats.method_scores(runs, "best")
    summary = stats.summarise(scores)
    marks = stats.markers(summary, stats.paired_comparisons(scores))
    teachers = pd.DataFrame([{"dataset": "digits", "noise_id": "symmetric_0.40",
                              "setup": "single", "teacher_acc": 0.8, "teacher_agreement": 0.6}])
    return tables.build_table("single", "best", summary, marks, teachers)


def test_markdown_table():
    md = tables.to_markdown(_table())
    lines = md.splitlines()
    row = next(line for line in lines if line.startswith("| almkd"))
    assert "**" in row and "(+)" in row  # best mean, significantly better than best baseline
    assert [line.split("|")[1].strip() for line in lines if line.startswith("| ")][1:] == [
        "ce", "kd", "fixed_alpha", "chosen alpha", "almkd", "teacher acc", "teacher agreement"]
    assert "| teacher acc       | 80.00" in md
    assert "paired t-test" in md and "Holm" in md and "n = 5 seeds" in md


def test_latex_table_is_a_standalone_booktabs_document():
    tex = tables.to_latex(_table())
    assert tex.startswith("\\documentclass") and "\\usepackage{booktabs}" in tex
    for token in ("\\toprule", "\\midrule", "\\bottomrule", "\\textbf{", "$^{+}$", "$\\pm$",
                  "fixed\\_alpha", "\\end{document}"):
        assert token in tex, token
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


def test_csv_table():
    import io

    frame = pd.read_csv(io.StringIO(tables.to_csv(_table())))
    assert set(frame["row"]) == {"ce", "kd", "fixed_alpha", "almkd"}
    assert frame.loc[frame["row"] == "almkd", "marker"].item() == "+"


def test_alm_figures_skip_runs_without_teacher_diagnostics(tmp_path):
    """A run whose alpha.npz has weights but no teacher diagnostics (almkd_full before every
    instance was seen) keeps its weights panel and is left out of the teacher panels; it is
    never counted as 'teacher disagrees' nor binned as probability NaN."""
    from benchmark import figures

    n = 40
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 3, n)
    noisy = clean.copy()
    noisy[:10] = (noisy[:10] + 1) % 3
    w = np.stack([np.full(n, 0.3), np.full(n, 0.7)], -1)[None]
    base = {"refresh_epoch": np.array([2]), "weights": w, "clean_labels": clean,
            "noisy_labels": noisy}
    with_diag = {**base, "teacher_agrees_noisy": (np.arange(n) % 2 == 0)[None, :, None],
                 "teacher_prob_noisy": np.linspace(0, 1, n)[None, :, None]}
    for method, arrays in (("almkd", with_diag), ("almkd_full", base)):
        d = tmp_path / "runs" / "digits" / "symmetric_0.20" / "single-x" / method / "seed0"
        d.mkdir(parents=True)
        np.savez(d / "alpha.npz", **arrays)
    alpha = figures.load_alpha(tmp_path)
    full = alpha[alpha["method"] == "almkd_full"]
    assert len(full) == n and full["agree"].isna().all() and full["teacher_prob"].isna().all()
    alm = alpha[alpha["method"] == "almkd"]
    assert alm["agree"].tolist() == [1.0, 0.0] * (n // 2)
    figures.alm_weights(alpha, tmp_path / "w")
    figures.alm_weight_vs_teacher(alpha, tmp_path / "t")
    assert (tmp_path / "w.png").exists() and (tmp_path / "t.png").exists()
    only_full = alpha[alpha["method"] == "almkd_full"]
    figures.alm_weight_vs_teacher(only_full, tmp_path / "empty")  # skipped: no diagnostics
    assert (tmp_path / "empty.png").exists()
