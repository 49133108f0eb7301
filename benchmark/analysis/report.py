"""`noisykd report`: every table and figure from whatever is in results/, training nothing.

``analyse`` turns the runs the tables may use into every number (no files): per setup and
metric the common-seed summary, the declared comparisons with their markers and minimum
detectable difference, the aggregate verdicts and the ranks. ``write_report`` checks
completeness first (a duplicate, or any problem under ``--strict``, stops it before a file is
written), names each kind of problem in one line on stderr, reads every other input (a
metrics.json, alpha_summary.json or labels file it cannot read stops it, naming the file,
before a file is written: benchmark/spec/run_metrics.py), then writes the files.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from benchmark.analysis import alpha_summary, headline
from benchmark.analysis import completeness as completeness_mod
from benchmark.analysis import moderators as moderators_mod
from benchmark.analysis.collect import collect_runs, collect_teachers, train_subsets
from benchmark.analysis.ranks import setup_ranks
from benchmark.analysis.scores import (
    CELL,
    METRICS,
    common_seeds,
    for_rules,
    gains_over_clean_budget,
    method_scores,
    summarise,
)
from benchmark.analysis.stats import minimum_detectable, paired_comparisons
from benchmark.analysis.verdicts import KEY, RAW_COLUMNS, finalise, setup_verdicts
from benchmark.core.atomic import atomic_write_text
from benchmark.core.errors import UserError
from benchmark.core.layout import PLAN_FILE, StudyLayout, report_kinds
from benchmark.spec.vocabulary import DEFAULT_FACTORS, LABELS, MARGIN, SCOPES
from methods.catalog import ALM_METHODS

PRIMARY = "best"
COMPARISONS_CSV = ["setup", "metric", "dataset", "noise_id", "alm", "baseline", "n",
                   "mean_diff", "ci_low", "ci_high", "p", "p_holm", "marker", "p_wilcoxon",
                   "sd_diff", "alm_method_id", "alm_hparams", "baseline_method_id",
                   "baseline_hparams"]
# verdicts.csv and moderators.csv: each side's method ids and hyper-parameters, last
METHOD_ID_COLUMNS = ["alm_method_id", "alm_hparams", "baseline_method_id", "baseline_hparams"]


@dataclass
class Analysis:
    setups: list[str]
    summary: dict = field(default_factory=dict)  # metric -> common-seed summary, all setups
    comparisons: dict = field(default_factory=dict)  # (setup, metric) -> frame
    mde: dict = field(default_factory=dict)  # (setup, metric) -> stats.minimum_detectable
    ranks: dict = field(default_factory=dict)  # (setup, metric) -> (avg, friedman, nemenyi)
    verdicts: pd.DataFrame = None
    moderators: pd.DataFrame = None  # moderators.MODERATOR_COLUMNS
    factors: tuple = DEFAULT_FACTORS  # the declared moderators
    no_strata: list = field(default_factory=list)  # declared factors no two cells contrast
    margin: float = MARGIN
    #: per cell and rule, the gain over the strongest clean-budget baseline (primary metric;
    #: scores.gains_over_clean_budget), the first figure's numbers
    gains: pd.DataFrame = field(default_factory=pd.DataFrame)

    def comparisons_frame(self) -> pd.DataFrame:
        parts = [c.assign(setup=s, metric=m) for (s, m), c in self.comparisons.items()]
        if not parts:
            return pd.DataFrame(columns=COMPARISONS_CSV)
        out = pd.concat(parts, ignore_index=True)
        # each side's method ids in the cell and hyper-parameters (scores.summarise)
        ids = [s.assign(metric=m) for m, s in self.summary.items()]
        ids = (pd.concat(ids, ignore_index=True) if ids
               else pd.DataFrame(columns=CELL + ["metric", "row"]))
        ids = ids.assign(**{c: "" for c in ("method_id", "hparams") if c not in ids})
        ids = ids[CELL + ["metric", "row", "method_id", "hparams"]]
        for side in ("alm", "baseline"):
            out = out.merge(ids.rename(columns={"row": side, "method_id": f"{side}_method_id",
                                                "hparams": f"{side}_hparams"}),
                            on=CELL + ["metric", side], how="left")
        return out[COMPARISONS_CSV]

    def with_method_ids(self, frame: pd.DataFrame, by: list) -> pd.DataFrame:
        """``frame`` (verdicts or moderators) with each side's method ids and
        hyper-parameters: those of the row in the cells it pools (per ``by``, e.g. the
        setup; ';'-joined where the row's cells differ), as comparisons.csv has per cell."""
        summary = self.summary.get(PRIMARY)
        out = frame.assign(**{c: "" for c in METHOD_ID_COLUMNS})
        if summary is None or summary.empty or frame.empty:
            return out
        ids = summary.assign(**{c: "" for c in ("method_id", "hparams") if c not in summary})
        ids = ids.groupby(by + ["row"])[["method_id", "hparams"]].agg(
            lambda v: ";".join(sorted({i for x in v for i in str(x).split(";") if i})))
        for side in ("alm", "baseline"):
            keyed = ids.rename(columns={"method_id": f"{side}_method_id",
                                        "hparams": f"{side}_hparams"}).reset_index()
            keyed = keyed.rename(columns={"row": side})
            out = out.drop(columns=[f"{side}_method_id", f"{side}_hparams"]).merge(
                keyed, on=by + [side], how="left")
        return out.fillna({c: "" for c in METHOD_ID_COLUMNS})


def analyse(runs: pd.DataFrame, alm: tuple, baselines: tuple, setups=None,
            margin: float = MARGIN, factors=DEFAULT_FACTORS) -> Analysis:
    setups = sorted(setups if setups is not None else set(runs["setup"]) - {"none"})
    out = Analysis(setups, factors=tuple(factors), margin=margin)
    parts = []
    all_scores = {}
    for metric in METRICS:
        scores = common_seeds(method_scores(runs, metric))
        all_scores[metric] = scores
        out.summary[metric] = summarise(scores)
        for setup in setups:
            sub = scores[scores["setup"] == setup]
            comp = paired_comparisons(sub, alm, baselines)
            out.comparisons[(setup, metric)] = comp
            out.mde[(setup, metric)] = minimum_detectable(comp)
            out.ranks[(setup, metric)] = setup_ranks(
                out.summary[metric][out.summary[metric]["setup"] == setup])
            parts.append(setup_verdicts(sub, setup, metric, alm, baselines, margin))
    parts = [p for p in parts if len(p)]
    out.verdicts = finalise(pd.concat(parts, ignore_index=True) if parts
                            else pd.DataFrame(columns=KEY + RAW_COLUMNS[len(KEY):]))
    out.moderators = moderators_mod.moderators(all_scores, alm, baselines, factors, margin)
    out.gains = gains_over_clean_budget(all_scores[PRIMARY])
    cells = {tuple(c) for c in all_scores[PRIMARY][CELL].drop_duplicates().to_numpy()}
    out.no_strata = moderators_mod.factors_without_strata(cells, factors,
                                                          all_scores[PRIMARY])
    return out


def teacher_context(runs: pd.DataFrame, teachers: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, noise, setup): the mean over seeds and teachers of the test accuracy of
    the teachers the setup's students distil from, and of the agreement of their predictions
    on the training split with its noisy labels and with its clean labels (whichever of the
    two they were trained on: collect_teachers). A mean over a teacher that does not record an
    agreement (an older metrics.json) is NaN, not a mean over the others."""
    cols = ["dataset", "noise_id", "setup", "teacher_acc", "teacher_agreement_noisy",
            "teacher_agreement_clean"]
    used = (runs[runs["setup"] != "none"][["dataset", "noise_id", "setup", "seed", "teacher_ids"]]
            .explode("teacher_ids").dropna(subset=["teacher_ids"])
            .rename(columns={"teacher_ids": "teacher_id"}).drop_duplicates())
    if used.empty or teachers.empty:
        return pd.DataFrame(columns=cols)
    teachers = teachers.assign(**{c: float("nan") for c in ("agreement_noisy", "agreement_clean")
                                  if c not in teachers})
    t = used.merge(teachers, on=["dataset", "noise_id", "teacher_id", "seed"])
    t = t.astype({c: float for c in ("test_acc_last", "agreement_noisy", "agreement_clean")})

    def mean(v: pd.Series) -> float:
        return v.mean(skipna=False)

    out = t.groupby(["dataset", "noise_id", "setup"]).agg(
        teacher_acc=("test_acc_last", "mean"), teacher_agreement_noisy=("agreement_noisy", mean),
        teacher_agreement_clean=("agreement_clean", mean))
    return out.reset_index()[cols]


def markdown_table(df: pd.DataFrame, empty: str) -> str:
    if df.empty:
        return empty + "\n"
    return tabulate(df, headers="keys", tablefmt="github", showindex=False,
                    disable_numparse=True) + "\n"


def fmt_frame(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Numbers as text with ``digits`` significant digits (p-values) or 2 decimals."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            fmt = ((lambda v: f"{v:.{digits}g}") if c.startswith("p") or c.endswith("_p")
                   else (lambda v: f"{v:.2f}"))
            out[c] = [("" if v != v else fmt(v)) for v in out[c]]
    return out


def _ranks_markdown(a: Analysis) -> str:
    from benchmark.analysis.ranks import ALPHA, EXACT_MAX, MIN_BLOCKS, MIN_METHODS, MONTE_CARLO
    from benchmark.analysis.tables import METRIC_NAMES

    md = ["# Average ranks, Friedman tests and Nemenyi post-hoc, per setup\n\n"
          "Blocks: the setup's (dataset, noise) cells that have every method; ranks of the "
          "common-seed means (1 = best). Friedman test: a permutation test of Friedman's "
          "chi-square (methods permuted within each block), exact over all (k!)^b "
          f"within-block permutations when there are at most {EXACT_MAX:,}, else Monte Carlo "
          f"with {MONTE_CARLO} resamples (seeded from the setup's name); made with at least "
          f"{MIN_BLOCKS} cells and {MIN_METHODS} methods. Only a test that rejects at "
          f"{ALPHA} is followed by the Nemenyi post-hoc (scikit-posthocs) and a "
          "critical-difference diagram, figures/cd_<setup>.png and .pdf (primary metric; "
          "not drawn by `noisykd report --no-figures`); otherwise neither exists.\n"]
    for metric in METRICS:
        for setup in a.setups:
            avg, test, nem = a.ranks[(setup, metric)]
            md.append(f"\n## {setup}: {METRIC_NAMES[metric]}\n\n"
                      + markdown_table(fmt_frame(avg), "No cell has every method."))
            if not test:
                blocks = int(avg["blocks"].iloc[0]) if len(avg) else 0
                md.append(f"\nFriedman test: not made ({blocks} complete cells and {len(avg)} "
                          f"methods; it needs at least {MIN_BLOCKS} and {MIN_METHODS}). No "
                          "Nemenyi post-hoc, no critical-difference diagram.\n")
                continue
            md.append("\nFriedman test over {blocks} cells and {methods} methods: "
                      "chi2 = {statistic:.3f}, p = {p:.3g} ({p_method}).".format(**test))
            if nem is None:
                md.append(f" Not rejected at {ALPHA}: no Nemenyi post-hoc, no "
                          "critical-difference diagram.\n")
                continue
            md.append(f" Rejected at {ALPHA}: " + (
                f"critical-difference diagram figures/cd_{setup}.png and .pdf.\n"
                if metric == PRIMARY else "no critical-difference diagram (drawn for the "
                f"primary metric, {PRIMARY}, only).\n"))
            md.append("\nNemenyi p-values:\n\n" + markdown_table(
                fmt_frame(nem.rename_axis("row").reset_index().rename(
                    columns=lambda c: c if c == "row" else f"p {c}")), ""))
    return "".join(md)


def _alpha_markdown(t: pd.DataFrame) -> str:
    """The learned weights per cell: what ALM made of clean-label and noisy-label instances."""
    head = ("# ALM weights: teacher share on clean-label and noisy-label instances\n\n"
            "After the last refresh, per cell and ALM method: the mean over seeds of each run's "
            "mean teacher share (sum of the KD weights over the sum of all weights) on the "
            "training instances whose given label is clean, and on those whose label is noisy; "
            "diff = noisy - clean with its 95% t interval over seeds. A negative diff: the "
            "method gives the teacher less of the weight where the given label is wrong "
            "(and the label loss more); a positive diff, more.\n\n")
    if t.empty:
        return head + "No ALM run has a refresh.\n"
    rows = [[r.dataset, r.noise_id, r.teacher_labels, r.setup_id, r.method, r.n,
             f"{r.share_clean:.3f}", f"{r.share_noisy:.3f}", f"{r.diff:+.3f}",
             "" if r.ci_low != r.ci_low else f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]"]
            for r in t.itertuples()]
    return head + tabulate(rows, headers=["dataset", "noise", "teachers on", "setup", "method",
                                          "seeds", "clean-label", "noisy-label", "diff",
                                          "95% CI"], tablefmt="github",
                           disable_numparse=True) + "\n"


VERDICT_LEGEND = (
    "Each ALM method against each declared baseline, per setup, in two scopes. "
    "**in_these_cells**: do they differ on exactly these (dataset, noise) cells? Seeds are the "
    "replicates and each cell a stratum: the stratified sign-flip test of the seed-paired "
    "differences (exact when feasible), with the 95% stratified bootstrap interval. "
    "**across_tasks**: would the difference hold on another task like these? Cells are the "
    "units: the exact Wilcoxon signed-rank test over the per-cell mean differences, with the "
    "95% t interval over cells. mean_diff: the mean over cells of the per-cell mean paired "
    "difference (points). Labels: better / worse (Holm p < 0.05), equivalent (TOST at "
    "+-{margin:g} points, Holm p < 0.05), inconclusive (testable, neither shown), not testable "
    "(the smallest p the test can give, min_attainable_p, cannot pass the family's threshold; "
    "cells_needed / seeds_needed say how many would do). Families: per scope, the primary "
    "metric's rows; rows that cannot reach significance leave the family (Tarone), the rest "
    "are Holm-corrected (family_size). Intervals are unadjusted (ci_adjusted). mde: the "
    "difference the row's test detects with 80% power at the family's first Holm threshold. "
    "The last-epoch metric is reported beside with unadjusted p and no label: it is outside "
    "the claim family.")


def _scoped_sections(frame: pd.DataFrame, cols: list, titles: tuple, empty: str) -> str:
    """One Markdown section per (metric, scope) of a verdicts or moderators frame; the
    secondary metric's rows without the claim columns (Holm p, label, units needed, mde)."""
    parts = []
    for metric, title in ((PRIMARY, titles[0]), ("last", titles[1])):
        for scope in SCOPES:
            sub = frame[(frame["metric"] == metric) & (frame["scope"] == scope)]
            if metric != PRIMARY:
                sub = sub.drop(columns=[c for c in CLAIM_COLUMNS if c in sub])
            parts.append(f"\n## {scope}, {title}\n\n"
                         + markdown_table(fmt_frame(sub[[c for c in cols if c in sub]]), empty))
    return "".join(parts)


CLAIM_COLUMNS = ["p_holm", "p_equivalent_holm", "verdict", "cells_needed", "seeds_needed",
                 "mde"]


def _verdicts_markdown(v: pd.DataFrame, margin: float = MARGIN) -> str:
    cols = ["setup", "alm", "baseline", "n_cells", "n_pairs", "mean_diff", "ci_low", "ci_high",
            "p", "p_holm", "p_equivalent_holm", "min_attainable_p", "cells_needed",
            "seeds_needed", "mde", "verdict"]
    counts = ", ".join(f"{int((v['verdict'] == lab).sum())} {lab}" for lab in LABELS)
    rules = v["alm"].unique() if "alm" in v else ()
    return (for_rules("# Verdicts: each ALM method against each declared baseline, per "
                      "setup\n\n" + VERDICT_LEGEND.format(margin=margin) + "\n", rules)
            + f"\nPrimary metric (test accuracy at the best selection epoch): {counts}.\n"
            + _scoped_sections(v, cols, ("primary metric: test accuracy at the best selection "
                                         "epoch", "secondary metric, not a claim: test "
                                         "accuracy at the last epoch"),
                               "No declared comparison has a cell with two common seeds."))


MODERATOR_LEGEND = (
    "Does a factor of the cells change how much an ALM method gains on a baseline? Per "
    "stratum (cells that agree on everything but the factor: dataset, noise type, noise rate, "
    "setup, teacher labels) and seed, the difference of differences [ALM - baseline] at the "
    "level minus [ALM - baseline] at the reference level (points), on the seeds both cells "
    "have. in_these_cells: stratified sign-flip test over (stratum, seed), 95% stratified "
    "bootstrap interval; across_tasks: strata as units (exact Wilcoxon over per-stratum mean "
    "differences, 95% t interval; strata in different setups of one dataset share it, so "
    "they are units but not independent datasets). better: the ALM method's advantage is "
    "larger at the level than at the reference; worse: smaller; equivalent: within "
    "+-{margin:g} points (TOST); not testable: the smallest attainable p cannot pass the "
    "family's threshold. Families: per scope, this file's primary-metric rows (Tarone, then "
    "Holm), a family of their own. Intervals unadjusted. The last-epoch metric follows with "
    "unadjusted p and no label.")


def _moderators_markdown(a: Analysis) -> str:
    m = a.moderators
    head = ("# Moderators: the difference of differences between a factor's levels\n\n"
            + for_rules(MODERATOR_LEGEND.format(margin=a.margin),
                        m["alm"].unique() if "alm" in m else ()) + "\n\n"
            + (moderators_mod.READS_LABEL_LEGEND
               if "factor" in m and (m["factor"] == "reads_label").any() else "")
            + f"Declared factors: {', '.join(a.factors) or 'none'}."
            + (f" No two cells of this study differ only in: {', '.join(a.no_strata)} "
               "(not testable here: no stratum)." if a.no_strata else "") + "\n")
    cols = ["factor", "level", "reference", "alm", "baseline", "n_strata", "n_pairs",
            "mean_diff", "ci_low", "ci_high", "p", "p_holm", "p_equivalent_holm",
            "min_attainable_p", "cells_needed", "mde", "verdict"]
    return head + _scoped_sections(m, cols, ("primary metric", "last-epoch metric, not a "
                                                                "claim"),
                                   "No stratum has two common seeds.")


def write_report(results: Path, *, strict: bool = False, figures: bool = True) -> list[Path]:
    from benchmark.analysis import tables
    from benchmark.data.labels_summary import labels_summary_markdown

    results = Path(results)
    study = StudyLayout.of(results)
    tdir, fdir = study.tables, study.figures
    found = collect_runs(results)
    comp = completeness_mod.check(results, found)
    completeness_mod.raise_on_duplicates(comp)
    problems = comp.problems()
    if strict and problems:
        raise UserError("--strict: " + "; ".join(problems)
                        + " (details: run without --strict and read tables/completeness.md)")
    for line in problems:
        print(f"noisykd report: {line}", file=sys.stderr)
    if comp.plan.runs is None:
        print(f"noisykd report: no plan ({PLAN_FILE} does not exist): the "
              "tables use every finished run found, and what is missing is not known",
              file=sys.stderr)
    runs = comp.included
    # every input is read (and checked: a file it cannot read is one line naming it) before
    # the first file is written, so that one bad input rewrites no table
    teachers = collect_teachers(results)
    labels = study.labels_files()
    label_noise = (labels_summary_markdown(labels) if labels
                   else "# Label noise\n\nNo labels files.\n")
    refreshes, bins = alpha_summary.load(results)  # read once: table and figures
    written: list[Path] = []

    def put(path: Path, text: str) -> None:
        atomic_write_text(path, text)
        written.append(path)

    put(tdir / "completeness.md", completeness_mod.markdown(comp, len(found), markdown_table))
    put(tdir / "label_noise.md", label_noise)

    setup_ids = set(runs["setup_id"]) | {Path(r).parts[3] for r in comp.plan.runs or []}
    wanted = report_kinds(setup_ids)
    a = analyse(runs, comp.plan.alm, comp.plan.baselines, setups=wanted,
                margin=comp.plan.margin, factors=comp.plan.moderators)
    context = teacher_context(runs, teachers)
    mixed = comp.mixed_cells()
    subsets = train_subsets(runs)
    clean = clean_splits(results, set(runs["dataset"]))
    for metric in METRICS:
        for setup in wanted:
            c = a.comparisons[(setup, metric)]
            table = tables.build_table(
                setup, metric, a.summary[metric], c, context[context["setup"] == setup],
                baselines=comp.plan.baselines, mixed=mixed, mde=a.mde[(setup, metric)],
                verdicts=a.verdicts, n_verdicts=len(a.verdicts), subsets=subsets,
                clean=clean, margin=a.margin)
            put(tdir / f"{setup}_{metric}.md", tables.to_markdown(table))
            put(tdir / f"{setup}_{metric}.tex", tables.to_latex(table))
            put(tdir / f"{setup}_{metric}.csv", tables.to_csv(table))
    put(tdir / "comparisons.csv", a.comparisons_frame().to_csv(index=False, float_format="%.6g"))
    put(tdir / "verdicts.csv", a.with_method_ids(a.verdicts, ["setup"])
        .to_csv(index=False, float_format="%.6g"))
    put(tdir / "verdicts.md", _verdicts_markdown(a.verdicts, a.margin))
    put(tdir / "moderators.csv", a.with_method_ids(a.moderators, [])
        .to_csv(index=False, float_format="%.6g"))
    put(tdir / "moderators.md", _moderators_markdown(a))
    if len(a.gains):  # the first figure's numbers
        put(tdir / "gain_over_clean_budget.csv", a.gains.to_csv(index=False,
                                                                 float_format="%.6g"))
    put(tdir / "headline.md", headline.markdown(a.verdicts, a.moderators, comp.plan.alm,
                                                comp.plan.baselines, a.margin))
    put(tdir / "ranks.md", _ranks_markdown(a))
    alpha = alpha_summary.alpha_table(refreshes)
    put(tdir / "alpha.csv", alpha.to_csv(index=False, float_format="%.6g"))
    put(tdir / "alpha.md", _alpha_markdown(alpha))
    if figures:
        written += _figures(fdir, a, runs, refreshes, bins)
    atomic_write_text(tdir / "manifest.json", json.dumps([str(p) for p in written], indent=1))
    return written


def clean_splits(results: Path, datasets: set) -> dict:
    """dataset -> the meta and selection split sizes of its labels files (0: none)."""
    from benchmark.data.labels import read_labels

    out: dict = {}
    for path in StudyLayout.of(results).labels_files():
        meta = None
        # a dataset's runs folder (its name, -authors under the authors' protocol) reads the
        # labels files of the dataset
        for folder in (d for d in sorted(datasets) if d.removesuffix("-authors") ==
                       path.parts[-3]):
            meta = meta or read_labels(path).meta
            c = out.setdefault(folder, {"meta": [], "select": []})
            for key, n in (("meta", meta["n_val"]), ("select", meta.get("n_select", 0))):
                if n not in c[key]:
                    c[key].append(n)
    return {d: {k: sorted(v) for k, v in c.items()} for d, c in sorted(out.items())}


def _figures(fdir: Path, a: Analysis, runs: pd.DataFrame, refreshes: pd.DataFrame,
             bins: pd.DataFrame) -> list[Path]:
    from benchmark.analysis import figures
    from benchmark.analysis.tables import METRIC_NAMES

    out = figures.accuracy_vs_noise(a.summary[PRIMARY], fdir / "accuracy_vs_noise", PRIMARY)
    if len(a.gains):
        out += figures.gain_over_clean_budget(a.gains, fdir / "gain_over_clean_budget")
    for setup in a.setups:
        avg, test, nem = a.ranks[(setup, PRIMARY)]
        drawn = figures.critical_difference(avg, nem, test, fdir / f"cd_{setup}",
                                            f"{setup}: {METRIC_NAMES[PRIMARY]}")
        if not drawn:  # no test, or one that did not reject: an earlier report's is stale
            for ext in ("png", "pdf"):
                (fdir / f"cd_{setup}.{ext}").unlink(missing_ok=True)
        out += drawn
    if len(refreshes) or (len(runs) and runs["method"].isin(ALM_METHODS).any()):
        out += figures.alm_weights(refreshes, fdir / "alm_weights")
        out += figures.alm_weight_by_teacher_labels(refreshes,
                                                    fdir / "alm_weight_by_teacher_labels")
        out += figures.alm_weight_vs_teacher(bins, fdir / "alm_weight_vs_teacher")
    return out
