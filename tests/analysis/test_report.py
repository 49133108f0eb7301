"""`noisykd report` on generated results trees: the plan protects the averages (extra runs
left out, duplicates refused, mixed cells marked, missing runs named), --strict, the CSV
outputs; and the calibration and power of markers and verdicts on simulated trees."""

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from benchmark.analysis import scores, stats
from benchmark.cli import main
from tests.helpers import small_runs
from tests.simulate import SETUP_ID, run_row, simulate_runs, write_plan, write_tree

ALM, BASES = ("almkd", "amal"), ("kd", "fixed_alpha", "ce")


def report(results, *flags):
    return main(["report", "--results", str(results), "--no-figures", *flags])


def read_csv(results, name):
    return pd.read_csv(results / "tables" / name)


def test_outputs_for_programs_have_the_declared_columns(tmp_path):
    write_tree(tmp_path, small_runs(gain=lambda m, c: 1.0 if m == "almkd" else 0.0))
    assert report(tmp_path) == 0
    comp = read_csv(tmp_path, "comparisons.csv")
    assert list(comp.columns[:13]) == ["setup", "metric", "dataset", "noise_id", "alm",
                                       "baseline", "n", "mean_diff", "ci_low", "ci_high", "p",
                                       "p_holm", "marker"]
    assert len(comp) == 2 * 4 * 2 * 3  # metrics x cells x ALM methods x baselines
    v = read_csv(tmp_path, "verdicts.csv")
    from benchmark.analysis.report import METHOD_ID_COLUMNS
    from benchmark.analysis.verdicts import VERDICT_COLUMNS

    assert list(v.columns) == VERDICT_COLUMNS + METHOD_ID_COLUMNS
    assert set(v["n_cells"]) == {4} and len(v) == 2 * 2 * 2 * 3  # metrics x scopes x pairs
    assert set(v["scope"]) == {"in_these_cells", "across_tasks"}
    assert not v["ci_adjusted"].any()
    m = read_csv(tmp_path, "moderators.csv")
    assert {"factor", "level", "reference", "n_strata", "verdict"} <= set(m.columns)
    # differences in points, tables in percent
    runs = small_runs(gain=lambda m, c: 1.0 if m == "almkd" else 0.0)
    one = runs[(runs["dataset"] == "d0") & (runs["noise_id"] == "symmetric_0.20")]
    ref = 100 * (one[one["method"] == "almkd"]["test_acc_best_val"].to_numpy()
                 - one[one["method"] == "kd"]["test_acc_best_val"].to_numpy()).mean()
    row = comp[(comp["metric"] == "best") & (comp["dataset"] == "d0")
               & (comp["noise_id"] == "symmetric_0.20") & (comp["alm"] == "almkd")
               & (comp["baseline"] == "kd")]
    assert row["mean_diff"].item() == pytest.approx(ref, abs=1e-4)
    table = read_csv(tmp_path, "single_best.csv")
    assert 60 < table["mean"].mean() < 80
    md = (tmp_path / "tables" / "single_best.md").read_text()
    assert md.index("## Verdicts") < md.index("## Per cell")
    assert "80% power from" in md and "in_these_cells" in md and "no difference" not in md


def test_leftover_runs_of_another_teacher_are_excluded_and_named(tmp_path, capsys):
    """The issue's scenario: runs of an earlier plan with another teacher, five more seeds of
    almkd far better, would give almkd 'n=10' and a + that came only from them."""
    runs = small_runs()
    write_tree(tmp_path, runs)
    rng = np.random.default_rng(9)
    leftover = pd.DataFrame([run_row(d, n, "single-mlp_16", "almkd", "almkd", None, s,
                                     0.9 + rng.normal(0, 0.001), 0.9)
                             for d in ("d0", "d1") for n in ("symmetric_0.20",
                                                             "symmetric_0.40")
                             for s in range(5, 10)])
    write_tree(tmp_path, leftover, plan=False, teacher="mlp_16")
    assert report(tmp_path) == 0
    err = capsys.readouterr().err
    assert "extra: 20 finished runs are not in the plan" in err
    table = read_csv(tmp_path, "single_best.csv")
    assert set(table["n"]) == {5}
    assert table[table["row"] == "almkd"]["mean"].max() < 80  # the 90% leftovers are out
    comp = read_csv(tmp_path, "comparisons.csv")
    assert set(comp["n"]) == {5} and "+" not in set(comp["marker"].dropna())
    text = (tmp_path / "tables" / "completeness.md").read_text()
    assert "single-mlp_16" in text.split("## Extra runs")[1].split("## Cells")[0]


def test_two_runs_for_one_seed_are_an_error_naming_both_folders(tmp_path, capsys):
    runs = small_runs()
    write_tree(tmp_path, runs)
    src = tmp_path / "runs/d0/symmetric_0.20" / SETUP_ID / "almkd/seed3"
    twin = tmp_path / "runs/d0/symmetric_0.20/single-mlp_16/almkd/seed3"
    shutil.copytree(src, twin)
    write_plan(tmp_path, list(runs["path"]) + ["results/runs/d0/symmetric_0.20/"
                                               "single-mlp_16/almkd/seed3"])
    assert report(tmp_path) == 2
    err = capsys.readouterr().err
    assert str(src) in err and str(twin) in err and "two finished runs" in err
    assert not (tmp_path / "tables").exists()  # nothing written


def test_mixed_specs_and_revisions_across_methods_are_marked(tmp_path, capsys):
    """All amal seeds of one cell at another commit, all almkd seeds of another cell with 40
    epochs against 20: each check is within a method consistent, across methods not."""
    runs = small_runs()
    amal = (runs["method"] == "amal") & (runs["dataset"] == "d0") & (
        runs["noise_id"] == "symmetric_0.20")
    almkd = (runs["method"] == "almkd") & (runs["dataset"] == "d1") & (
        runs["noise_id"] == "symmetric_0.40")
    write_tree(tmp_path, runs[~amal & ~almkd])
    write_tree(tmp_path, runs[amal], plan=False, commit="c1")
    write_tree(tmp_path, runs[almkd], plan=False, epochs=40)
    write_plan(tmp_path, list(runs["path"]))
    assert report(tmp_path) == 0
    assert "mixed: 2 table cells" in capsys.readouterr().err
    text = (tmp_path / "tables" / "completeness.md").read_text()
    mixed = text.split("## Cells whose methods mix")[1].split("## Cells with runs")[0]
    assert "| d0        | symmetric_0.20 | single  | 2 code revisions" in mixed
    assert "training spec differ across methods" in mixed and "d1" in mixed
    md = (tmp_path / "tables" / "single_best.md").read_text()
    assert "d0 symmetric_0.20†" in md and "d1 symmetric_0.40†" in md
    assert "d0 symmetric_0.40 " in md and "d0 symmetric_0.40†" not in md
    table = read_csv(tmp_path, "single_best.csv")
    assert table.groupby(["dataset", "noise_id"])["mixed"].first().tolist() == [
        True, False, False, True]


def test_missing_runs_are_named_and_strict_fails_before_writing(tmp_path, capsys):
    runs = small_runs()
    write_tree(tmp_path, runs[runs["path"] != runs["path"].iloc[7]])
    write_plan(tmp_path, list(runs["path"]))
    assert report(tmp_path, "--strict") == 2
    err = capsys.readouterr().err
    assert "--strict" in err and "missing: 1 planned runs" in err
    assert not (tmp_path / "tables").exists()
    assert report(tmp_path) == 0
    assert "missing: 1 planned runs" in capsys.readouterr().err
    text = (tmp_path / "tables" / "completeness.md").read_text()
    assert runs["path"].iloc[7].split("/")[-2] in text.split("## Extra")[0]


def test_a_complete_consistent_tree_reports_no_problem(tmp_path, capsys):
    write_tree(tmp_path, small_runs())
    assert report(tmp_path, "--strict") == 0
    assert capsys.readouterr().err == ""


def test_plan_of_earlier_versions_and_no_plan(tmp_path, capsys):
    runs = small_runs()
    write_tree(tmp_path, runs, plan=False)
    (tmp_path / "expected_runs.json").write_text(json.dumps(sorted(runs["path"])))
    assert report(tmp_path, "--strict") == 0  # a bare list still names the runs
    (tmp_path / "expected_runs.json").unlink()
    assert report(tmp_path, "--strict") == 0
    v = read_csv(tmp_path, "verdicts.csv")
    assert set(v["alm"]) == {"almkd", "amal"} and set(v["baseline"]) == set(BASES)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("margin", -1, "comparisons.margin -1: expected a positive number"),
    ("margin", True, "comparisons.margin True"),
    ("moderators", ["teacher"], "comparisons.moderators: unknown factor 'teacher'"),
])
def test_a_bad_margin_or_moderator_in_the_plan_is_one_line(tmp_path, capsys, field, value,
                                                           message):
    runs = small_runs()
    write_tree(tmp_path, runs)
    plan = json.loads((tmp_path / "expected_runs.json").read_text())
    plan["comparisons"][field] = value
    (tmp_path / "expected_runs.json").write_text(json.dumps(plan))
    assert report(tmp_path) == 2
    err = capsys.readouterr().err
    assert message in err and "expected_runs.json" in err and "Traceback" not in err
    assert not (tmp_path / "tables" / "verdicts.csv").exists()


def test_declared_baselines_limit_the_comparisons(tmp_path):
    runs = small_runs()
    write_tree(tmp_path, runs, plan=False)
    write_plan(tmp_path, list(runs["path"]), alm=("almkd",), baselines=("kd",))
    assert report(tmp_path) == 0
    comp = read_csv(tmp_path, "comparisons.csv")
    assert set(zip(comp["alm"], comp["baseline"], strict=True)) == {("almkd", "kd")}
    assert "Holm-corrected over the 4 comparisons" in (
        tmp_path / "tables" / "single_best.md").read_text()


def test_teacher_rows_average_the_teachers_the_setup_distils_from():
    from benchmark.analysis.report import teacher_context

    runs = small_runs()
    runs = runs[runs["seed"] < 2]
    multi = runs[runs["setup"] == "single"].assign(setup="multi", setup_id="multi-2t-x",
                                                   teacher_ids=[("mlp_8", "mlp_16")] * 40)
    runs = pd.concat([runs, multi])
    rows = []
    for d in ("d0", "d1"):
        for n in ("symmetric_0.20", "symmetric_0.40"):
            for s in range(3):  # seed 2 has no student run: not used
                for tid, acc in (("mlp_8", 0.8), ("mlp_16", 0.6), ("mlp_32", 0.1)):
                    rows.append({"dataset": d, "noise_id": n, "teacher_id": tid, "seed": s,
                                 "test_acc_last": acc + (0.3 if s == 2 else 0.01 * s),
                                 "agreement_given": 0.5})
    ctx = teacher_context(runs, pd.DataFrame(rows)).set_index(["dataset", "noise_id", "setup"])
    assert len(ctx) == 8
    assert ctx.xs("single", level="setup")["teacher_acc"].to_numpy() == pytest.approx(0.805)
    assert ctx.xs("multi", level="setup")["teacher_acc"].to_numpy() == pytest.approx(0.705)


def test_analyse_without_distilling_runs():
    from benchmark.analysis.report import analyse

    runs = small_runs()
    a = analyse(runs[runs["method"] == "ce"], ALM, BASES)
    assert a.setups == [] and a.verdicts.empty and list(a.verdicts.columns[:5]) == [
        "setup", "metric", "scope", "alm", "baseline"]


# ---------------------------------------------------------------- simulation

TREES = 40


def analyse_tree(runs):
    sc = scores.common_seeds(scores.method_scores(runs, "best"))
    return stats.paired_comparisons(sc, ALM, BASES)


def test_under_the_null_per_cell_markers_stay_at_or_below_five_percent():
    """Every method equal, 20 cells x 5 seeds, run sd 1 point: the share of tables with any
    marker (family-wise: Holm over the table). With 40 trees, 4 or more such trees would
    have probability 0.14 at a true rate of 5% and 0.58 at 10%. (The verdicts' calibration:
    tests/analysis/test_verdicts.py.)"""
    any_marker = 0
    for i in range(TREES):
        comp = analyse_tree(simulate_runs(np.random.default_rng([1, i])))
        any_marker += (comp["marker"] != "").any()
    assert any_marker <= 3


def test_report_writes_the_same_bytes_twice(tmp_path):
    write_tree(tmp_path, small_runs())
    assert report(tmp_path) == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()}
    assert report(tmp_path) == 0
    assert first == {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()}
    assert io.StringIO(first["verdicts.csv"].decode()).readline().startswith("setup,metric")
