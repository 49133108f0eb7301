"""Paper tables: one per teacher setup, rows = methods, columns = dataset / noise.

Markdown, LaTeX (booktabs, a standalone document that compiles on its own) and CSV are
written from one frame. Cells are ``mean ± std`` over seeds in percent; the best mean of a
column is bold; ``+`` / ``-`` marks an ALM method significantly better / worse than the
best baseline of the column (paired t-test over seeds, Holm-corrected within the table);
context rows give the teachers' test accuracy and their agreement with the given labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from tabulate import tabulate

from .grid import METHOD_NAMES
from .stats import ALPHA, CELL, WILCOXON_MIN_N

ROW_ORDER = METHOD_NAMES  # rows in the order methods/hparams.py lists them
METRIC_NAMES = {"best": "test accuracy at the best clean-validation epoch",
                "last": "test accuracy at the last epoch"}


def _row_key(row: str):
    base = row.split("-")[0]
    return (ROW_ORDER.index(base) if base in ROW_ORDER else len(ROW_ORDER), row)


@dataclass
class Table:
    setup: str
    metric: str
    frame: pd.DataFrame  # tidy: dataset, noise_id, row, mean, std, n, alphas, marker, best
    columns: list[tuple[str, str]]
    rows: list[str]
    teachers: pd.DataFrame  # dataset, noise_id, teacher_acc, teacher_agreement
    n_max: int

    def legend(self) -> str:
        ns = sorted(set(self.frame["n"]))
        n_text = (f"n = {ns[0]} seeds in every cell" if len(ns) == 1 else
                  f"n = {', '.join(map(str, ns))} seeds (cells with fewer than {self.n_max} "
                  "show their n)")
        return (f"Setup {self.setup}. Metric: {METRIC_NAMES[self.metric]}, mean ± std over "
                f"seeds in percent; {n_text}. Bold: best mean in the column. +/-: an ALM "
                f"method is significantly better/worse than the column's best baseline "
                f"(paired t-test over seeds, Holm-corrected across all comparisons in this "
                f"table, alpha = {ALPHA}); ranks.md lists every comparison with its 95% "
                f"confidence interval, and Wilcoxon signed-rank p-values once n >= "
                f"{WILCOXON_MIN_N} (with fewer pairs it cannot reach 0.05). fixed_alpha: "
                "per seed, the alpha with the best clean-validation accuracy (chosen values "
                "in the 'chosen alpha' row). Teacher rows: test "
                "accuracy of the teachers students distil from and their agreement with the "
                "given (noisy) training labels, mean over seeds and teachers.")


def build_table(setup: str, metric: str, summary: pd.DataFrame, marks: dict,
                teachers: pd.DataFrame) -> Table:
    s = summary[summary["setup"] == setup].copy()
    s["marker"] = [marks.get((tuple(r[c] for c in CELL), r["row"]), "")
                   for _, r in s.iterrows()]
    s["best"] = s.groupby(["dataset", "noise_id"])["mean"].transform("max") == s["mean"]
    columns = sorted({(d, n) for d, n in zip(s["dataset"], s["noise_id"], strict=True)})
    rows = sorted(set(s["row"]), key=_row_key)
    return Table(setup, metric, s.drop(columns=["setup"]), columns, rows,
                 teachers, int(s["n"].max()) if len(s) else 0)


def _cell_text(r, n_max: int, bold, mark, esc) -> str:
    std = "" if math.isnan(r["std"]) else f" ± {100 * r['std']:.2f}"
    text = f"{100 * r['mean']:.2f}{std}"
    if r["n"] < n_max:
        text += f" (n={int(r['n'])})"
    text = esc(text)
    if r["best"]:
        text = bold(text)
    if r["marker"]:
        text += mark(r["marker"])
    return text


def _grid(t: Table, bold, mark, header_sep: str, esc=lambda x: x):
    """Header and body cells; ``esc`` is applied to plain text before bold and markers."""
    by = {(r["row"], r["dataset"], r["noise_id"]): r for _, r in t.frame.iterrows()}
    headers = ["method"] + [f"{esc(d)}{header_sep}{esc(n)}" for d, n in t.columns]
    body = []
    for row in t.rows:
        body.append([esc(row)] + [_cell_text(by[(row, d, n)], t.n_max, bold, mark, esc)
                                  if (row, d, n) in by else "" for d, n in t.columns])
        if row == "fixed_alpha":
            body.append(["chosen alpha"] + [esc(by[(row, d, n)]["alphas"])
                                            if (row, d, n) in by else "" for d, n in t.columns])
    tc = {(r.dataset, r.noise_id): r for r in t.teachers.itertuples()}
    for label, attr in (("teacher acc", "teacher_acc"), ("teacher agreement", "teacher_agreement")):
        if any(c in tc for c in t.columns):
            body.append([label] + [f"{100 * getattr(tc[c], attr):.2f}" if c in tc else ""
                                   for c in t.columns])
    return headers, body


def to_markdown(t: Table) -> str:
    headers, body = _grid(t, lambda x: f"**{x}**", lambda m: f" ({m})", " ")
    return (f"# {t.setup}: {METRIC_NAMES[t.metric]}\n\n"
            + tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
            + "\n\n" + t.legend() + "\n")


def to_latex(t: Table) -> str:
    """A standalone booktabs document (tabulate's booktabs format escapes every backslash,
    so the few lines of tabular are written here)."""
    headers, body = _grid(t, lambda x: r"\textbf{" + x + "}", lambda m: f"$^{{{m}}}$", "\n",
                          lambda x: _tex_escape(x).replace("±", r"$\pm$"))

    def cell(text: str) -> str:
        if "\n" in text:
            return r"\begin{tabular}[b]{@{}c@{}}" + text.replace("\n", r"\\") + r"\end{tabular}"
        return text

    lines = [r"\begin{tabular}{l" + "c" * (len(headers) - 1) + "}", r"\toprule",
             " & ".join(cell(h) for h in headers) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    legend = _tex_escape(t.legend()).replace("±", r"$\pm$").replace(">=", r"$\geq$")
    return ("\\documentclass[varwidth=\\maxdimen,border=4pt]{standalone}\n"
            "\\usepackage{booktabs}\n\\newsavebox{\\tablebox}\n\\begin{document}\n"
            "\\sbox{\\tablebox}{" + "\n".join(lines) + "}\n"
            "\\usebox{\\tablebox}\\par\\smallskip\n"
            "\\parbox{\\wd\\tablebox}{\\footnotesize " + legend + "}\n"
            "\\end{document}\n")


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                 ("#", r"\#")):
        s = s.replace(a, b)
    return s


def to_csv(t: Table) -> str:
    cols = ["dataset", "noise_id", "row", "mean", "std", "n", "alphas", "marker", "best"]
    frame = t.frame[cols].sort_values(["dataset", "noise_id", "row"])
    return frame.to_csv(index=False)
