"""`noisykd compare REFERENCE RESULTS`: did a study reproduce another one?

Runs are matched by identity (dataset, noise id, setup id, method id, seed). A matched pair
whose specs differ in anything (the spec holds no code revision and no environment, which
may differ) is "not comparable" and named with the differing keys; so is every run of a cell
whose two sides differ in what all seeds of a cell share (``cell_spec``: data, noise,
student, training, method, teachers), paired or not. Not comparable runs take no part in
any statistic.

Per cell and method (dataset, noise, setup id, method id) and metric, in percentage points,
``diff`` = results - reference, labelled with the report's vocabulary (benchmark/spec/vocabulary.py,
the constants imported from there):

- paired by seed when at least two seeds are shared (a seed fixes labels, split and
  initialisation; ``diff`` and the tests then use the shared seeds only, ``n_paired``), else
  Welch (unequal variances) over all runs of each side;
- ``equivalent`` when the equivalence test (TOST, ``statsmodels.stats.weightstats.
  ttost_paired`` / ``ttost_ind``, bounds +-margin) has p < 0.05, i.e. the 90% CI lies
  inside +-margin: each cell's own claim at 5%, and "equivalent everywhere" (reproduced)
  an intersection-union claim, also at 5% without correction;
- ``better`` / ``worse`` when the two-sided test of "the difference is beyond the margin on
  the observed side" (twice the one-sided p, so that its level holds although the side is
  chosen after seeing the data), Holm-adjusted over every tested cell and metric, is
  < 0.05: the 95% CI lies beyond the margin, above the reference (``better``, diff > 0) or
  below it (``worse``, diff < 0), and one such cell anywhere is a finding at 5% family-wise
  (what ``--fail-on differs`` acts on: any cell ``better`` or ``worse``); else
  ``inconclusive``;
- differences that are constant across seeds (bit-identical reruns differ by 0) are decided
  exactly, with the same words (|diff| < margin: ``equivalent``; beyond it: ``better`` /
  ``worse`` by its sign; at it: ``inconclusive``), and take no part in Holm's family;
- ``moved``: every matched, comparable run whose recorded numbers (test and validation
  accuracies, best epoch, last training loss) are not bit-identical. A rerun of the same
  code on a machine with the same arithmetic (benchmark/exchange/fingerprint.py) moves nothing, so
  ``--fail-on moved`` catches any change of the numbers, however small, where the
  statistical verdicts (about +-margin) cannot: CI's reproduction check;
- ``seeds_needed`` for an inconclusive cell: the seeds per side at which a conclusive answer
  has 80% power if the observed mean and spread are the truth (noncentral t: TOST at 5%
  when |diff| < margin, else the difference test at Holm's first threshold).

Per setup, metric, scope (``in_these_cells`` / ``across_tasks``) and declared (ALM,
baseline) pair: the report's verdicts (benchmark/analysis/verdicts.py: better / worse / equivalent /
inconclusive / not testable) of both studies side by side and whether they agree; and per
cell Kendall's tau between the two studies' mean scores of the methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from benchmark.analysis.scores import METRICS
from benchmark.analysis.stats import ALPHA, FLAT, holm
from benchmark.core import layout
from benchmark.spec.run_metrics import read_metrics
from benchmark.spec.vocabulary import BETTER, EQUIVALENT, INCONCLUSIVE, MARGIN, WORSE

KEY = ["dataset", "noise_id", "setup_id", "method_id"]
CELL_COLUMNS = KEY + ["metric", "n_ref", "mean_ref", "sd_ref", "n", "mean", "sd", "n_paired",
                      "diff", "ci_low", "ci_high", "ci90_low", "ci90_high", "p_equivalent",
                      "p_differs", "p_differs_holm", "verdict", "seeds_needed"]
VERDICTS = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE)  # the vocabulary's order
DIFFERS = (BETTER, WORSE)  # what --fail-on differs acts on
POWER = 0.8
#: what a bit-identical rerun reproduces exactly (those the frames have; the training loss is
#: a float that moves with any change of the arithmetic, where an accuracy may not)
IDENTITY = ("test_acc_best_val", "test_acc_last", "val_acc_best", "val_acc_last", "best_epoch",
            "train_loss_last")
MOVED_COLUMNS = KEY + ["seed", "number", "reference", "results"]


@dataclass
class Comparison:
    cells: pd.DataFrame  # CELL_COLUMNS
    setups: pd.DataFrame  # AGREEMENT_KEY + verdict_ref, verdict, agree
    ranks: pd.DataFrame  # dataset, noise_id, setup, metric, n_methods, kendall_tau
    not_comparable: pd.DataFrame  # KEY + seed, keys
    only_ref: pd.DataFrame  # KEY + seed
    only_new: pd.DataFrame  # KEY + seed
    margin: float
    moved: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MOVED_COLUMNS))
    n_identical: int = 0  # matched comparable runs with every IDENTITY number equal

    def count(self, verdict: str) -> int:
        return int((self.cells["verdict"] == verdict).sum())

    @property
    def n_differs(self) -> int:
        """Cells labelled ``better`` or ``worse`` (what ``--fail-on differs`` counts)."""
        return sum(self.count(v) for v in DIFFERS)

    @property
    def n_moved(self) -> int:
        """Runs with at least one moved number (``moved`` has a row per number)."""
        return len(self.moved[KEY + ["seed"]].drop_duplicates())


def _flatten(d, prefix=""):
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out.update(_flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = d
    return out


def spec_differences(a: dict, b: dict) -> list[str]:
    """The dotted keys at which two specs differ (sorted)."""
    fa, fb = _flatten(a), _flatten(b)

    def same(x, y):
        return x == y or (isinstance(x, float) and isinstance(y, float) and x != x and y != y)

    return sorted(k for k in set(fa) | set(fb)
                  if not same(fa.get(k, "<absent>"), fb.get(k, "<absent>")))


def _runs_with_specs(folder: Path) -> pd.DataFrame:

    from benchmark.analysis.collect import collect_runs

    runs = collect_runs(folder)
    metrics = [read_metrics(Path(p) / layout.METRICS) for p in runs["path"]]
    return runs.assign(spec=[m.spec for m in metrics],
                       train_loss_last=[m.get("train_loss_last") for m in metrics])


def _moved(matched: pd.DataFrame, excluded: set) -> tuple[pd.DataFrame, int]:
    """Matched runs (merged with suffix ``_ref``) whose IDENTITY numbers differ, one row per
    number, and how many of the compared runs are identical in all of them."""
    ident = KEY + ["seed"]
    cols = [c for c in IDENTITY if c in matched.columns and f"{c}_ref" in matched.columns]
    rows, identical = [], 0
    for rec in matched.to_dict("records"):
        key = tuple(rec[k] for k in ident)
        if key in excluded:
            continue
        diff = [(c, rec[f"{c}_ref"], rec[c]) for c in cols
                if not (rec[c] == rec[f"{c}_ref"]
                        or (pd.isna(rec[c]) and pd.isna(rec[f"{c}_ref"])))]
        rows += [(*key, *d) for d in diff]
        identical += not diff
    return pd.DataFrame(rows, columns=MOVED_COLUMNS), identical


N_MAX = 10_000  # seeds_needed beyond this is reported as not reachable (NaN)


def _needed(mean: float, sd: float, margin: float, alpha: float, paired: bool) -> float:
    """Seeds per side at which a conclusive answer has 80% power if the true difference is
    the observed ``mean`` and the spread ``sd`` (paired: sd of differences; unpaired: the
    per-side sd, with a pooled two-sample t as the approximation): for |mean| < margin the
    power of TOST at 5% (both one-sided tests must reject: P(lower) + P(upper) - 1, a lower
    bound), else the power of the difference test (one tail of a two-sided test at
    ``alpha``). A direct search over n with the noncentral t distribution."""
    if not (np.isfinite(mean) and np.isfinite(sd)) or sd <= 0 or abs(mean) == margin:
        return np.nan
    n = np.arange(2, N_MAX + 1, dtype=float)
    df, scale = (n - 1, np.sqrt(n) / sd) if paired else (2 * n - 2, np.sqrt(n / 2) / sd)
    if abs(mean) < margin:
        crit = stats.t.ppf(1 - ALPHA, df)
        power = (stats.nct.sf(crit, df, (mean + margin) * scale)
                 + stats.nct.cdf(-crit, df, (mean - margin) * scale) - 1)
    else:
        crit = stats.t.ppf(1 - alpha / 2, df)
        power = stats.nct.sf(crit, df, (abs(mean) - margin) * scale)
    reached = np.flatnonzero(np.nan_to_num(power) >= POWER)
    return float(n[reached[0]]) if reached.size else np.nan


def _exact(diff: float, margin: float) -> str:
    """The verdict of a difference that does not vary across seeds."""
    if abs(diff) < margin:
        return EQUIVALENT
    if abs(diff) > margin:
        return BETTER if diff > 0 else WORSE
    return INCONCLUSIVE


def _cell(ref: np.ndarray, new: np.ndarray, paired: bool, margin: float) -> dict:
    """Statistics of one cell and metric: ``ref``, ``new`` in points (paired: aligned by
    seed). ``p_differs`` is two-sided (twice the tail on the observed side), so that
    `better` / `worse` mean the 95% CI lies beyond the margin; ``exact`` is the verdict of a
    difference constant across seeds (no test), else None."""
    out = {"diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "ci90_low": np.nan,
           "ci90_high": np.nan, "p_equivalent": np.nan, "p_differs": np.nan, "exact": None,
           "sd_d": np.nan}
    if len(ref) == 0 or len(new) == 0 or (paired and len(ref) != len(new)):
        return out
    out["diff"] = float(new.mean() - ref.mean())
    if min(len(ref), len(new)) < 2:
        return out
    if paired:
        d = new - ref
        spreads = np.array([d.std(ddof=1)])
    else:
        spreads = np.array([ref.std(ddof=1), new.std(ddof=1)])
    out["sd_d"] = float(np.sqrt((spreads ** 2).mean()))
    if (spreads <= FLAT * max(1.0, abs(out["diff"]))).all():
        for key in ("ci_low", "ci_high", "ci90_low", "ci90_high"):
            out[key] = out["diff"]
        out["exact"] = _exact(out["diff"], margin)
        return out
    res = stats.ttest_rel(new, ref) if paired else stats.ttest_ind(new, ref, equal_var=False)
    for level, low, high in ((1 - ALPHA, "ci_low", "ci_high"),
                             (1 - 2 * ALPHA, "ci90_low", "ci90_high")):
        ci = res.confidence_interval(level)
        out[low], out[high] = float(ci.low), float(ci.high)
    shift = margin if out["diff"] > 0 else -margin
    side = "greater" if out["diff"] > 0 else "less"
    if paired:
        out["p_equivalent"] = float(ttost_paired(new, ref, -margin, margin)[0])
        tail = stats.ttest_1samp(new - ref, shift, alternative=side).pvalue
    else:
        out["p_equivalent"] = float(ttost_ind(new, ref, -margin, margin, usevar="unequal")[0])
        tail = stats.ttest_ind(new - shift, ref, equal_var=False, alternative=side).pvalue
    out["p_differs"] = float(min(1.0, 2 * tail))
    return out


SEED_KEYS = ("seed", "labels.seed", "labels.file_sha256", "config_hash")


def compare_runs(ref: pd.DataFrame, new: pd.DataFrame, margin: float = MARGIN) -> Comparison:
    """Cell verdicts of two run frames (collect_runs columns plus ``spec``)."""
    ident = KEY + ["seed"]
    both = ref.merge(new, on=ident, suffixes=("_ref", ""), how="outer", indicator=True)
    only_ref = both[both["_merge"] == "left_only"][ident].reset_index(drop=True)
    only_new = both[both["_merge"] == "right_only"][ident].reset_index(drop=True)
    matched = both[both["_merge"] == "both"]
    bad = [(*key, ", ".join(d)) for key, d in zip(
        matched[ident].itertuples(index=False, name=None),
        (spec_differences(a, b) for a, b in zip(matched["spec_ref"], matched["spec"],
                                                strict=True)), strict=True) if d]
    ref_cells = {k: g.set_index("seed") for k, g in ref.groupby(KEY)}
    new_cells = {k: g.set_index("seed") for k, g in new.groupby(KEY)}
    rows = []
    for cell in sorted(set(ref_cells) & set(new_cells)):  # one side only: only_ref/only_new
        r, n = ref_cells[cell], new_cells[cell]
        if set(r["cell_spec"]) != set(n["cell_spec"]):
            # what every seed of a cell shares differs: no run of the cell is comparable,
            # paired or not (the keys of one representative pair, less the seed's own)
            keys = [k for k in spec_differences(r["spec"].iloc[0], n["spec"].iloc[0])
                    if not k.endswith(SEED_KEYS)]
            bad += [(*cell, s, ", ".join(keys) or "cell spec") for s in sorted(
                set(r.index) | set(n.index))]
            continue
        dropped = {b[4] for b in bad if tuple(b[:4]) == cell}
        r, n = r[~r.index.isin(dropped)], n[~n.index.isin(dropped)]
        if r.empty or n.empty:
            continue
        shared = sorted(set(r.index) & set(n.index))
        paired = len(shared) >= 2
        for metric, (col, _) in METRICS.items():
            xr, xn = 100 * r[col].to_numpy(float), 100 * n[col].to_numpy(float)
            if paired:
                res = _cell(100 * r.loc[shared, col].to_numpy(float),
                            100 * n.loc[shared, col].to_numpy(float), True, margin)
            else:
                res = _cell(xr, xn, False, margin)
            rows.append({**dict(zip(KEY, cell, strict=True)), "metric": metric,
                         "n_ref": len(xr), "mean_ref": xr.mean(),
                         "sd_ref": xr.std(ddof=1) if len(xr) > 1 else np.nan, "n": len(xn),
                         "mean": xn.mean(), "sd": xn.std(ddof=1) if len(xn) > 1 else np.nan,
                         "n_paired": len(shared) if paired else 0, **res, "paired": paired})
    not_comparable = pd.DataFrame(sorted(set(bad)), columns=ident + ["keys"])
    moved, n_identical = _moved(matched, {tuple(b[:5]) for b in bad})
    cells_df = pd.DataFrame(rows)
    if cells_df.empty:
        return Comparison(pd.DataFrame(columns=CELL_COLUMNS), pd.DataFrame(), pd.DataFrame(),
                          not_comparable, only_ref, only_new, margin, moved, n_identical)
    cells_df["p_differs_holm"] = holm(cells_df["p_differs"])
    k = max(1, int(cells_df["p_differs"].notna().sum()))
    shown = cells_df["p_differs_holm"] < ALPHA  # the 95% CI beyond the margin
    verdict = np.select(
        [cells_df["exact"].notna(), cells_df["p_equivalent"] < ALPHA,
         shown & (cells_df["diff"] > 0), shown & (cells_df["diff"] < 0)],
        [cells_df["exact"], EQUIVALENT, BETTER, WORSE], INCONCLUSIVE)
    cells_df["verdict"] = verdict
    cells_df["seeds_needed"] = [
        _needed(row.diff, row.sd_d, margin, ALPHA / k, row.paired)
        if v == INCONCLUSIVE and row.exact is None else np.nan
        for row, v in zip(cells_df.itertuples(index=False), verdict, strict=True)]
    return Comparison(cells_df[CELL_COLUMNS].reset_index(drop=True), pd.DataFrame(),
                      pd.DataFrame(), not_comparable, only_ref, only_new, margin, moved,
                      n_identical)


def _study_analysis(folder: Path, runs: pd.DataFrame):
    from benchmark.analysis.completeness import check
    from benchmark.analysis.report import analyse

    comp = check(folder, runs.drop(columns="spec"))
    return analyse(comp.included, comp.plan.alm, comp.plan.baselines)


AGREEMENT_KEY = ["setup", "metric", "scope", "alm", "baseline"]  # verdicts.csv: a row per scope


def setup_agreement(a_ref, a_new) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Aggregate verdicts side by side (per scope), and Kendall's tau of the method means per
    cell."""
    key = AGREEMENT_KEY
    v = a_ref.verdicts[key + ["verdict"]].merge(
        a_new.verdicts[key + ["verdict"]], on=key, how="outer", suffixes=("_ref", ""))
    v["agree"] = v["verdict_ref"] == v["verdict"]
    rows = []
    for metric in METRICS:
        s_ref, s_new = a_ref.summary[metric], a_new.summary[metric]
        cell = ["dataset", "noise_id", "setup"]
        merged = s_ref.merge(s_new, on=cell + ["row"], suffixes=("_ref", ""))
        for keys, g in merged.groupby(cell):
            tau = (stats.kendalltau(g["mean_ref"], g["mean"]).statistic if len(g) >= 2
                   else np.nan)
            rows.append(dict(zip(cell, keys, strict=True)) | {"metric": metric, "n_methods": len(g),
                                                 "kendall_tau": tau})
    return (v.sort_values(key).reset_index(drop=True),
            pd.DataFrame(rows, columns=["dataset", "noise_id", "setup", "metric", "n_methods",
                                        "kendall_tau"]))


def compare(reference: Path, results: Path, margin: float = MARGIN) -> Comparison:
    """Compare two studies, each a results folder or a bundle file."""
    from benchmark.core.errors import UserError
    from benchmark.exchange.bundle import BundleInvalid, open_study

    if not margin > 0:
        raise UserError(f"--margin {margin}: must be a positive number of points")
    opened = []
    try:
        for path in (reference, results):
            try:
                opened.append(open_study(path))
            except BundleInvalid as exc:
                problems = exc.args[0]
                raise UserError(f"{path} failed verification ({len(problems)} problems, "
                                f"first: {problems[0]}); see noisykd bundle verify") from None
        ref_runs, new_runs = (_runs_with_specs(o.folder) for o in opened)
        for o, runs in zip(opened, (ref_runs, new_runs), strict=True):
            if runs.empty:
                raise UserError(f"{o.source}: no finished runs")
        out = compare_runs(ref_runs, new_runs, margin)
        out.setups, out.ranks = setup_agreement(_study_analysis(opened[0].folder, ref_runs),
                                                _study_analysis(opened[1].folder, new_runs))
        return out
    finally:
        for o in opened:
            o.close()


def markdown(c: Comparison, reference: str, results: str) -> str:
    from benchmark.analysis.report import fmt_frame, markdown_table

    counts = ", ".join(f"{c.count(v)} {v}" for v in VERDICTS)
    lines = [f"# Reproduction: {results} against {reference}\n",
             f"Margin +-{c.margin:g} points; per cell and method and metric: {counts}. "
             "diff = results - reference over the shared seeds (paired; Welch when fewer "
             f"than two are shared), with its 95% CI. `{EQUIVALENT}`: within the margin on "
             "these seeds (TOST at 5%: the 90% CI, in the CSV, lies inside), not identical; "
             f"`{BETTER}` / `{WORSE}`: the 95% CI lies beyond the margin, above / below the "
             "reference (Holm over every cell, 5% family-wise; `--fail-on differs` acts on "
             f"either); `{INCONCLUSIVE}`: neither, with the seeds per side that would give 80% "
             "power at the observed spread (`seeds_needed`).\n"]
    if len(c.not_comparable):
        lines.append(f"**Not comparable: {len(c.not_comparable)} matched runs whose specs "
                     "differ** (left out of every statistic):\n")
        lines.append(markdown_table(c.not_comparable.head(50), ""))
    if len(c.only_ref) or len(c.only_new):
        lines.append(f"Runs in one study only: {len(c.only_ref)} in the reference, "
                     f"{len(c.only_new)} in the results (not compared).\n")
    lines.append(f"Bit-identity: {c.n_identical} of {c.n_identical + c.n_moved} compared runs "
                 f"identical in every recorded number ({', '.join(IDENTITY)}); {c.n_moved} "
                 "moved (what `--fail-on moved` acts on).\n")
    if c.n_moved:
        lines.append(markdown_table(fmt_frame(c.moved.head(30)), ""))
    lines.append("## Cells\n")
    cols = KEY + ["metric", "n_ref", "mean_ref", "sd_ref", "n", "mean", "sd", "diff",
                  "ci_low", "ci_high", "p_equivalent", "p_differs_holm", "verdict",
                  "seeds_needed"]
    lines.append(markdown_table(fmt_frame(c.cells[cols]), "No cell has runs on both sides."))
    if len(c.setups):
        lines.append("## Aggregate verdicts per setup and scope (reference vs results)\n")
        lines.append("The report's verdicts of each declared (ALM, baseline) pair, in each "
                     "scope: `in_these_cells` (on exactly these cells, seeds the replicates) "
                     "and `across_tasks` (cells the units); `agree`: the same label in both "
                     "studies (the last-epoch metric's rows carry no label, as in the "
                     "report).\n")
        lines.append(markdown_table(c.setups[AGREEMENT_KEY + ["verdict_ref", "verdict", "agree"]]
                               .astype(str), ""))
    if len(c.ranks):
        lines.append("## Method rankings per cell: Kendall's tau of the mean scores\n")
        lines.append(markdown_table(fmt_frame(c.ranks), ""))
    return "\n".join(lines)


def write_outputs(c: Comparison, out: Path, text: str) -> list[Path]:
    from benchmark.core.atomic import atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in (("compare_cells.csv", c.cells), ("compare_setups.csv", c.setups),
                        ("compare_moved.csv", c.moved),
                        ("compare_ranks.csv", c.ranks),
                        ("compare_not_comparable.csv", c.not_comparable)):
        atomic_write_text(out / name, frame.to_csv(index=False))
        written.append(out / name)
    atomic_write_text(out / "compare.md", text)
    return written + [out / "compare.md"]
