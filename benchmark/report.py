"""`noisykd report`: every table and figure from whatever is in results/, training nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from .collect import collect_runs, collect_teachers, completeness
from .grid import ALM_METHODS, report_tables
from .runinfo import atomic_write_text
from .stats import (
    METRICS,
    WILCOXON_MIN_N,
    markers,
    method_scores,
    paired_comparisons,
    ranks,
    summarise,
)


def teacher_context(runs: pd.DataFrame, teachers: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, noise, setup): the mean test accuracy and label agreement of the
    teachers the setup's students distil from (over seeds and teachers)."""
    rows = []
    for (dataset, noise_id, setup), g in runs[runs["setup"] != "none"].groupby(
            ["dataset", "noise_id", "setup"]):
        ids = sorted({t for ts in g["teacher_ids"] for t in ts})
        t = teachers[(teachers["dataset"] == dataset) & (teachers["noise_id"] == noise_id)
                     & teachers["teacher_id"].isin(ids) & teachers["seed"].isin(set(g["seed"]))]
        if len(t):
            rows.append({"dataset": dataset, "noise_id": noise_id, "setup": setup,
                         "teacher_acc": t["test_acc_last"].mean(),
                         "teacher_agreement": t["agreement_given"].mean()})
    return pd.DataFrame(rows, columns=["dataset", "noise_id", "setup", "teacher_acc",
                                       "teacher_agreement"])


def _markdown(df: pd.DataFrame, empty: str) -> str:
    if df.empty:
        return empty + "\n"
    return tabulate(df, headers="keys", tablefmt="github", showindex=False,
                    disable_numparse=True) + "\n"


def write_report(results: Path) -> list[Path]:
    from . import figures, tables
    from .labels_summary import labels_summary_markdown

    results = Path(results)
    tdir, fdir = results / "tables", results / "figures"
    written: list[Path] = []

    def put(path: Path, text: str) -> None:
        atomic_write_text(path, text)
        written.append(path)

    runs = collect_runs(results)
    teacher_frame = collect_teachers(results)
    comp = completeness(results, runs)
    put(tdir / "completeness.md",
        f"# Completeness\n\nExpected runs from: {comp.expected_source}. Finished runs: "
        f"{len(runs)}.\n\n## Missing or failed runs\n\n"
        + _markdown(comp.missing, "None: every expected run finished.")
        + "\n## Cells whose runs differ in spec or code revision\n\n"
        + _markdown(comp.inconsistent, "None."))
    labels = sorted(results.glob("labels/*/*/seed*.npz"))
    put(tdir / "label_noise.md", labels_summary_markdown(labels) if labels
        else "# Label noise\n\nNo labels files.\n")

    setup_ids = set(runs["setup_id"]) if len(runs) else {"none"}
    wanted = {name.rsplit("_", 1)[0] for name in report_tables(setup_ids)}
    context = teacher_context(runs, teacher_frame)
    rank_md = ["# Average ranks and Friedman tests\n"]
    comparisons_all = []
    for metric in METRICS:
        scores = method_scores(runs, metric)
        summary = summarise(scores)
        for setup in sorted(wanted):
            sub = scores[scores["setup"] == setup]
            comp_tab = paired_comparisons(sub)
            comparisons_all.append(comp_tab.assign(metric=metric))
            table = tables.build_table(setup, metric, summary, markers(
                summary[summary["setup"] == setup], comp_tab),
                context[context["setup"] == setup])
            put(tdir / f"{setup}_{metric}.md", tables.to_markdown(table))
            put(tdir / f"{setup}_{metric}.tex", tables.to_latex(table))
            put(tdir / f"{setup}_{metric}.csv", tables.to_csv(table))
        avg, test = ranks(summary)
        rank_md.append(f"\n## {tables.METRIC_NAMES[metric]}\n\n"
                       + _markdown(avg.round(2) if len(avg) else avg, "No cell has every method.")
                       + ("\nFriedman test over {cells} cells and {methods} methods: "
                          "chi2 = {statistic:.3f}, p = {p:.4g}.\n".format(**test) if test else
                          "\nFriedman test: needs at least 3 methods and 2 complete cells.\n"))
        if metric == "best":
            written += figures.accuracy_vs_noise(summary, fdir / "accuracy_vs_noise", metric)
    comps = pd.concat(comparisons_all, ignore_index=True) if comparisons_all else pd.DataFrame()
    rank_md.append("\n## Paired comparisons (ALM method vs baseline, per cell)\n\n"
                   + _markdown(comps.round(5).astype(object).where(comps.notna(), "")
                               if len(comps) else comps, "No comparisons.")
                   + "\nt_p: paired t-test; wilcoxon_p: Wilcoxon signed-rank, only when "
                     f"n >= {WILCOXON_MIN_N}; *_holm: Holm-adjusted within one table (setup "
                     "and metric).\n")
    put(tdir / "ranks.md", "".join(rank_md))
    alpha = figures.load_alpha(results)
    if len(alpha) or (len(runs) and runs["method"].isin(ALM_METHODS).any()):
        written += figures.alm_weights(alpha, fdir / "alm_weights")
        written += figures.alm_weight_vs_teacher(alpha, fdir / "alm_weight_vs_teacher")
    atomic_write_text(tdir / "manifest.json", json.dumps([str(p) for p in written], indent=1))
    return written
