"""`noisykd report`: every table and figure from whatever is in results/, training nothing.

``analyse`` turns the runs the tables may use into every number (no files): per setup and
metric the common-seed summary, the declared comparisons with their markers and minimum
detectable difference, the aggregate verdicts and the ranks. ``write_report`` checks
completeness first (a duplicate, or any problem under ``--strict``, stops it before a file is
written), names each kind of problem in one line on stderr, reads every other input (a
metrics.json, alpha_summary.json or labels file it cannot read stops it, naming the file,
before a file is written: benchmark/run_metrics.py), then writes the files.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from . import alpha_summary
from . import completeness as completeness_mod
from .collect import collect_runs, collect_teachers, train_subsets
from .errors import UserError
from .grid import ALM_METHODS, report_kinds
from .ranks import setup_ranks
from .runinfo import atomic_write_text
from .scores import METRICS, common_seeds, method_scores, summarise
from .stats import minimum_detectable, paired_comparisons
from .verdicts import VERDICT_COLUMNS, finalise, min_cells, setup_verdicts

PRIMARY = "best"
COMPARISONS_CSV = ["setup", "metric", "dataset", "noise_id", "alm", "baseline", "n",
                   "mean_diff", "ci_low", "ci_high", "p", "p_holm", "marker", "p_wilcoxon",
                   "sd_diff"]


@dataclass
class Analysis:
    setups: list[str]
    summary: dict = field(default_factory=dict)  # metric -> common-seed summary, all setups
    comparisons: dict = field(default_factory=dict)  # (setup, metric) -> frame
    mde: dict = field(default_factory=dict)  # (setup, metric) -> stats.minimum_detectable
    ranks: dict = field(default_factory=dict)  # (setup, metric) -> (avg, friedman, nemenyi)
    verdicts: pd.DataFrame = None

    def comparisons_frame(self) -> pd.DataFrame:
        parts = [c.assign(setup=s, metric=m) for (s, m), c in self.comparisons.items()]
        if not parts:
            return pd.DataFrame(columns=COMPARISONS_CSV)
        return pd.concat(parts, ignore_index=True)[COMPARISONS_CSV]


def analyse(runs: pd.DataFrame, alm: tuple, baselines: tuple, setups=None) -> Analysis:
    setups = sorted(setups if setups is not None else set(runs["setup"]) - {"none"})
    out = Analysis(setups)
    parts = []
    for metric in METRICS:
        scores = common_seeds(method_scores(runs, metric))
        out.summary[metric] = summarise(scores)
        for setup in setups:
            sub = scores[scores["setup"] == setup]
            comp = paired_comparisons(sub, alm, baselines)
            out.comparisons[(setup, metric)] = comp
            out.mde[(setup, metric)] = minimum_detectable(comp)
            out.ranks[(setup, metric)] = setup_ranks(
                out.summary[metric][out.summary[metric]["setup"] == setup])
            parts.append(setup_verdicts(sub, setup, metric, alm, baselines))
    out.verdicts = finalise(pd.concat(parts, ignore_index=True) if parts
                            else pd.DataFrame(columns=VERDICT_COLUMNS[:-2]))
    return out


def teacher_context(runs: pd.DataFrame, teachers: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, noise, setup): the mean test accuracy and label agreement of the
    teachers the setup's students distil from (over seeds and teachers)."""
    cols = ["dataset", "noise_id", "setup", "teacher_acc", "teacher_agreement"]
    used = (runs[runs["setup"] != "none"][["dataset", "noise_id", "setup", "seed", "teacher_ids"]]
            .explode("teacher_ids").dropna(subset=["teacher_ids"])
            .rename(columns={"teacher_ids": "teacher_id"}).drop_duplicates())
    if used.empty or teachers.empty:
        return pd.DataFrame(columns=cols)
    t = used.merge(teachers, on=["dataset", "noise_id", "teacher_id", "seed"])
    out = t.groupby(["dataset", "noise_id", "setup"]).agg(
        teacher_acc=("test_acc_last", "mean"), teacher_agreement=("agreement_given", "mean"))
    return out.reset_index()[cols]


def _markdown(df: pd.DataFrame, empty: str) -> str:
    if df.empty:
        return empty + "\n"
    return tabulate(df, headers="keys", tablefmt="github", showindex=False,
                    disable_numparse=True) + "\n"


def _fmt(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """Numbers as text with ``digits`` significant digits (p-values) or 2 decimals."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            fmt = (lambda v: f"{v:.{digits}g}") if c.startswith("p") else (lambda v: f"{v:.2f}")
            out[c] = [("" if v != v else fmt(v)) for v in out[c]]
    return out


def _ranks_markdown(a: Analysis) -> str:
    from .tables import METRIC_NAMES

    md = ["# Average ranks, Friedman tests and Nemenyi post-hoc, per setup\n\n"
          "Blocks: the setup's (dataset, noise) cells that have every method; ranks of the "
          "common-seed means (1 = best). Nemenyi p-values (scikit-posthocs) below each test; "
          "the critical-difference diagrams are figures/cd_<setup>.png (primary metric).\n"]
    for metric in METRICS:
        for setup in a.setups:
            avg, test, nem = a.ranks[(setup, metric)]
            md.append(f"\n## {setup}: {METRIC_NAMES[metric]}\n\n"
                      + _markdown(_fmt(avg), "No cell has every method."))
            if test:
                md.append("\nFriedman test over {blocks} cells and {methods} methods: "
                          "chi2 = {statistic:.3f}, p = {p:.3g}.\n".format(**test))
                md.append("\nNemenyi p-values:\n\n" + _markdown(
                    _fmt(nem.rename_axis("row").reset_index().rename(
                        columns=lambda c: c if c == "row" else f"p {c}")), ""))
            else:
                md.append("\nFriedman test: needs at least 3 methods and 2 complete cells.\n")
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


def _verdicts_markdown(v: pd.DataFrame) -> str:
    return ("# Aggregate verdicts: each ALM method against each declared baseline, per "
            "setup\n\nPrimary metric: test accuracy at the best clean-validation epoch "
            "(metric best); last-epoch verdicts follow. mean_diff, ci_low, ci_high in "
            "percentage points: the mean over cells of the per-cell mean paired difference "
            "and its 95% bootstrap interval (seeds resampled within cells). p_wilcoxon: "
            "signed-rank test over per-cell differences; p_holm: Holm over every row of this "
            "file. prob_improvement: rliable's probability of improvement. better / worse: "
            "p_holm < 0.05 and the interval excludes 0. The smallest Wilcoxon p over k cells is "
            f"2/2^k, so with {len(v)} verdicts in the family a verdict needs at least "
            f"{min_cells(len(v))} cells.\n\n"
            + _markdown(_fmt(v.assign(secondary=v["metric"] != PRIMARY)
                             .sort_values(["secondary", "setup"], kind="stable")
                             .drop(columns="secondary")),
                        "No declared comparison has a cell with two common seeds."))


def write_report(results: Path, *, strict: bool = False, figures: bool = True) -> list[Path]:
    from . import tables
    from .labels_summary import labels_summary_markdown

    results = Path(results)
    tdir, fdir = results / "tables", results / "figures"
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
        print(f"noisykd report: no plan ({completeness_mod.PLAN_FILE} does not exist): the "
              "tables use every finished run found, and what is missing is not known",
              file=sys.stderr)
    runs = comp.included
    # every input is read (and checked: a file it cannot read is one line naming it) before
    # the first file is written, so that one bad input rewrites no table
    teachers = collect_teachers(results)
    labels = sorted(results.glob("labels/*/*/seed*.npz"))
    label_noise = (labels_summary_markdown(labels) if labels
                   else "# Label noise\n\nNo labels files.\n")
    refreshes, bins = alpha_summary.load(results)  # read once: table and figures
    written: list[Path] = []

    def put(path: Path, text: str) -> None:
        atomic_write_text(path, text)
        written.append(path)

    put(tdir / "completeness.md", completeness_mod.markdown(comp, len(found), _markdown))
    put(tdir / "label_noise.md", label_noise)

    setup_ids = set(runs["setup_id"]) | {Path(r).parts[3] for r in comp.plan.runs or []}
    wanted = report_kinds(setup_ids)
    a = analyse(runs, comp.plan.alm, comp.plan.baselines, setups=wanted)
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
                clean=clean)
            put(tdir / f"{setup}_{metric}.md", tables.to_markdown(table))
            put(tdir / f"{setup}_{metric}.tex", tables.to_latex(table))
            put(tdir / f"{setup}_{metric}.csv", tables.to_csv(table))
    put(tdir / "comparisons.csv", a.comparisons_frame().to_csv(index=False, float_format="%.6g"))
    put(tdir / "verdicts.csv", a.verdicts.to_csv(index=False, float_format="%.6g"))
    put(tdir / "verdicts.md", _verdicts_markdown(a.verdicts))
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
    from .labels import read_labels

    out: dict = {}
    for path in sorted(Path(results).glob("labels/*/*/seed*.npz")):
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
    from . import figures
    from .tables import METRIC_NAMES

    out = figures.accuracy_vs_noise(a.summary[PRIMARY], fdir / "accuracy_vs_noise", PRIMARY)
    for setup in a.setups:
        avg, test, nem = a.ranks[(setup, PRIMARY)]
        out += figures.critical_difference(avg, nem, test, fdir / f"cd_{setup}",
                                           f"{setup}: {METRIC_NAMES[PRIMARY]}")
    if len(refreshes) or (len(runs) and runs["method"].isin(ALM_METHODS).any()):
        out += figures.alm_weights(refreshes, fdir / "alm_weights")
        out += figures.alm_weight_by_teacher_labels(refreshes,
                                                    fdir / "alm_weight_by_teacher_labels")
        out += figures.alm_weight_vs_teacher(bins, fdir / "alm_weight_vs_teacher")
    return out
