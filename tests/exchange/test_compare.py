"""`noisykd compare`: verdicts (the report's vocabulary: better, worse, equivalent,
inconclusive) on generated trees with known differences, the statistics against hand formulas
(scipy's t distribution, no statsmodels), and the CLI's exit status."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.analysis.stats import holm
from benchmark.cli import main
from benchmark.exchange.compare import _cell, _needed, compare, compare_runs, spec_differences
from benchmark.spec.vocabulary import BETTER, EQUIVALENT, INCONCLUSIVE, LABELS, SCOPES, WORSE
from tests.simulate import metrics_json, simulate_runs, write_tree


@pytest.fixture
def cli(capsys):
    """``noisykd compare ...`` in this process: (exit status, stdout, stderr)."""
    def run(*args):
        code = main(["compare", *map(str, args)])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)
    return run


def _frame(runs: pd.DataFrame, **metrics_kw) -> pd.DataFrame:
    """A run frame as compare_runs takes it: collect_runs' columns plus the spec."""
    return runs.assign(spec=[metrics_json(r, **metrics_kw)["spec"]
                             for r in runs.to_dict("records")])


def _shifted(runs, rng, shift, noise_sd, seeds=None):
    out = runs.copy()
    if seeds is not None:
        out["seed"] = out["seed"] + seeds
    noise = rng.normal(0, noise_sd, len(out)) / 100
    for col in ("test_acc_best_val", "test_acc_last"):
        out[col] = out[col] + shift / 100 + noise
    return out


def test_identical_trees_are_equivalent_everywhere():
    runs = simulate_runs(np.random.default_rng(0), datasets=("d0", "d1"))
    c = compare_runs(_frame(runs), _frame(runs))
    assert set(c.cells["verdict"]) == {EQUIVALENT} and EQUIVALENT == "equivalent"
    assert len(c.cells) == 2 * 5 * 6 * 2  # cells x methods x metrics
    assert (c.cells["diff"] == 0).all() and c.not_comparable.empty


def test_a_three_point_shift_with_five_seeds_is_better():
    rng = np.random.default_rng(1)
    runs = simulate_runs(rng, datasets=("d0",), noises=("symmetric_0.20", "symmetric_0.40"))
    c = compare_runs(_frame(runs), _frame(_shifted(runs, rng, 3.0, 0.3)))
    assert set(c.cells["verdict"]) == {BETTER}
    assert c.cells["diff"].between(2.0, 4.0).all()
    assert (c.cells["ci_low"] > 1.0).all() and (c.cells["n_paired"] == 5).all()


@pytest.mark.parametrize("shift, label", [(5.0, "better"), (-5.0, "worse")])
def test_a_shift_beyond_the_margin_is_better_above_and_worse_below(shift, label):
    """Results 5 points above (below) the reference, 8 paired seeds with sd 0.3 of the
    differences: the 95% CI of every cell lies far beyond the +-1 margin on that side (Holm p
    under 1e-6 for each of 20 generator seeds tried, where 0.05 decides), so every cell is
    `better` (`worse`), and the counts say so."""
    rng = np.random.default_rng(13)
    runs = simulate_runs(rng, datasets=("d0",), noises=("symmetric_0.20", "symmetric_0.40"),
                         seeds=8)
    c = compare_runs(_frame(runs), _frame(_shifted(runs, rng, shift, 0.3)))
    assert label in LABELS and set(c.cells["verdict"]) == {label}
    assert (np.sign(c.cells["diff"]) == np.sign(shift)).all()
    beyond = c.cells["ci_low"] > 1.0 if shift > 0 else c.cells["ci_high"] < -1.0
    assert beyond.all() and (c.cells["p_differs_holm"] < 1e-4).all()
    assert c.count(label) == len(c.cells) == c.n_differs == 24
    assert c.count(EQUIVALENT) == c.count(INCONCLUSIVE) == 0


def test_one_seed_each_is_inconclusive():
    rng = np.random.default_rng(2)
    runs = simulate_runs(rng, datasets=("d0",), seeds=1)
    c = compare_runs(_frame(runs), _frame(_shifted(runs, rng, 3.0, 0.3)))
    assert set(c.cells["verdict"]) == {INCONCLUSIVE}
    assert c.cells["seeds_needed"].isna().all()  # no spread observed: nothing to say


def test_unpaired_seeds_use_welch():
    rng = np.random.default_rng(3)
    runs = simulate_runs(rng, datasets=("d0",), noises=("symmetric_0.20",), seed_sd=0.2,
                         run_sd=0.3)
    new = _shifted(runs, rng, 3.0, 0.0, seeds=10)  # other seeds: nothing to pair
    c = compare_runs(_frame(runs), _frame(new))
    assert (c.cells["n_paired"] == 0).all() and set(c.cells["verdict"]) == {BETTER}
    row = c.cells.iloc[0]
    a = 100 * runs[(runs.method_id == row.method_id)]["test_acc_best_val"].to_numpy()
    b = 100 * new[(new.method_id == row.method_id)]["test_acc_best_val"].to_numpy()
    ci = stats.ttest_ind(b, a, equal_var=False).confidence_interval()
    assert row.metric == "best" and row.ci_low == pytest.approx(ci.low)


def _one_sided_p(d, mu, side):
    """Hand formula: the one-sample t statistic against mu and its tail."""
    t = (d.mean() - mu) / (d.std(ddof=1) / np.sqrt(len(d)))
    return stats.t.sf(t, len(d) - 1) if side == "greater" else stats.t.cdf(t, len(d) - 1)


def test_paired_statistics_match_hand_formulas():
    rng = np.random.default_rng(4)
    ref = rng.normal(70, 2, 6)
    for shift in (0.3, -0.4, 1.8, -2.5):
        new = ref + shift + rng.normal(0, 0.5, 6)
        d = new - ref
        out = _cell(ref, new, True, 1.0)
        assert out["diff"] == pytest.approx(d.mean())
        p_tost = max(_one_sided_p(d, -1.0, "greater"), _one_sided_p(d, 1.0, "less"))
        assert out["p_equivalent"] == pytest.approx(p_tost, rel=1e-9)
        side, mu = ("greater", 1.0) if d.mean() > 0 else ("less", -1.0)
        assert out["p_differs"] == pytest.approx(min(1, 2 * _one_sided_p(d, mu, side)),
                                                 rel=1e-9)
        for level, low, high in ((0.975, "ci_low", "ci_high"), (0.95, "ci90_low", "ci90_high")):
            half = stats.t.ppf(level, 5) * d.std(ddof=1) / np.sqrt(6)
            assert out[low] == pytest.approx(d.mean() - half)
            assert out[high] == pytest.approx(d.mean() + half)


def _welch(a, b, mu):
    """Hand Welch: t statistic of mean(b) - mean(a) - mu, and Welch-Satterthwaite df."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return (b.mean() - a.mean() - mu) / np.sqrt(va + vb), df


def test_welch_statistics_match_hand_formulas():
    rng = np.random.default_rng(10)
    ref = rng.normal(70, 1.0, 5)
    for shift in (2.5, -2.5, 0.4):
        new = rng.normal(70 + shift, 2.0, 4)
        out = _cell(ref, new, False, 1.0)
        assert out["diff"] == pytest.approx(new.mean() - ref.mean())
        t_lo, df = _welch(ref, new, -1.0)
        t_hi, _ = _welch(ref, new, 1.0)
        assert out["p_equivalent"] == pytest.approx(
            max(stats.t.sf(t_lo, df), stats.t.cdf(t_hi, df)), rel=1e-6)
        tail = stats.t.sf(t_hi, df) if out["diff"] > 0 else stats.t.cdf(t_lo, df)
        assert out["p_differs"] == pytest.approx(min(1, 2 * tail), rel=1e-6)


def test_constant_differences_are_exact():
    ref = np.array([70.0, 71.0, 69.0])
    assert _cell(ref, ref + 0.5, True, 1.0)["exact"] == EQUIVALENT
    assert _cell(ref, ref - 0.5, True, 1.0)["exact"] == EQUIVALENT
    assert _cell(ref, ref + 1.5, True, 1.0)["exact"] == BETTER
    assert _cell(ref, ref - 1.5, True, 1.0)["exact"] == WORSE
    assert _cell(ref, ref + 1.0, True, 1.0)["exact"] == INCONCLUSIVE  # at the margin
    assert _cell(ref, ref + 0.2 * np.array([1, 2, 3]), True, 1.0)["exact"] is None
    one_flat = _cell(np.array([70.0, 70.0, 70.0]), np.array([70.0, 71.0, 72.0]), False, 1.0)
    assert one_flat["exact"] is None  # only both sides constant is exact


def test_pairing_uses_the_shared_seeds_by_seed_not_by_position():
    runs = simulate_runs(np.random.default_rng(11), datasets=("d0",),
                         noises=("symmetric_0.20",), seeds=6)
    ref = runs[runs.seed <= 4]
    new = runs[runs.seed >= 1].copy()
    for col in ("test_acc_best_val", "test_acc_last"):
        new[col] = new[col] + 0.005
    c = compare_runs(_frame(ref), _frame(new))
    assert (c.cells["n_paired"] == 4).all()
    assert np.allclose(c.cells["diff"], 0.5) and set(c.cells["verdict"]) == {EQUIVALENT}
    one = compare_runs(_frame(runs[runs.seed <= 2]), _frame(runs[runs.seed >= 2]))
    assert (one.cells["n_paired"] == 0).all()  # one shared seed: Welch over all runs
    assert one.cells["p_equivalent"].notna().all()


def test_calibration_at_the_margin_and_power_inside_it():
    """Known truths, per cell through ``_cell`` and per family through Holm: a true
    difference exactly at the margin (1 point, 5 paired seeds, sd 1) is called `equivalent`
    in at most 5% of cells (TOST is exact there) and `better` in about 2.5% (the two-sided
    test's one tail); some cell of a 12-cell family is `better` or `worse` (Holm) in at most
    5% of families; a true difference of 0 with 8 seeds and sd 0.5 is `equivalent` in most
    cells and never `better` or `worse`."""
    rng = np.random.default_rng(5)
    reps, k = 100, 12
    d = rng.normal(1.0, 1.0, (reps, k, 5))  # paired differences at the margin
    ref = np.zeros(5)
    cells = [[_cell(ref, x, True, 1.0) for x in fam] for fam in d]
    eq = np.array([[c["p_equivalent"] for c in fam] for fam in cells])
    differs = np.array([[c["p_differs"] for c in fam] for fam in cells])
    se = 2 * np.sqrt(0.05 * 0.95 / eq.size)
    assert 0.03 <= (eq < 0.05).mean() <= 0.05 + se
    assert 0.01 <= (differs < 0.05).mean() <= 0.025 + se
    fam_raw = (differs < 0.05).any(axis=1).mean()
    fam_holm = np.mean([(holm(pd.Series(p)) < 0.05).any() for p in differs])
    assert fam_raw > 0.15  # unadjusted, a 12-cell family would fail CI often
    assert fam_holm <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / reps)
    runs = simulate_runs(rng, datasets=("d0",), seeds=8, run_sd=0.5)
    c = compare_runs(_frame(runs), _frame(_shifted(runs, rng, 0.0, 0.5)))
    assert (c.cells["verdict"] == EQUIVALENT).mean() > 0.8
    assert not c.cells["verdict"].isin([BETTER, WORSE]).any() and c.n_differs == 0


def test_seeds_needed_gives_the_power_it_claims():
    """At the returned n, a Monte Carlo of the test (hand formulas, no statsmodels) reaches
    80% power, and at n - 1 it does not (both within Monte Carlo error)."""
    rng = np.random.default_rng(12)

    def tost_power(n, mu, sd, reps=20000):
        d = rng.normal(mu, sd, (reps, n))
        se = d.std(1, ddof=1) / np.sqrt(n)
        crit = stats.t.ppf(0.95, n - 1)
        return np.mean(((d.mean(1) + 1) / se > crit) & ((d.mean(1) - 1) / se < -crit))

    def differs_power(n, mu, sd, alpha, reps=20000):
        d = rng.normal(mu, sd, (reps, n))
        t = (d.mean(1) - 1) / (d.std(1, ddof=1) / np.sqrt(n))
        return np.mean(t > stats.t.ppf(1 - alpha / 2, n - 1))

    for mu, sd in ((0.0, 1.0), (0.4, 0.8)):
        n = int(_needed(mu, sd, 1.0, 0.05, True))
        assert tost_power(n, mu, sd) >= 0.79 and tost_power(n - 1, mu, sd) < 0.81, (mu, n)
    n = int(_needed(2.0, 1.5, 1.0, 0.05 / 12, True))
    assert differs_power(n, 2.0, 1.5, 0.05 / 12) >= 0.79
    assert differs_power(n - 1, 2.0, 1.5, 0.05 / 12) < 0.81
    assert np.isnan(_needed(1.0, 1.0, 1.0, 0.05, True))  # at the margin: never conclusive
    assert _needed(0.0, 1e-3, 1.0, 0.05, False) == 2  # a huge effect: the minimum


def test_seeds_needed_grows_with_the_spread():
    rng = np.random.default_rng(6)
    runs = simulate_runs(rng, datasets=("d0",), noises=("symmetric_0.20",), seeds=3)
    small = compare_runs(_frame(runs), _frame(_shifted(runs, np.random.default_rng(7), 0.5,
                                                       1.0)))
    large = compare_runs(_frame(runs), _frame(_shifted(runs, np.random.default_rng(7), 0.5,
                                                       3.0)))
    both = small.cells.merge(large.cells, on=["method_id", "metric"], suffixes=("_s", "_l"))
    both = both[(both.verdict_s == "inconclusive") & (both.verdict_l == "inconclusive")]
    assert len(both) and (both.seeds_needed_l >= both.seeds_needed_s).all()
    assert (both.seeds_needed_s >= 2).all()


def test_a_pair_whose_specs_differ_is_not_comparable():
    runs = simulate_runs(np.random.default_rng(8), datasets=("d0",),
                         noises=("symmetric_0.20",))
    c = compare_runs(_frame(runs), _frame(runs, epochs=30))
    assert len(c.not_comparable) == len(runs) and c.cells.empty
    assert set(c.not_comparable["keys"]) == {"train.epochs"}
    # no seed in common, and what every seed of a cell shares differs: not comparable either
    other = _frame(runs.assign(seed=runs.seed + 10, cell_spec="other"), epochs=30)
    c = compare_runs(_frame(runs), other)
    assert c.cells.empty and len(c.not_comparable) == 2 * len(runs)
    assert set(c.not_comparable["keys"]) == {"train.epochs"}
    assert spec_differences({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1, "c": [1, 3]},
                                                         "d": 0}) == ["a.c.1", "d"]


def test_cli_on_folders_with_fail_on(tmp_path, cli):
    rng = np.random.default_rng(9)
    runs = simulate_runs(rng, datasets=("d0",), noises=("symmetric_0.20",))
    write_tree(tmp_path / "ref", runs)
    write_tree(tmp_path / "same", runs)
    write_tree(tmp_path / "moved", _shifted(runs, rng, 3.0, 0.3))
    res = cli(str(tmp_path / "ref"), str(tmp_path / "same"), "--fail-on", "differs",
              "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    assert "0 better, 0 worse, 12 equivalent, 0 inconclusive" in res.stdout
    cells = pd.read_csv(tmp_path / "out" / "compare_cells.csv")
    assert list(cells.columns[:5]) == ["dataset", "noise_id", "setup_id", "method_id", "metric"]
    assert set(cells["verdict"]) == {EQUIVALENT}
    setups = pd.read_csv(tmp_path / "out" / "compare_setups.csv", keep_default_na=False)
    assert setups["agree"].all()
    # the report's verdicts.csv has a row per scope: both are matched, each with its own
    assert list(setups.columns[:5]) == ["setup", "metric", "scope", "alm", "baseline"]
    assert set(setups["scope"]) == set(SCOPES)
    assert not setups.duplicated(["setup", "metric", "scope", "alm", "baseline"]).any()
    labelled = setups[setups["verdict"] != ""]
    assert len(labelled) and set(labelled["verdict"]) <= set(LABELS)
    text = (tmp_path / "out" / "compare.md").read_text()
    assert text.startswith("# Reproduction")
    section = text[text.index("per setup and scope"):]
    assert "| scope " in section and "| in_these_cells " in section
    assert "| across_tasks " in section
    for word in ("`better` / `worse`", "`equivalent`", "`inconclusive`"):
        assert word in text  # the legend
    assert "reproduced`" not in text and "`differs`" not in text
    res = cli(str(tmp_path / "ref"), str(tmp_path / "moved"), "--fail-on", "differs")
    assert res.returncode == 1 and "12 better, 0 worse, 0 equivalent" in res.stdout
    assert "12 cells fail --fail-on differs" in res.stderr
    assert cli(str(tmp_path / "ref"), str(tmp_path / "moved")).returncode == 0
    ranks = compare(tmp_path / "ref", tmp_path / "moved").ranks
    assert (ranks["kendall_tau"] > 0.5).all()  # a uniform shift keeps the ranking


def test_fail_on_differs_exits_1_on_a_worse_cell(tmp_path, cli):
    """`--fail-on differs` (kept for scripts) means any cell `better` or `worse`: results 5
    points below the reference (8 paired seeds, sd 0.3) are `worse` everywhere and fail it,
    as they fail --fail-on moved and --fail-on inconclusive; without --fail-on it exits 0."""
    rng = np.random.default_rng(14)
    runs = simulate_runs(rng, datasets=("d0",), noises=("symmetric_0.20",), seeds=8)
    write_tree(tmp_path / "ref", runs)
    write_tree(tmp_path / "down", _shifted(runs, rng, -5.0, 0.3))
    res = cli(tmp_path / "ref", tmp_path / "down", "--fail-on", "differs", "--out",
              tmp_path / "out")
    assert res.returncode == 1, res.stderr
    assert "0 better, 12 worse, 0 equivalent, 0 inconclusive" in res.stdout
    assert "12 cells fail --fail-on differs" in res.stderr
    assert set(pd.read_csv(tmp_path / "out" / "compare_cells.csv")["verdict"]) == {WORSE}
    for fail_on in ("moved", "inconclusive"):
        assert cli(tmp_path / "ref", tmp_path / "down", "--fail-on", fail_on).returncode == 1
    assert cli(tmp_path / "ref", tmp_path / "down").returncode == 0


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, cli):
    (tmp_path / "ref" / "runs").mkdir(parents=True)
    for args, message in [
        ((str(tmp_path / "nope"), str(tmp_path / "ref")), "does not exist"),
        ((str(tmp_path), str(tmp_path / "ref")), "is not a study folder"),
        ((str(tmp_path / "ref"), str(tmp_path / "ref")), "no finished runs"),
        ((str(tmp_path / "ref"), str(tmp_path / "ref"), "--margin", "0"), "--margin 0"),
    ]:
        res = cli(*args)
        assert res.returncode == 2 and message in res.stderr, (args, res.stderr)
        assert len(res.stderr.splitlines()) == 1
    (tmp_path / "x.tar.gz").write_text(json.dumps({}))
    res = cli(str(tmp_path / "x.tar.gz"), str(tmp_path / "ref"))
    assert res.returncode == 2 and "not a results bundle" in res.stderr


def _set_loss(tree, value_of):
    """Give every run of a written tree a last training loss: value_of(path) -> float."""
    for path in sorted(tree.glob("runs/*/*/*/*/seed*/metrics.json")):
        m = json.loads(path.read_text())
        m["train_loss_last"] = value_of(path)
        path.write_text(json.dumps(m))


def test_moved_names_each_run_whose_numbers_changed_at_all(tmp_path, cli):
    """A change far inside the margin (one run's training loss, 1e-12) leaves every cell
    `equivalent` but is one moved run, named with the number and both values; --fail-on
    moved fails on it and --fail-on differs does not."""
    runs = simulate_runs(np.random.default_rng(10), datasets=("d0",), noises=("symmetric_0.20",))
    for name in ("ref", "new"):
        write_tree(tmp_path / name, runs)
        _set_loss(tmp_path / name, lambda p: 0.5 + len(str(p)) / 1000)
    identical = compare(tmp_path / "ref", tmp_path / "new")
    assert identical.moved.empty and identical.n_identical == len(runs)
    assert cli(tmp_path / "ref", tmp_path / "new", "--fail-on", "moved").returncode == 0
    target = sorted((tmp_path / "new").glob("runs/*/*/*/kd/seed2/metrics.json"))[0]
    m = json.loads(target.read_text())
    old = m["train_loss_last"]
    m["train_loss_last"] = old + 1e-12
    target.write_text(json.dumps(m))
    c = compare(tmp_path / "ref", tmp_path / "new")
    assert set(c.cells["verdict"]) == {EQUIVALENT} and c.n_identical == len(runs) - 1
    assert c.moved.to_dict("records") == [
        {"dataset": "d0", "noise_id": "symmetric_0.20", "setup_id": target.parts[-4],
         "method_id": "kd", "seed": 2, "number": "train_loss_last", "reference": old,
         "results": old + 1e-12}]
    res = cli(tmp_path / "ref", tmp_path / "new", "--fail-on", "moved", "--out", tmp_path / "o")
    assert res.returncode == 1 and "1 cells and runs fail --fail-on moved" in res.stderr
    assert f"{len(runs) - 1} of {len(runs)} compared runs identical" in res.stdout
    assert len(pd.read_csv(tmp_path / "o" / "compare_moved.csv")) == 1
    assert cli(tmp_path / "ref", tmp_path / "new", "--fail-on", "differs").returncode == 0
    # an accuracy that moved is a moved run too, one row per number
    m["test_acc_last"] += 0.0001
    target.write_text(json.dumps(m))
    c = compare(tmp_path / "ref", tmp_path / "new")
    assert sorted(c.moved["number"]) == ["test_acc_last", "train_loss_last"]


def test_platform_decides_whether_bit_identity_is_asked(tmp_path, cli):
    """--platform: the same fingerprint keeps --fail-on moved strict; another one (a
    processor model that differs) turns it into --fail-on differs, saying why."""
    from benchmark.exchange.fingerprint import _cpuinfo, fingerprint

    runs = simulate_runs(np.random.default_rng(11), datasets=("d0",), noises=("symmetric_0.20",))
    write_tree(tmp_path / "ref", runs)
    write_tree(tmp_path / "new", runs)
    _set_loss(tmp_path / "ref", lambda p: 0.25)
    _set_loss(tmp_path / "new", lambda p: 0.25 + 1e-9)  # every run moved, no cell differs
    here = fingerprint()
    (tmp_path / "same.json").write_text(json.dumps(here))
    (tmp_path / "other.json").write_text(json.dumps({**here, "cpu_model": "not-this-one"}))
    args = (tmp_path / "ref", tmp_path / "new", "--fail-on", "moved", "--platform")
    res = cli(*args, tmp_path / "same.json")
    assert res.returncode == 1 and f"{len(runs)} cells and runs fail" in res.stderr
    res = cli(*args, tmp_path / "other.json")
    assert res.returncode == 0
    assert "cpu_model: not-this-one != " in res.stderr and "acts as --fail-on differs" in res.stderr
    (tmp_path / "bad.json").write_text(json.dumps({"torch": "2"}))
    res = cli(*args, tmp_path / "bad.json")
    assert res.returncode == 2 and "missing cpu_capability" in res.stderr
    assert _cpuinfo("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n\n"
                    "processor\t: 1\nvendor_id\t: Other\n") == {
        "processor": "0", "vendor_id": "GenuineIntel", "cpu family": "6"}


def test_fingerprint_cli_writes_what_it_prints(tmp_path, capsys):
    assert main(["fingerprint", "--out", str(tmp_path / "fp.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads((tmp_path / "fp.json").read_text()) == printed
    assert printed["torch"] and printed["cpu_capability"]
