"""Traps in the report tables (issue 26, item 4): each test fails on the code before its fix.

1. ``ce`` joins only the setup kinds of its own (dataset, noise), never a column of ce alone;
2. the teacher rows say which labels they agree with (noisy and clean), both shown;
3. the Friedman test is a permutation test (exact or seeded Monte Carlo, checked against a
   brute-force enumeration), and the Nemenyi post-hoc and CD diagram follow only a rejection;
4. a method's variant rows are named by the hyper-parameters that differ, study-wide;
5. bold only in a column with at least two rows.
"""

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as ss

from benchmark.analysis import figures, ranks, report, scores, stats, tables
from benchmark.analysis.collect import collect_runs, collect_teachers, resolved_hparams
from benchmark.cli import main
from benchmark.core import layout
from benchmark.core.layout import setup_kind
from tests.simulate import run_row, write_plan, write_tree

ALM, BASES = ("almkd", "amal"), ("kd", "fixed_alpha", "ce")


def _runs(cells, methods=(("ce", "ce", None, {}), ("kd", "kd", None, {}),
                          ("almkd", "almkd", None, {})), seeds=3, seed=0, given=False):
    """Rows for ``cells`` = [(dataset, noise, setup_id)], each method in each cell (ce in
    setup none); ``methods``: (method, method_id, alpha, given hparams); ``hparams`` as
    collect_runs resolves them, or with ``given`` as given (what write_tree puts in the
    spec)."""
    rng = np.random.default_rng(seed)
    rows = []
    for dataset, noise, setup_id in cells:
        for s in range(seeds):
            for method, mid, alpha, hp in methods:
                sid = "none" if method == "ce" else setup_id
                acc = 0.7 + 0.01 * rng.normal()
                rows.append(run_row(dataset, noise, sid, method, mid, alpha, s, acc,
                                    0.7 + 0.01 * rng.normal(), setup=setup_kind(sid),
                                    hparams=json.dumps(hp) if given
                                    else resolved_hparams(method, hp)))
    return pd.DataFrame(rows).drop_duplicates(["dataset", "noise_id", "setup_id", "method_id",
                                               "seed"]).reset_index(drop=True)


def _report(results, *flags):
    return main(["report", "--results", str(results), "--no-figures", *flags])


# ---------------------------------------------------------------- 1. ce where it belongs


def test_ce_joins_only_the_setup_kinds_of_its_own_dataset_and_noise():
    """The reference study's shape: synthetic has only single-cleanT, fashion_mnist single
    and multi; synthetic's ce must not make a ce-only column in single or multi."""
    runs = _runs([("synthetic", "symmetric_0.40", "single-mlp_8-cleanT"),
                  ("fmnist", "symmetric_0.40", "single-mlp_8"),
                  ("fmnist", "symmetric_0.40", "multi-2t-abc123")])
    sc = scores.method_scores(runs, "best")
    ce = sc[sc["row"] == "ce"].groupby("dataset")["setup"].agg(lambda s: sorted(set(s)))
    assert ce.to_dict() == {"fmnist": ["multi", "single"], "synthetic": ["single-cleanT"]}
    cols = sc.groupby("setup").apply(lambda g: sorted(set(g["dataset"])), include_groups=False)
    assert cols.to_dict() == {"multi": ["fmnist"], "single": ["fmnist"],
                              "single-cleanT": ["synthetic"]}
    # completeness judges the same cells
    from benchmark.analysis.completeness import _table_cells

    cells = _table_cells(runs)
    assert (sorted(map(tuple, cells[cells["method"] == "ce"][["dataset", "setup"]]
                       .drop_duplicates().to_numpy()))
            == [("fmnist", "multi"), ("fmnist", "single"), ("synthetic", "single-cleanT")])


def test_a_wanted_setup_without_cells_still_gets_an_empty_table(tmp_path):
    """The plan names a self setup none of whose runs finished: its tables exist, empty; the
    single table has no synthetic column of ce alone."""
    runs = _runs([("synthetic", "symmetric_0.40", "single-mlp_8-cleanT"),
                  ("fmnist", "symmetric_0.40", "single-mlp_8")])
    write_tree(tmp_path, runs, plan=False)
    unfinished = "results/runs/fmnist/symmetric_0.40/self/kd/seed0"
    write_plan(tmp_path, list(runs["path"]) + [unfinished], alm=("almkd",),
               baselines=("kd", "ce"))
    assert _report(tmp_path) == 0
    single = pd.read_csv(tmp_path / "tables" / "single_best.csv")
    assert set(single["dataset"]) == {"fmnist"}
    assert pd.read_csv(tmp_path / "tables" / "self_best.csv").empty
    assert "# self:" in (tmp_path / "tables" / "self_best.md").read_text()
    clean = pd.read_csv(tmp_path / "tables" / "single-cleanT_best.csv")
    assert set(clean["dataset"]) == {"synthetic"} and "ce" in set(clean["row"])


# ---------------------------------------------------------------- 2. teacher agreement


def _teacher_metrics(d, agreement: dict) -> None:
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({
        "kind": "teacher", "epochs": 3, "best_epoch": 2, "test_acc_best_val": 0.8,
        "test_acc_last": 0.8, "val_acc_best": 0.8, "val_acc_last": 0.8,
        "spec": {"seed": int(d.name.removeprefix("seed")), "labels": {}},
        "teacher": agreement}))


def test_teacher_rows_show_agreement_with_the_noisy_and_the_clean_labels(tmp_path):
    base = tmp_path / "teachers" / "d0" / "symmetric_0.40"
    _teacher_metrics(base / "mlp_8" / "seed0", {"agreement_given": 0.6, "agreement_noisy": 0.6,
                                                 "agreement_clean": 0.7})
    _teacher_metrics(base / "mlp_8" / "seed1", {"agreement_given": 0.5, "agreement_noisy": 0.5,
                                                 "agreement_clean": 0.9})
    # an older teacher of another cell: no agreement_clean recorded
    _teacher_metrics(tmp_path / "teachers" / "d1" / "symmetric_0.40" / "mlp_8" / "seed0",
                     {"agreement_given": 0.4, "agreement_noisy": 0.4})
    teachers = collect_teachers(tmp_path)
    assert "agreement_clean" in teachers
    assert np.isnan(teachers.loc[teachers["dataset"] == "d1", "agreement_clean"].item())
    runs = _runs([("d0", "symmetric_0.40", "single-mlp_8"),
                  ("d1", "symmetric_0.40", "single-mlp_8")], seeds=2)
    runs = runs[(runs["dataset"] == "d0") | (runs["seed"] == 0)]
    ctx = report.teacher_context(runs, teachers).set_index("dataset")
    assert ctx.loc["d0", "teacher_agreement_noisy"] == pytest.approx(0.55)
    assert ctx.loc["d0", "teacher_agreement_clean"] == pytest.approx(0.8)
    assert np.isnan(ctx.loc["d1", "teacher_agreement_clean"])
    sc = scores.common_seeds(scores.method_scores(runs, "best"))
    comp = stats.paired_comparisons(sc, ("almkd",), ("kd",))
    t = tables.build_table("single", "best", scores.summarise(sc), comp, ctx.reset_index(),
                           baselines=("kd",), mixed=set(), mde=None, verdicts=pd.DataFrame(
                               columns=["setup", "metric"]), n_verdicts=0)
    _, body = tables._grid(t, t.columns, lambda x: x, lambda m: m, " ")
    rows = {r[0]: r[1:] for r in body if r[0].startswith("teacher")}
    assert rows == {"teacher acc": ["80.00", "80.00"],
                    "teacher agreement (noisy labels)": ["55.00", "40.00"],
                    "teacher agreement (clean labels)": ["80.00", ""]}
    legend = t.legend()
    assert "teacher agreement (noisy labels): how often their predictions on the training " \
           "split equal its noisy labels" in legend
    assert "teacher agreement (clean labels): how often they equal its clean labels" in legend
    assert "given (noisy)" not in legend


# ---------------------------------------------------------------- 3. Friedman


def _brute_force_p(values: np.ndarray) -> float:
    """P(chi2 >= observed) over every one of the (k!)^b within-block permutations, each
    statistic from scratch: ranks (average for ties), rank sums, tie correction."""
    b, k = values.shape

    def chi2(rows):
        rank_rows = [ss.rankdata(r) for r in rows]
        sums = [sum(r[j] for r in rank_rows) for j in range(k)]
        stat = 12 / (b * k * (k + 1)) * sum(s * s for s in sums) - 3 * b * (k + 1)
        ties = sum(t ** 3 - t for r in rows for t in
                   [list(r).count(v) for v in set(r)])
        return stat / (1 - ties / (b * k * (k * k - 1)))

    observed = chi2(values)
    perms = list(itertools.permutations(range(k)))
    count = total = 0
    for choice in itertools.product(perms, repeat=b):
        rows = [values[i][list(p)] for i, p in enumerate(choice)]
        count += chi2(rows) >= observed - 1e-9
        total += 1
    return count / total


def _brute_force_p_fast_stat(values: np.ndarray) -> float:
    """The same enumeration for larger (k!)^b: each block's rank vector permuted (ranks
    permute with the values), the rank sums added up naively."""
    b, k = values.shape
    rank_rows = [tuple(ss.rankdata(r)) for r in values]
    observed = sum(sum(r[j] for r in rank_rows) ** 2 for j in range(k))
    count = total = 0
    perms = [list(itertools.permutations(r)) for r in rank_rows]
    for choice in itertools.product(*perms):
        s = sum(sum(r[j] for r in choice) ** 2 for j in range(k))
        count += s >= observed - 1e-9
        total += 1
    return count / total


def test_the_vectorised_statistic_is_scipys_friedman_chi_square():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 4, (20, 5, 4)).astype(float)  # many ties
    batch[0] = rng.normal(size=(5, 4))
    got = ranks.friedman_chi2(batch)
    for x, g in zip(batch, got, strict=True):
        assert g == pytest.approx(ss.friedmanchisquare(*x.T).statistic)


@pytest.mark.parametrize("values", [
    [[3.0, 1.0, 2.0], [2.5, 0.5, 1.0], [9.0, 8.0, 7.0]],
    [[1.0, 1.0, 2.0], [4.0, 3.0, 3.0], [0.1, 0.3, 0.2]],  # ties
    [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]],  # concordant: p = 1/36
])
def test_exact_p_is_the_brute_force_enumeration_k3_b3(values):
    values = np.array(values)
    test = ranks.friedman_test(pd.DataFrame(values), "single")
    assert test["p_method"] == "exact" and (test["blocks"], test["methods"]) == (3, 3)
    assert test["p"] == pytest.approx(_brute_force_p(values), abs=1e-12)
    assert test["statistic"] == pytest.approx(ss.friedmanchisquare(*values.T).statistic)


def test_the_reference_studys_two_blocks_of_six_methods():
    """The reference's single setup: 2 cells, 6 methods ranked alike. scipy's chi-square
    approximation says 0.075; the exact p is 1/720 (what the brute force counts); with
    (6!)^2 > 100,000 permutations the report's test is a seeded Monte Carlo one."""
    values = np.array([[71.0, 72, 73, 74, 75, 76], [80.0, 80.5, 81, 81.5, 82, 83]])
    assert ss.friedmanchisquare(*values.T).pvalue == pytest.approx(0.0752, abs=1e-4)
    wide = pd.DataFrame(values, columns=list("abcdef"))
    exact = ranks.friedman_test(wide, "single", exact_max=10 ** 6)
    assert exact["p_method"] == "exact"
    assert exact["p"] == pytest.approx(_brute_force_p_fast_stat(values), abs=1e-12)
    assert exact["p"] == pytest.approx(1 / 720)
    mc = ranks.friedman_test(wide, "single")
    assert mc["p_method"] == "Monte Carlo, 9999 resamples"
    assert mc == ranks.friedman_test(wide, "single")  # seeded from the setup's name
    assert abs(mc["p"] - 1 / 720) < 4 * math.sqrt(1 / 720 / 9999) + 1e-4
    # a 2-block k = 3 case, small enough to be exact in the report itself
    small = np.array([[1.0, 2.0, 3.0], [2.0, 1.0, 3.0]])
    test = ranks.friedman_test(pd.DataFrame(small), "single")
    assert test["p_method"] == "exact" and test["p"] == pytest.approx(_brute_force_p(small))


def _summary(values, setup="single"):
    b, k = np.shape(values)
    return pd.DataFrame([{"dataset": f"d{i}", "noise_id": "symmetric_0.40", "setup": setup,
                          "row": f"m{j}", "mean": values[i][j]}
                         for i in range(b) for j in range(k)])


def test_nemenyi_and_the_cd_diagram_only_after_a_rejection(tmp_path):
    concordant = [[1.0, 2, 3, 4, 5, 6], [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]]
    avg, test, nem = ranks.setup_ranks(_summary(concordant))
    assert test["p"] < 0.05 and nem is not None  # the chi-square approximation: 0.075
    assert figures.critical_difference(avg, nem, test, tmp_path / "cd_single", "t") == [
        tmp_path / "cd_single.png", tmp_path / "cd_single.pdf"]
    discordant = [[1.0, 2, 3], [3.0, 2, 1], [2.0, 3, 1]]
    avg, test, nem = ranks.setup_ranks(_summary(discordant, "multi"))
    assert test["p"] >= 0.05 and test["p_method"] == "exact" and nem is None
    assert figures.critical_difference(avg, nem, test, tmp_path / "cd_multi", "t") == []
    for too_small in ([[1.0, 2, 3]], [[1.0, 2], [2.0, 1], [1.0, 3]]):
        avg, test, nem = ranks.setup_ranks(_summary(too_small, "self"))
        assert test == {} and nem is None
        assert figures.critical_difference(avg, nem, test, tmp_path / "cd_self", "t") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cd_single.pdf", "cd_single.png"]


def test_ranks_markdown_says_per_setup_what_was_tested_and_drawn():
    a = report.Analysis(["multi", "self", "single"])
    data = {"single": [[1.0, 2, 3, 4, 5, 6], [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]],
            "multi": [[1.0, 2, 3], [3.0, 2, 1], [2.0, 3, 1]], "self": [[1.0, 2, 3]]}
    for metric in scores.METRICS:
        for setup, values in data.items():
            a.ranks[(setup, metric)] = ranks.setup_ranks(_summary(values, setup))
    md = report._ranks_markdown(a)
    best = md.split("## single: test accuracy at the best")[1].split("##")[0]
    assert "(Monte Carlo, 9999 resamples)" in best and "Rejected at 0.05" in best
    assert "figures/cd_single.png" in best and "Nemenyi p-values" in best
    multi = md.split("## multi: test accuracy at the best")[1].split("##")[0]
    assert "(exact). Not rejected at 0.05: no Nemenyi post-hoc, no critical-difference" in multi
    self_ = md.split("## self: test accuracy at the best")[1].split("##")[0]
    assert "Friedman test: not made (1 complete cells and 3 methods" in self_
    last = md.split("## single: test accuracy at the last")[1].split("##")[0]
    assert "Rejected at 0.05" in last and "cd_single" not in last


def test_the_plan_declares_no_cd_figure_and_everything_else():
    import yaml

    from benchmark.plan import grid
    from tests.conftest import REPO_ROOT

    p = grid.plan(yaml.safe_load(
        (REPO_ROOT / "workflows/config/reference_slice.yaml").read_text()))
    outs = grid.report_outputs(p)
    figs = {o.split("/figures/")[1] for o in outs if "/figures/" in o}
    assert figs == {f"{n}.{e}" for n in layout.FIGURES + layout.ALM_FIGURES for e in ("png", "pdf")}
    assert not any("/cd_" in o for o in outs)
    assert f"{p.root}/tables/ranks.md" in outs and any(o.endswith("_best.csv") for o in outs)


def test_a_stale_cd_figure_is_removed_when_no_test_rejects(tmp_path):
    runs = _runs([("d0", "symmetric_0.40", "single-mlp_8")])
    summary = scores.summarise(scores.common_seeds(scores.method_scores(runs, "best")))
    a = report.Analysis(["single"], summary={"best": summary})
    a.ranks[("single", "best")] = ranks.setup_ranks(summary)  # one block: no test
    fdir = tmp_path / "figures"
    fdir.mkdir()
    (fdir / "cd_single.png").write_bytes(b"old")
    out = report._figures(fdir, a, runs.iloc[0:0], pd.DataFrame(), pd.DataFrame())
    assert not (fdir / "cd_single.png").exists()
    assert not any("cd_" in p.name for p in out)


# ---------------------------------------------------------------- 4. variant rows

ALMKD_5 = {"meta_every": 5, "meta_start": 5}
ALMKD_10 = {"meta_every": 10, "meta_start": 10}


def test_collect_resolves_hparams_over_the_defaults(tmp_path):
    """A variant that gives the defaults explicitly and one that gives nothing are the
    same; the column is compact sorted JSON."""
    runs = _runs([("d0", "symmetric_0.40", "single-mlp_8")],
                 methods=(("almkd", "almkd", None, {}),), seeds=1)
    explicit = runs.assign(method_id="almkd-abcdef", hparams=json.dumps(ALMKD_10))
    write_tree(tmp_path, pd.concat([runs.assign(hparams="{}"), explicit]))
    found = collect_runs(tmp_path)
    assert "hparams" in found.columns and found["hparams"].nunique() == 1
    hp = found["hparams"].iloc[0]
    assert json.loads(hp)["meta_lr"] == 1500.0 and " " not in hp
    assert list(json.loads(hp)) == sorted(json.loads(hp))


def test_a_method_with_variants_is_named_by_what_differs_in_every_setup():
    """almkd has two variants in single and one in multi: both setups name its rows by
    meta_every and meta_start (today: 'almkd-<hash>' in single, plain 'almkd' in multi,
    where it meant the other variant); kd has one variant and keeps its name; fixed_alpha's
    alphas are one row; a method id that only spells out the defaults is no variant."""
    fa = (("fixed_alpha", "fixed_alpha-a0.30", 0.3, {"alpha": 0.3}),
          ("fixed_alpha", "fixed_alpha-a0.70", 0.7, {"alpha": 0.7}))
    single = _runs([("d0", "symmetric_0.40", "single-mlp_8")], methods=(
        ("ce", "ce", None, {}), ("kd", "kd", None, {}),
        ("almkd", "almkd-555555", None, ALMKD_5), ("almkd", "almkd", None, {})) + fa)
    multi = _runs([("d0", "symmetric_0.40", "multi-2t-x")], methods=(
        ("kd", "kd-aaaaaa", None, {"kd_weight": 0.9, "T": 4.0}),
        ("almkd", "almkd", None, {})) + fa)
    sc = scores.method_scores(pd.concat([single, multi], ignore_index=True), "best")
    rows = sc.groupby("setup")["row"].agg(lambda r: sorted(set(r))).to_dict()
    five, ten = ("almkd (meta_every=5, meta_start=5)", "almkd (meta_every=10, meta_start=10)")
    assert rows == {"single": sorted(["ce", "kd", "fixed_alpha", five, ten]),
                    "multi": sorted(["ce", "kd", "fixed_alpha", ten])}
    for row in rows["single"]:
        assert scores.base_method(row) == row.split(" ")[0]
    assert scores.base_method("almkd-7082aa") == "almkd"
    assert scores.base_method("fixed_alpha-a0.30") == "fixed_alpha"
    summary = scores.summarise(scores.common_seeds(sc))
    s = summary[summary["setup"] == "single"].set_index("row")
    assert summary[summary["row"] == "kd"].set_index("setup")["method_id"].to_dict() == {
        "multi": "kd-aaaaaa", "single": "kd"}
    assert s.loc["fixed_alpha", "method_id"] == "fixed_alpha-a0.30;fixed_alpha-a0.70"
    assert s.loc[five, "method_id"] == "almkd-555555"
    assert json.loads(s.loc[five, "hparams"])["meta_every"] == 5
    assert "alpha" not in json.loads(s.loc["fixed_alpha", "hparams"])
    # the users of row names: order, clean-label mark, declared comparisons
    assert tables.row_key(ten) < tables.row_key("amal") and tables.uses_clean_labels(five)
    assert stats.declared_pairs(rows["single"], ("almkd",), ("kd", "ce")) == [
        (ten, "kd"), (ten, "ce"), (five, "kd"), (five, "ce")]


def test_names_format_numbers_with_g_and_differ_by_exactly_what_differs():
    runs = pd.DataFrame([{"method": "amal", "hparams": resolved_hparams("amal", hp)}
                         for hp in ({"meta_lr": 1500.0}, {"meta_lr": 2.5e-4, "T": 2})])
    assert set(scores.variant_names(runs).values()) == {"amal (T=4, meta_lr=1500)",
                                                        "amal (T=2, meta_lr=0.00025)"}
    close = pd.DataFrame([{"method": "amal", "hparams": resolved_hparams("amal", {"meta_lr": v})}
                          for v in (1234567.0, 1234568.0)])  # :g would merge them
    assert len(set(scores.variant_names(close).values())) == 2
    assert tables.short("kd (T=2)") == "K(T=2)" and tables.short("kd") == "K"


def test_every_row_csv_names_its_method_ids_and_hparams(tmp_path):
    fa = (("fixed_alpha", "fixed_alpha-a0.30", 0.3, {"alpha": 0.3}),
          ("fixed_alpha", "fixed_alpha-a0.70", 0.7, {"alpha": 0.7}))
    runs = _runs([("d0", "symmetric_0.40", "single-mlp_8"),
                  ("d0", "symmetric_0.20", "single-mlp_8")], methods=(
        ("ce", "ce", None, {}), ("kd", "kd", None, {}), ("almkd", "almkd", None, {}),
        ("almkd", "almkd-555555", None, ALMKD_5)) + fa, given=True)
    write_tree(tmp_path, runs, plan=False)
    write_plan(tmp_path, list(runs["path"]), alm=("almkd",), baselines=("kd", "fixed_alpha"))
    assert _report(tmp_path) == 0
    t = pd.read_csv(tmp_path / "tables" / "single_best.csv", keep_default_na=False)
    assert {"method_id", "hparams"} <= set(t.columns)
    row = t.set_index(["noise_id", "row"])
    five = "almkd (meta_every=5, meta_start=5)"
    assert row.loc[("symmetric_0.40", five), "method_id"] == "almkd-555555"
    assert row.loc[("symmetric_0.40", "fixed_alpha"), "method_id"] == (
        "fixed_alpha-a0.30;fixed_alpha-a0.70")
    assert json.loads(row.loc[("symmetric_0.40", five), "hparams"])["meta_start"] == 5
    comp = pd.read_csv(tmp_path / "tables" / "comparisons.csv", keep_default_na=False)
    for side in ("alm", "baseline"):
        assert {f"{side}_method_id", f"{side}_hparams"} <= set(comp.columns)
    c = comp[(comp["alm"] == five) & (comp["baseline"] == "fixed_alpha")].iloc[0]
    assert c["alm_method_id"] == "almkd-555555"
    assert c["baseline_method_id"] == "fixed_alpha-a0.30;fixed_alpha-a0.70"
    md = (tmp_path / "tables" / "single_best.md").read_text()
    assert f"| {five}‡" in md


def test_two_method_ids_of_one_variant_in_one_cell_are_duplicates(tmp_path):
    """kd and kd-aaaaaa (the defaults spelled out) are one row: two runs of it for one seed
    would be averaged as two seeds, so the report refuses them, naming both folders."""
    runs = _runs([("d0", "symmetric_0.40", "single-mlp_8")], methods=(
        ("kd", "kd", None, {}), ("kd", "kd-aaaaaa", None, {"kd_weight": 0.9})),
        seeds=1, given=True)
    write_tree(tmp_path, runs)
    assert _report(tmp_path) == 2
    assert not (tmp_path / "tables").exists()


# ---------------------------------------------------------------- 5. bold


def test_bold_only_in_a_column_with_at_least_two_rows():
    """d1 has only kd (its ce ran elsewhere): one row, no bold; d0's best is bold."""
    runs = _runs([("d0", "symmetric_0.40", "single-mlp_8")], seeds=3)
    lone = _runs([("d1", "symmetric_0.40", "single-mlp_8")], methods=(("kd", "kd", None, {}),),
                 seeds=3, seed=1)
    sc = scores.common_seeds(scores.method_scores(pd.concat([runs, lone]), "best"))
    comp = stats.paired_comparisons(sc, ("almkd",), ("kd",))
    t = tables.build_table("single", "best", scores.summarise(sc), comp, pd.DataFrame(
        columns=["dataset", "noise_id"]), baselines=("kd",), mixed=set(), mde=None,
        verdicts=pd.DataFrame(columns=["setup", "metric"]), n_verdicts=0)
    best = tables.tidy(t).set_index(["dataset", "row"])["best"]
    assert not best[("d1", "kd")] and best.xs("d0", level="dataset").sum() == 1
    _, body = tables._grid(t, t.columns, lambda x: f"**{x}**", lambda m: m, " ")
    assert [r[2] for r in body if r[2]] and not any("**" in r[2] for r in body)
    assert sum("**" in r[1] for r in body) == 1
    assert ("Bold: the highest mean of a column with at least two methods (a ranking, not a "
            "test: see the markers).") in t.legend()
