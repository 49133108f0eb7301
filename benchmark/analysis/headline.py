"""The headline table (``tables/headline.md``): each ALM method against each baseline, per
setup kind, in these cells, with the teacher-labels moderator beside.

Nothing is computed here: the table is a view of the verdicts (verdicts.py) and the
moderators (moderators.py) of the primary metric, both already corrected in their own
families, so a label here is the label there. One table per ALM row; rows are the baselines
in the study's order, columns the setup kinds (``-cleanT``: teachers trained on the clean
labels) and, when the study contrasts the two teacher conditions, the moderator "teacher
labels, noisy - clean" (how much more the ALM row gains over the baseline with teachers
trained on the noisy labels than with teachers trained on the clean ones). A line per ALM
row says what the across-tasks scope could say.
"""

from __future__ import annotations

import math

import pandas as pd

from benchmark.spec.vocabulary import NOT_TESTABLE

PRIMARY = "best"
SCOPE = "in_these_cells"
MODERATOR = "teacher_labels"
MODERATOR_COLUMN = "teacher labels: noisy - clean"


def _cell(r) -> str:
    """'+3.83 [3.44, 4.34] better'; a row that cannot be tested says what it would need."""
    if r is None:
        return ""
    est = f"{r.mean_diff:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
    if r.verdict == NOT_TESTABLE:
        need = (f"{int(r.seeds_needed)} seeds per cell"
                if "seeds_needed" in r._fields and r.seeds_needed == r.seeds_needed
                else f"{int(r.cells_needed)} cells" if r.cells_needed == r.cells_needed
                else "")
        return f"{est} not testable" + (f" (needs {need})" if need else "")
    return f"{est} {r.verdict}"


def _setup_order(setups) -> list[str]:
    kinds = ("single", "multi", "self")
    return sorted(set(setups), key=lambda s: (kinds.index(s.removesuffix("-cleanT"))
                                              if s.removesuffix("-cleanT") in kinds else 9, s))


def _across_line(v: pd.DataFrame) -> str:
    if v.empty:
        return "Across tasks (cells as units): no comparison."
    counts = v["verdict"].value_counts()
    parts = [f"{n} {lab}" for lab, n in counts.items()]
    need = v.loc[v["verdict"] == NOT_TESTABLE, "cells_needed"].dropna()
    cells = sorted({int(c) for c in v["n_cells"]})
    tail = ""
    if len(need):
        tail = (f"; a test over cells would need {int(need.max())} cells with this family, "
                f"the setups have {', '.join(map(str, cells))}")
    return f"Across tasks (cells as units): {', '.join(parts)}{tail}."


def headline(verdicts: pd.DataFrame, moderators: pd.DataFrame, alm: tuple,
             baselines: tuple) -> dict[str, pd.DataFrame]:
    """ALM row -> table (index: baseline rows; columns: setups, then the moderator)."""
    v = verdicts[(verdicts["metric"] == PRIMARY) & (verdicts["scope"] == SCOPE)]
    m = moderators[(moderators["metric"] == PRIMARY) & (moderators["scope"] == SCOPE)
                   & (moderators["factor"] == MODERATOR) & (moderators["level"] == "noisy")
                   & (moderators["reference"] == "clean")] if len(moderators) else moderators
    setups = _setup_order(v["setup"])
    out = {}
    for a in _rows(v["alm"], alm):
        va = v[v["alm"] == a]
        rows = {}
        for b in _rows(va["baseline"], baselines):
            row = {}
            for s in setups:
                hit = va[(va["baseline"] == b) & (va["setup"] == s)]
                row[s] = _cell(next(hit.itertuples(), None)) if len(hit) else ""
            if len(m):
                hit = m[(m["alm"] == a) & (m["baseline"] == b)]
                row[MODERATOR_COLUMN] = _cell(next(hit.itertuples(), None)) if len(hit) else ""
            rows[b] = row
        table = pd.DataFrame.from_dict(rows, orient="index")
        out[a] = table.loc[:, [c for c in table.columns if (table[c] != "").any()]]
    return out


def _rows(present, declared: tuple) -> list[str]:
    """The rows present, declared methods' rows first in declared order (a variant row,
    e.g. 'almkd (meta_every=5)', sorts with its method)."""
    from benchmark.analysis.scores import base_method

    order = {name: i for i, name in enumerate(declared)}
    return sorted(set(present), key=lambda r: (order.get(base_method(r), math.inf), r))


LEGEND = (
    "Each ALM method against each baseline in **these cells** (seeds are the replicates, the "
    "setup's (dataset, noise) cells its strata; test accuracy at the epoch chosen on the "
    "selection split): ALM - baseline in points, its 95% stratified bootstrap interval, and "
    "the verdict of tables/verdicts.md (Holm over the study's in-these-cells comparisons; "
    "equivalent: TOST at +-{margin:g} points). Setup kinds: teachers trained on the noisy "
    "labels, or on the clean ones (-cleanT). \"{moderator}\": the difference of those "
    "differences between the two teacher conditions, per (dataset, noise, setup) stratum "
    "(tables/moderators.md, a family of its own): better means the ALM method gains more "
    "over the baseline when the teacher saw the noisy labels (a baseline that takes no "
    "teacher, such as ce, is the same runs in both conditions: its entry is the ALM method's "
    "own change between them). These verdicts are about these "
    "cells and seeds; whether they hold on other tasks is the across-tasks scope, stated below "
    "each table.")


def markdown(verdicts: pd.DataFrame, moderators: pd.DataFrame, alm: tuple, baselines: tuple,
             margin: float) -> str:
    from tabulate import tabulate

    tables = headline(verdicts, moderators, alm, baselines)
    from benchmark.analysis.scores import for_rules

    md = [for_rules("# Headline: the ALM methods against the baselines\n\n"
                    + LEGEND.format(margin=margin, moderator=MODERATOR_COLUMN) + "\n", alm)]
    if not tables:
        return md[0] + "\nNo declared comparison has a cell with two common seeds.\n"
    across = verdicts[(verdicts["metric"] == PRIMARY) & (verdicts["scope"] == "across_tasks")]
    for a, t in tables.items():
        body = tabulate(t.rename_axis(f"{a} vs").reset_index(), headers="keys",
                        tablefmt="github", showindex=False, disable_numparse=True)
        md.append(f"\n## {a}\n\n{body}\n\n{_across_line(across[across['alm'] == a])}\n")
    return "".join(md)
