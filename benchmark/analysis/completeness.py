"""Which runs the tables may use, and what is wrong with the rest.

An average is only an average of one experiment if its runs are the ones the plan asked
for, each once, and the methods it compares ran the same data, student, training, teachers
and code. Four kinds of problem, each listed in ``tables/completeness.md`` and named in one
line on stderr by ``noisykd report`` (``--strict`` makes any of them an error):

- missing: planned runs without ``metrics.json`` (failed, interrupted or never run);
- extra: finished runs the plan does not contain (an earlier plan's, another teacher's):
  excluded from every table and statistic;
- duplicate: two included runs for one (dataset, noise, setup kind, method id, seed), or for
  one method with the same resolved hyper-parameters under two method ids (one table row):
  always an error naming both folders, never averaged;
- mixed: a table cell whose runs differ in anything but each method's own hyper-parameters
  (data, noise, student, training, protocol, teachers) or in code revision, compared across
  all methods of the cell (``ce`` included): the cell is marked in the tables.

Runs from a working tree with uncommitted changes are listed too. A cell where committed
and uncommitted runs meet is mixed (their code differs); a cell whose runs all come from
uncommitted code at one commit is listed but not marked (no diff is recorded to compare).

The plan is ``<study>/expected_runs.json`` (written by the workflow): the run folders and
the comparisons it declares. Without it every finished run is taken as planned and the
comparisons are every ALM method against every baseline found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.analysis.scores import base_method, table_cells
from benchmark.core import layout
from benchmark.core.errors import UserError
from benchmark.core.layout import PLAN_FILE
from benchmark.spec.vocabulary import DEFAULT_FACTORS, FACTORS, MARGIN
from methods.catalog import BASELINE_ORDER, COMPARED_METHODS, METHOD_NAMES

CELL_KEYS = ["dataset", "noise_id", "setup"]


@dataclass
class Plan:
    runs: list[str] | None  # run folders relative to the results folder; None: no plan file
    alm: tuple[str, ...]  # ALM methods whose comparisons are declared
    baselines: tuple[str, ...]  # baselines they are compared with, in table order
    source: str
    margin: float = MARGIN  # the verdicts' equivalence margin (points)
    moderators: tuple[str, ...] = DEFAULT_FACTORS  # factors whose interaction is tested

    @staticmethod
    def declared(methods) -> tuple[tuple[str, ...], tuple[str, ...]]:
        methods = set(methods)
        alm = tuple(m for m in METHOD_NAMES if m in COMPARED_METHODS and m in methods)
        base = tuple(m for m in BASELINE_ORDER if m in methods)
        return alm, base


def plan_payload(run_dirs, methods, root: str, analysis: dict | None = None) -> dict:
    """What the workflow writes to ``<root>/expected_runs.json``: the runs (relative to the
    study folder ``root``) and the declared comparisons, equivalence margin and moderators
    (config key ``analysis``), fixed before any test number exists."""
    alm, base = Plan.declared(methods)
    analysis = analysis or {}
    runs = sorted(str(Path(r).relative_to(root)) for r in run_dirs)
    return {"runs": runs, "comparisons": {
        "alm": list(alm), "baselines": list(base),
        "margin": float(analysis.get("margin", MARGIN)),
        "moderators": list(analysis.get("moderators", DEFAULT_FACTORS))}}


def read_plan(results: Path, runs: pd.DataFrame) -> Plan:
    listing = Path(results) / PLAN_FILE
    if not listing.is_file():
        alm, base = Plan.declared(runs["method"])
        return Plan(None, alm, base, f"none ({PLAN_FILE} does not exist): the tables use "
                                     "every finished run found")
    try:
        data = json.loads(listing.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{listing}: unreadable plan ({exc})") from None
    if isinstance(data, list):  # the plan of earlier versions: runs only
        data = {"runs": data}
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise UserError(f"{listing}: expected a list of run folders under key 'runs'")
    rel = []
    for entry in data["runs"]:  # relative to the study folder; earlier plans: results/runs/...
        parts = Path(entry).parts
        rel.append(str(Path(*parts[1:])) if parts and parts[0] == "results" else str(entry))
    comp = data.get("comparisons")
    if comp is None:
        methods = {base_method(Path(r).parts[4]) for r in rel if len(Path(r).parts) > 4}
        alm, base = Plan.declared(methods)
    else:
        for key in ("alm", "baselines"):
            unknown = [m for m in comp.get(key, []) if m not in METHOD_NAMES]
            if unknown:
                raise UserError(f"{listing}: comparisons.{key}: unknown method {unknown[0]!r}")
        alm, base = tuple(comp.get("alm", [])), tuple(comp.get("baselines", []))
    comp = comp or {}
    margin = comp.get("margin", MARGIN)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin > 0 \
            or margin == float("inf"):
        raise UserError(f"{listing}: comparisons.margin {margin!r}: expected a positive number "
                        "of points")
    factors = comp.get("moderators", list(DEFAULT_FACTORS))
    if not isinstance(factors, list) or any(f not in FACTORS for f in factors):
        bad = factors if not isinstance(factors, list) else next(
            f for f in factors if f not in FACTORS)
        raise UserError(f"{listing}: comparisons.moderators: unknown factor {bad!r} (known: "
                        f"{', '.join(FACTORS)})")
    return Plan(rel, alm, base, f"{PLAN_FILE} (the workflow's plan)", float(margin),
                tuple(factors))


@dataclass
class Completeness:
    plan: Plan
    included: pd.DataFrame  # the runs every table and statistic uses
    missing: pd.DataFrame  # dataset, noise_id, setup_id, method_id, seed, status
    extra: pd.DataFrame  # dataset, noise_id, setup_id, method_id, seed, path
    mixed: pd.DataFrame  # dataset, noise_id, setup, reasons
    uncommitted: pd.DataFrame  # dataset, noise_id, setup, runs
    duplicates: list[tuple[str, str]] = field(default_factory=list)

    def mixed_cells(self) -> set[tuple[str, str, str]]:
        return {(r.dataset, r.noise_id, r.setup) for r in self.mixed.itertuples()}

    def problems(self) -> list[str]:
        """One line per kind of problem found (empty when there is none)."""
        out = []
        if len(self.missing):
            out.append(f"missing: {len(self.missing)} planned runs have no metrics.json "
                       "(failed, interrupted or not run)")
        if len(self.extra):
            out.append(f"extra: {len(self.extra)} finished runs are not in the plan and were "
                       "left out of every table")
        if self.duplicates:
            a, b = self.duplicates[0]
            out.append(f"duplicate: {len(self.duplicates)} (cell, method, seed) have two runs, "
                       f"e.g. {a} and {b}")
        if len(self.mixed):
            out.append(f"mixed: {len(self.mixed)} table cells mix specs or code revisions "
                       "across their methods (marked with a dagger in the tables)")
        return out


def _rel_parts(path: str, results: Path) -> tuple[str, ...]:
    return Path(path).relative_to(results).parts


def check(results: Path, runs: pd.DataFrame) -> Completeness:
    results = Path(results)
    plan = read_plan(results, runs)
    prefix = str(results) + "/"
    rel = [p[len(prefix):] if p.startswith(prefix) else str(Path(*_rel_parts(p, results)))
           for p in runs["path"]]
    runs = runs.assign(rel=rel)
    if plan.runs is None:
        # every (dataset, noise, setup, method) seen times every seed seen for its
        # (dataset, noise): what a grid over the runs found would have planned
        seeds = runs.groupby(["dataset", "noise_id"])["seed"].agg(lambda s: sorted(set(s)))
        cells = runs[["dataset", "noise_id", "setup_id", "method_id"]].drop_duplicates()
        planned = set(rel) | {layout.run_dir(c.dataset, c.noise_id, c.setup_id, c.method_id, s,
                                             root=None)
                              for c in cells.itertuples() for s in seeds[(c.dataset, c.noise_id)]}
    else:
        planned = set(plan.runs)
    in_plan = runs["rel"].isin(planned)
    extra = runs.loc[~in_plan, ["dataset", "noise_id", "setup_id", "method_id", "seed", "path"]]
    included = runs[in_plan].drop(columns="rel")

    rows = []
    for r in sorted(planned - set(rel)):
        p = Path(r)
        parts = p.parts
        if layout.run_parts(p) is None:
            raise UserError(f"{results / PLAN_FILE}: {r!r} is not a run folder "
                            "(runs/<dataset>/<noise>/<setup>/<method>/seed<N>)")
        status = ("failed or interrupted" if (results / p / layout.LOG_CSV).exists()
                  else "not run")
        rows.append({"dataset": parts[1], "noise_id": parts[2], "setup_id": parts[3],
                     "method_id": parts[4], "seed": parts[5], "status": status})
    missing = pd.DataFrame(rows, columns=["dataset", "noise_id", "setup_id", "method_id", "seed",
                                          "status"])

    # one method with one set of resolved hyper-parameters (collect.py) is one table row
    # (scores.py), also under two method ids (one spelling the defaults out, one not)
    key = ["dataset", "noise_id", "setup"] + (["method", "hparams"] if "hparams" in included
                                              else ["method_id"]) + ["seed"]
    dup = included[included.duplicated(key, keep=False)].sort_values(key + ["path"])
    duplicates = [tuple(g["path"].iloc[:2]) for _, g in dup.groupby(key)]
    mixed, uncommitted = _mixed(included)
    return Completeness(plan, included, missing, extra, mixed, uncommitted, duplicates)


def _table_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of every table cell (dataset, noise, setup kind): ``ce``'s (setup none) are
    repeated into each setup of their (dataset, noise), as the tables' scores do."""
    return table_cells(runs)


def _mixed(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    cells = _table_cells(runs)
    if cells.empty:
        return (pd.DataFrame(columns=CELL_KEYS + ["reasons"]),
                pd.DataFrame(columns=CELL_KEYS + ["runs"]))
    cells = cells.assign(
        teacher_spec=cells["teacher_spec"].replace("", None),
        code=cells["git_commit"].astype(str) + "|" + cells["git_dirty"].astype(str),
        dirty=cells["git_dirty"].fillna(False).astype(bool))
    g = cells.groupby(CELL_KEYS)
    per = pd.DataFrame({
        "shared": g["shared_spec"].nunique(), "teachers": g["teacher_spec"].nunique(),
        "commits": g["git_commit"].nunique(dropna=False), "code": g["code"].nunique(),
        "dirty": g["dirty"].sum()})
    seeds = cells.groupby(CELL_KEYS + ["method_id"])["cell_spec"].nunique()
    seeds = seeds[seeds > 1].reset_index().groupby(CELL_KEYS)["method_id"].agg(", ".join)
    per = per.join(seeds.rename("seed_methods"))
    mixed = []
    for cell, r in per.iterrows():
        reasons = []
        if r["shared"] > 1:
            reasons.append("data, noise, student or training spec differ across methods")
        if r["teachers"] > 1:
            reasons.append("teachers differ across methods")
        if isinstance(r["seed_methods"], str):
            reasons.append("spec differs across seeds of " + r["seed_methods"])
        if r["commits"] > 1 or r["code"] > 1:
            reasons.append(f"{r['commits']} code revisions"
                           + (" (committed and uncommitted)" if r["code"] > r["commits"] else ""))
        if reasons:
            mixed.append(dict(zip(CELL_KEYS, cell, strict=True)) | {"reasons": "; ".join(reasons)})
    dirty = per[per["dirty"] > 0]["dirty"].astype(int).rename("runs").reset_index()
    return pd.DataFrame(mixed, columns=CELL_KEYS + ["reasons"]), dirty[CELL_KEYS + ["runs"]]


def raise_on_duplicates(comp: Completeness) -> None:
    if comp.duplicates:
        pairs = "; ".join(f"{a} and {b}" for a, b in comp.duplicates[:5])
        more = f" (and {len(comp.duplicates) - 5} more)" if len(comp.duplicates) > 5 else ""
        raise UserError(f"two finished runs for one (dataset, noise, setup, method, seed): "
                        f"{pairs}{more}; remove one of each pair (or move it out of "
                        "results/runs) so no seed is counted twice")


def markdown(comp: Completeness, n_found: int, table) -> str:
    """completeness.md; ``table`` renders a frame as Markdown."""
    return (f"# Completeness\n\nPlan: {comp.plan.source}. Finished runs found: {n_found}; "
            f"used by the tables: {len(comp.included)}.\n\n"
            "## Missing or failed runs\n\n"
            + (table(comp.missing, "None: every planned run finished.")
               if comp.plan.runs is not None else
               f"Not known: there is no plan ({PLAN_FILE}), so no run can be missing. The "
               "workflow writes it (rule expected_runs) before any run trains.\n")
            + "\n## Extra runs (finished, not in the plan: left out of every table)\n\n"
            + table(comp.extra, "None.")
            + "\n## Cells whose methods mix specs or code revisions (marked † in the tables)"
              "\n\n" + table(comp.mixed, "None.")
            + "\n## Cells with runs from uncommitted code (cannot be checked; not marked)\n\n"
            + table(comp.uncommitted, "None."))
