"""Paper tables: one per teacher setup and metric, rows = methods, columns = dataset / noise.

Markdown, LaTeX (booktabs, a standalone document that compiles on its own, one tabular per
dataset so wide grids fit a page) and CSV are written from one tidy frame, in percent. A cell
is ``mean ± std`` over the seeds every method of the cell has; the highest mean of a column
with at least two methods is bold (a ranking, not a test); after an ALM method's cell,
``+K`` / ``-K`` say it is significantly better / worse than the baseline K (stats.py:
declared comparisons, paired t-test, Holm over the table), and the legend gives the smallest
difference the markers detect with 80% power. A dagger marks a column whose methods mix
specs or code revisions. Context rows: the teachers' test accuracy and the agreement of
their predictions on the training split with the noisy labels and with the clean labels
(whichever of the two the teachers were trained on: ``-cleanT`` setups' saw the clean
ones). The Markdown file opens with the setup's aggregate verdicts (verdicts.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from tabulate import tabulate

from benchmark.analysis.scores import base_method, only_alm
from benchmark.analysis.stats import ALPHA, POWER, WILCOXON_MIN_N
from benchmark.analysis.verdicts import MARGIN, NOT_TESTABLE, SCOPES
from methods.catalog import (
    CLEAN_LABEL_METHODS,
    COMPARED_METHODS,
    METHOD_NAMES,
    SHORT,
    TRUST_FROM_LABEL_METHODS,
)

ROW_ORDER = METHOD_NAMES  # rows in the order the catalog lists them
METRIC_NAMES = {"best": "test accuracy at the best clean-validation epoch",
                "last": "test accuracy at the last epoch"}
MIXED = "†"
CLEAN = "‡"  # after a method's name: it trains on clean labels (the meta split)
#: after a method's name: its trust in the teacher is computed from the given (noisy) label
FROM_LABEL = "§"
TABLE_CSV_COLUMNS = ["setup", "metric", "dataset", "noise_id", "row", "method_id", "hparams",
                     "uses_clean_labels", "mean", "std", "n", "alphas", "markers", "best",
                     "mixed"]
# the teacher context rows: label, column of Table.teachers (fractions)
TEACHER_ROWS = (("teacher acc", "teacher_acc"),
                ("teacher agreement (noisy labels)", "teacher_agreement_noisy"),
                ("teacher agreement (clean labels)", "teacher_agreement_clean"))


def uses_clean_labels(row: str) -> bool:
    return base_method(row) in CLEAN_LABEL_METHODS


def trust_from_label(row: str) -> bool:
    return base_method(row) in TRUST_FROM_LABEL_METHODS


def row_marks(row: str) -> str:
    return (CLEAN if uses_clean_labels(row) else "") + (FROM_LABEL if trust_from_label(row)
                                                        else "")


def row_key(row: str):
    base = base_method(row)
    return (ROW_ORDER.index(base) if base in ROW_ORDER else len(ROW_ORDER), row)


def short(row: str) -> str:
    """A baseline row's marker key: ``K`` for kd, ``K(T=2)`` for its variant ``kd (T=2)``."""
    if row in SHORT:
        return SHORT[row]
    name, sep, rest = row.partition(" (")
    if sep and name in SHORT:
        return SHORT[name] + "(" + rest.replace(" ", "")
    return row


@dataclass
class Table:
    setup: str
    metric: str
    frame: pd.DataFrame  # tidy, percent: dataset, noise_id, row, method_id, hparams, mean,
    #                      std, n, alphas, markers, best, mixed
    columns: list[tuple[str, str]]
    rows: list[str]
    teachers: pd.DataFrame  # dataset, noise_id, teacher_acc, teacher_agreement_noisy,
    #                         teacher_agreement_clean (fractions; report.teacher_context)
    n_max: int
    baselines: tuple[str, ...]  # declared baselines, in table order
    mde: dict | None  # stats.minimum_detectable
    verdicts: pd.DataFrame  # this setup's and metric's rows of verdicts.csv (both scopes)
    n_verdicts: int  # rows of verdicts.csv
    subsets: dict = field(default_factory=dict)  # dataset -> train_subset sizes (collect)
    clean: dict = field(default_factory=dict)  # dataset -> {"meta": [n], "select": [n]}
    margin: float = MARGIN  # the equivalence margin of the verdicts (points)

    def cells(self) -> tuple[dict, set]:
        """(row, dataset, noise) -> the frame's record, and the mixed (dataset, noise)."""
        if not hasattr(self, "_cells"):
            records = self.frame.to_dict("records")
            self._cells = ({(r["row"], r["dataset"], r["noise_id"]): r for r in records},
                           {(r["dataset"], r["noise_id"]) for r in records if r["mixed"]})
        return self._cells

    def legend(self) -> str:
        ns = sorted(set(self.frame["n"]))
        n_text = (f"n = {ns[0]} seeds in every cell" if len(ns) == 1 else
                  f"n = {', '.join(map(str, ns))} seeds (cells with fewer than {self.n_max} "
                  "show their n)")
        keys = ", ".join(f"{short(b)} = {b}" for b in self.baselines)
        m = self.mde
        power = (f"No marker is not no effect: at n = {m['n']} and this table's pooled sd of "
                 f"paired differences ({m['sd']:.2f} points), a difference is marked with "
                 f"{POWER:.0%} power from {m['holm']:.2f} points (Holm's first threshold, "
                 f"{ALPHA}/{m['m']}; {m['unadjusted']:.2f} points unadjusted). "
                 if m else "No comparison has two seeds: no marker is possible. ")
        return (f"Setup {self.setup}. Metric: {METRIC_NAMES[self.metric]}, mean ± std over "
                f"seeds in percent, on the seeds that every method of the cell has; {n_text}. "
                "Bold: the highest mean of a column with at least two methods (a ranking, "
                f"not a test: see the markers). Markers after {self.compared_words()}: +X / -X: "
                f"significantly better / worse than baseline X ({keys}; declared before "
                "any test number, never chosen by test mean): paired t-test over seeds, "
                f"Holm-corrected over the {m['m'] if m else 0} comparisons of this table "
                f"(alpha = {ALPHA}). {power}comparisons.csv lists every difference with its "
                f"95% confidence interval and p (Wilcoxon signed-rank too once n >= "
                f"{WILCOXON_MIN_N}). {MIXED}: the column's methods mix specs or code "
                "revisions (completeness.md). fixed_alpha: per seed, the alpha with the best "
                "clean-validation accuracy (chosen values in the 'chosen alpha' row). Teacher "
                "rows, means over seeds and teachers: test accuracy of the teachers students "
                "distil from; teacher agreement (noisy labels): how often their predictions "
                "on the training split equal its noisy labels; teacher agreement (clean "
                "labels): how often they equal its clean labels (blank where a teacher's "
                "metrics.json does not record it)."
                + self.subset_note() + self.clean_note() + self.label_note())

    def compared_words(self) -> str:
        """Who carries the markers: the ALM methods (the tables before the zoo say only
        that), or every rule under test."""
        rules = [r for r in self.rows if base_method(r) in COMPARED_METHODS]
        return ("an ALM method" if only_alm(rules)
                else "a rule under test (an ALM method or a trust rule of the zoo)")

    def label_note(self) -> str:
        """Which rules compute their trust in the teacher from the given label (empty when
        none is in the table)."""
        rows = [r for r in self.rows if trust_from_label(r)]
        if not rows:
            return ""
        return (f" {FROM_LABEL}: computes its trust in the teacher from the given (noisy) "
                f"label ({', '.join(rows)}): under label noise it trusts the teacher least "
                "where the label is wrong.")

    def clean_note(self) -> str:
        """Who trained on clean labels, how many, and what chose the epochs (labels files)."""
        rows = [r for r in self.rows if uses_clean_labels(r)]
        head = (f" {CLEAN}: trains on clean labels, the meta split ({', '.join(rows)})."
                if rows else " No method here trains on clean labels.")
        if not self.clean:
            return head
        parts, shared = [], []
        for d, c in sorted(self.clean.items()):
            meta = " / ".join(map(str, c["meta"]))
            if any(c["select"]):
                sel = " / ".join(map(str, c["select"]))
                parts.append(f"{d}: meta {meta}, selection {sel}")
            else:
                parts.append(f"{d}: meta {meta}, no selection split")
                shared.append(d)
        text = head + " Clean examples per seed: " + "; ".join(parts) + "."
        if shared:
            text += (f" On {', '.join(shared)} the meta split also chose every epoch and "
                     "alpha (the shared set, as the ALM-KD authors ran it): the methods marked "
                     f"{CLEAN} were selected on data they trained on.")
        if len(shared) < len(self.clean):
            text += (" Elsewhere epochs and alphas were chosen on the selection split, which "
                     "no method trains on.")
        return text

    def subset_note(self) -> str:
        """Datasets trained on a stratified training subset say so (spec labels.train_subset)."""
        if not self.subsets:
            return ""
        parts = [f"{d} on {' / '.join(str(n) for n in ns)} examples" for d, ns in
                 self.subsets.items()]
        return (" Training subsets (train_subset, seeded per seed, stratified; validation and "
                "test sets whole): " + ", ".join(parts) + ".")

    def verdict_legend(self) -> str:
        fam = {sc: int(self.verdicts.loc[self.verdicts["scope"] == sc, "family_size"].max())
               if (self.verdicts["scope"] == sc).any() else 0 for sc in SCOPES}
        return ("in_these_cells: seeds as replicates, cells as strata (stratified sign-flip "
                "test, 95% stratified bootstrap interval); across_tasks: cells as units (exact "
                "Wilcoxon signed-rank over the per-cell mean differences, 95% t interval over "
                "cells). Difference: the mean over cells of the per-cell mean paired "
                "difference (points). better / worse: Holm p < 0.05; equivalent: TOST at "
                f"+-{self.margin:g} points, Holm p < 0.05; inconclusive: testable, neither; not "
                "testable: the test's smallest attainable p cannot pass its family's threshold "
                "(the cells or seeds it would need in brackets). Holm families (verdicts.csv): "
                f"per scope over the primary metric's testable rows of the report, "
                f"{fam['in_these_cells']} in these cells and {fam['across_tasks']} across tasks "
                "(rows that cannot reach significance leave the family: Tarone). Intervals "
                "unadjusted. mde: the difference detected with 80% power."
                + ("" if self.metric == "best" else " Last-epoch metric: outside the claim "
                   "family, no labels."))


def build_table(setup: str, metric: str, summary: pd.DataFrame, comparisons: pd.DataFrame,
                teachers: pd.DataFrame, *, baselines: tuple, mixed: set, mde: dict | None,
                verdicts: pd.DataFrame, n_verdicts: int, subsets: dict | None = None,
                clean: dict | None = None, margin: float = MARGIN) -> Table:
    """``summary``/``comparisons``: this setup's and metric's (percent, points)."""
    s = summary[summary["setup"] == setup].copy()
    marks: dict = {}
    for r in comparisons[comparisons["marker"] != ""].itertuples():
        marks.setdefault((r.dataset, r.noise_id, r.alm), []).append(
            f"{r.marker}{short(r.baseline)}")
    s["markers"] = [" ".join(marks.get(k, [])) for k in zip(s["dataset"], s["noise_id"],
                                                             s["row"], strict=True)]
    column = s.groupby(["dataset", "noise_id"])["mean"]
    s["best"] = (column.transform("max") == s["mean"]) & (column.transform("size") >= 2)
    for col in ("method_id", "hparams"):  # a summary without them (scores.summarise has them)
        if col not in s:
            s[col] = ""
    s["uses_clean_labels"] = [uses_clean_labels(r) for r in s["row"]]
    s["mixed"] = [(d, n, setup) in mixed for d, n in zip(s["dataset"], s["noise_id"],
                                                         strict=True)]
    columns = sorted({(d, n) for d, n in zip(s["dataset"], s["noise_id"], strict=True)})
    rows = sorted(set(s["row"]), key=row_key)
    v = verdicts[(verdicts["setup"] == setup) & (verdicts["metric"] == metric)]
    return Table(setup, metric, s.drop(columns=["setup"]), columns, rows, teachers,
                 int(s["n"].max()) if len(s) else 0, tuple(baselines), mde, v, n_verdicts,
                 dict(subsets or {}), dict(clean or {}), margin)


def _cell_text(r, n_max: int, bold, mark, esc) -> str:
    std = "" if math.isnan(r["std"]) else f" ± {r['std']:.2f}"
    text = f"{r['mean']:.2f}{std}"
    if r["n"] < n_max:
        text += f" (n={int(r['n'])})"
    text = esc(text)
    if r["best"]:
        text = bold(text)
    if r["markers"]:
        text += mark(r["markers"])
    return text


def _grid(t: Table, columns, bold, mark, header_sep: str, esc=lambda x: x):
    """Header and body cells; ``esc`` is applied to plain text before bold and markers."""
    by, mixed = t.cells()
    headers = ["method"] + [f"{esc(d)}{header_sep}{esc(n)}" + (MIXED if (d, n) in mixed else "")
                            for d, n in columns]
    body = []
    for row in t.rows:
        cells = [_cell_text(by[(row, d, n)], t.n_max, bold, mark, esc)
                 if (row, d, n) in by else "" for d, n in columns]
        if not any(cells):
            continue
        body.append([esc(row) + row_marks(row)] + cells)
        if base_method(row) == "fixed_alpha":
            body.append(["chosen alpha"] + [esc(by[(row, d, n)]["alphas"])
                                            if (row, d, n) in by else "" for d, n in columns])
    tc = {(r.dataset, r.noise_id): r for r in t.teachers.itertuples()}
    if any(c in tc for c in columns):
        for label, attr in TEACHER_ROWS:
            body.append([label] + [_fraction(getattr(tc[c], attr, math.nan)) if c in tc
                                   else "" for c in columns])
    return headers, body


def _verdict_label(r) -> str:
    if r.verdict == NOT_TESTABLE:
        need = (f"{int(r.cells_needed)} cells" if r.cells_needed == r.cells_needed else
                f"{int(r.seeds_needed)} seeds per cell" if r.seeds_needed == r.seeds_needed
                else "")
        return f"{r.verdict} (needs {need})" if need else r.verdict
    return r.verdict or "(not a claim)"


def _fraction(v) -> str:
    """A fraction as percent with two decimals; blank when not recorded (None or NaN)."""
    return "" if v is None or v != v else f"{100 * v:.2f}"


def verdict_rows(t: Table) -> list[list[str]]:
    return [[r.scope, r.alm, r.baseline, str(r.n_cells), f"{r.mean_diff:+.2f}",
             "" if r.ci_low != r.ci_low else f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]", _p(r.p),
             _p(r.p_holm), _p(r.p_equivalent_holm), "" if r.mde != r.mde else f"{r.mde:.2f}",
             _verdict_label(r)] for r in t.verdicts.itertuples()]


VERDICT_HEADERS = ["scope", "ALM method", "baseline", "cells", "diff (points)", "95% CI", "p",
                   "Holm p", "Holm p (equivalence)", "mde", "verdict"]


def _p(p: float) -> str:
    return "" if p != p else f"{p:.3g}"


def to_markdown(t: Table) -> str:
    headers, body = _grid(t, t.columns, lambda x: f"**{x}**", lambda m: f" ({m})", " ")
    verdict = (tabulate(verdict_rows(t), headers=VERDICT_HEADERS, tablefmt="github",
                        disable_numparse=True) if len(t.verdicts)
               else "No declared comparison has a cell with two common seeds.")
    return (f"# {t.setup}: {METRIC_NAMES[t.metric]}\n\n## Verdicts\n\n"
            + verdict + "\n\n" + t.verdict_legend() + "\n\n## Per cell\n\n"
            + tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
            + "\n\n" + t.legend() + "\n")


def _latex_tabular(t: Table, columns) -> str:
    headers, body = _grid(t, columns, lambda x: r"\textbf{" + x + "}",
                          lambda m: "$^{" + m.replace(" ", ",").replace("_", r"\_") + "}$",
                          "\n",
                          lambda x: _tex_escape(x).replace("±", r"$\pm$"))

    def cell(text: str) -> str:
        text = text.replace(MIXED, r"$^\dagger$")
        if "\n" in text:
            return r"\begin{tabular}[b]{@{}c@{}}" + text.replace("\n", r"\\") + r"\end{tabular}"
        return text

    lines = [r"\begin{tabular}{l" + "c" * (len(headers) - 1) + "}", r"\toprule",
             " & ".join(cell(h) for h in headers) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def to_latex(t: Table) -> str:
    """A standalone booktabs document, one tabular per dataset (tabulate's booktabs format
    escapes every backslash, so the few lines of tabular are written here)."""
    datasets = sorted({d for d, _ in t.columns})
    blocks = [_latex_tabular(t, [c for c in t.columns if c[0] == d]) for d in datasets] or [
        _latex_tabular(t, [])]
    legend = (_tex_escape(t.legend()).replace("±", r"$\pm$").replace(">=", r"$\geq$")
              .replace(MIXED, r"$^\dagger$"))
    return ("\\documentclass[varwidth=\\maxdimen,border=4pt]{standalone}\n"
            "\\usepackage{booktabs}\n\\newsavebox{\\tablebox}\n\\begin{document}\n"
            "\\sbox{\\tablebox}{\\begin{tabular}{@{}c@{}}\n"
            + "\\\\[6pt]\n".join(blocks) + "\n\\end{tabular}}\n"
            "\\usebox{\\tablebox}\\par\\smallskip\n"
            "\\parbox{\\wd\\tablebox}{\\footnotesize " + legend + "}\n"
            "\\end{document}\n")


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                 ("#", r"\#")):
        s = s.replace(a, b)
    return s


def tidy(t: Table) -> pd.DataFrame:
    frame = t.frame.assign(setup=t.setup, metric=t.metric)
    return frame[TABLE_CSV_COLUMNS].sort_values(["dataset", "noise_id", "row"])


def to_csv(t: Table) -> str:
    return tidy(t).to_csv(index=False, float_format="%.4f")
