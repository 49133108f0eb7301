"""Calibration and power of the report's markers, verdicts (both scopes) and moderators on
simulated results with known truths.

Trees come from tests/simulate.py (20 dataset x noise cells, 5 seeds, ce, kd, fixed_alpha
at two alphas, almkd, amal; accuracy = seed effect + true method mean + run noise) and go
through the report's own functions (scores -> per-cell comparisons -> scoped verdicts),
primary metric. Scenarios:

- null: every method equal, run sd 0.5 / 1.0 / 1.5 points: how often a table shows any
  marker, and how often any verdict is better / worse, per scope (family-wise rates);
- almkd truly +eff points in every cell (0.1 .. 1.0) at run sd 1.0: the power of
  ``better`` against each baseline per scope (the power curve; figure);
- gain in half the cells, run sd 1.0: true cells marked, and the verdicts;
- 2 cells x 8 seeds, +3 points, run sd 1: better in these cells, not testable across tasks;
- moderators: an interaction of 0 or 3 points over 6 strata (teacher labels noisy vs
  clean, 5 seeds): the rate of better / worse per scope;
- the in-these-cells bootstrap interval's coverage of the true mean difference.

    python scripts/simulate_report.py --trees 300 --json sim.json \
        --figure docs/figures/verdict_power.png

Prints a Markdown summary (the README quotes it). Monte Carlo sign-flip tests use
``--permutations`` resamples (default 9999, a p floor of 2e-4 that Holm over the scenario's
6 comparisons never needs; the report uses 99999).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ALM, BASES = ("almkd", "amal"), ("kd", "fixed_alpha", "ce")


def one_tree(args) -> dict:
    from benchmark.analysis import moderators, scores, stats, verdicts
    from tests.simulate import simulate_runs

    scenario, seed, run_sd, effect, kind, permutations = args
    verdicts.N_PERMUTATIONS = permutations
    rng = np.random.default_rng([seed, int(run_sd * 100), int(effect * 100), len(kind)])
    if kind == "moderator":
        from tests.helpers import moderator_scores

        m = moderators.moderators({"best": moderator_scores(rng, effect)}, ("almkd",),
                                  ("kd",), ("teacher_labels",))
        return {"scenario": scenario, "kind": kind,
                **{f"{s}_better": bool((m.loc[m["scope"] == s, "verdict"] == "better").all())
                   for s in verdicts.SCOPES},
                **{f"{s}_any": bool(m.loc[m["scope"] == s, "verdict"]
                                    .isin(["better", "worse"]).any())
                   for s in verdicts.SCOPES}}
    half = kind == "half"

    def gain(method, cell):
        if method != "almkd":
            return 0.0
        return effect if (not half or cell % 2 == 0) else 0.0

    if kind == "two_cells":
        runs = simulate_runs(rng, gain=gain, run_sd=run_sd, seeds=8, datasets=("d0",),
                             noises=("symmetric_0.10", "symmetric_0.20"))
    else:
        runs = simulate_runs(rng, gain=gain, run_sd=run_sd)
    sc = scores.common_seeds(scores.method_scores(runs, "best"))
    comp = stats.paired_comparisons(sc, ALM, BASES)
    v = verdicts.finalise(verdicts.setup_verdicts(sc, "single", "best", ALM, BASES))
    truth = effect / 2 if half else effect
    out = {"scenario": scenario, "kind": kind,
           "any_marker": bool((comp["marker"] != "").any())}
    for s in verdicts.SCOPES:
        sub = v[v["scope"] == s]
        alm = sub[sub["alm"] == "almkd"].set_index("baseline")
        out[f"{s}_any"] = bool(sub["verdict"].isin(["better", "worse"]).any())
        out[f"{s}_better"] = {b: alm.loc[b, "verdict"] == "better" for b in BASES}
        out[f"{s}_not_testable"] = bool((sub["verdict"] == "not testable").all())
        out[f"{s}_covered"] = bool(alm.loc["kd", "ci_low"] <= truth <= alm.loc["kd", "ci_high"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--permutations", type=int, default=9999)
    ap.add_argument("--figure", type=Path, help="the power curve (PNG)")
    args = ap.parse_args(argv)
    perm = args.permutations
    jobs = []
    for sd in (0.5, 1.0, 1.5):
        jobs += [(f"null sd {sd}", i, sd, 0.0, "all", perm) for i in range(args.trees)]
    jobs += [("half +1 sd 1.0", i, 1.0, 1.0, "half", perm) for i in range(args.trees)]
    effects = (0.1, 0.2, 0.3, 0.4, 0.6, 1.0)
    for eff in effects:
        jobs += [(f"all +{eff} sd 1.0", i, 1.0, eff, "all", perm) for i in range(args.trees)]
    jobs += [("2 cells x 8 seeds +3", i, 1.0, 3.0, "two_cells", perm) for i in range(args.trees)]
    for eff in (0.0, 3.0):
        jobs += [(f"moderator {eff:+g} over 6 strata", i, 1.0, eff, "moderator", perm)
                 for i in range(args.trees)]
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as ex:
        results = list(ex.map(one_tree, jobs, chunksize=10))
    by: dict[str, list] = {}
    for r in results:
        by.setdefault(r["scenario"], []).append(r)
    summary = {}
    lines = [f"Simulated trees per scenario: {args.trees} ({time.time() - t0:.0f} s on "
             f"{args.workers} workers)\n",
             "| scenario | any marker | any better/worse: in these cells / across tasks | "
             "almkd better than kd, fixed_alpha, ce: in these cells | across tasks | "
             "all not testable across | interval covers (kd, in these cells) |",
             "|---|---|---|---|---|---|---|"]
    for name, rs in by.items():
        if rs[0]["kind"] == "moderator":
            s = {sc: {"any": float(np.mean([r[f"{sc}_any"] for r in rs])),
                      "better": float(np.mean([r[f"{sc}_better"] for r in rs]))}
                 for sc in ("in_these_cells", "across_tasks")}
            summary[name] = s
            lines.append(f"| {name} | | {s['in_these_cells']['any']:.1%} / "
                         f"{s['across_tasks']['any']:.1%} | {s['in_these_cells']['better']:.1%} "
                         f"| {s['across_tasks']['better']:.1%} | | |")
            continue
        s = {"any_marker": float(np.mean([r["any_marker"] for r in rs]))}
        for sc in ("in_these_cells", "across_tasks"):
            s[sc] = {"any": float(np.mean([r[f"{sc}_any"] for r in rs])),
                     "better": {b: float(np.mean([r[f"{sc}_better"][b] for r in rs]))
                                for b in BASES},
                     "not_testable": float(np.mean([r[f"{sc}_not_testable"] for r in rs])),
                     "covered": float(np.mean([r[f"{sc}_covered"] for r in rs]))}
        summary[name] = s
        i, a = s["in_these_cells"], s["across_tasks"]
        lines.append(
            f"| {name} | {s['any_marker']:.1%} | {i['any']:.1%} / {a['any']:.1%} | "
            + " / ".join(f"{i['better'][b]:.0%}" for b in BASES) + " | "
            + " / ".join(f"{a['better'][b]:.0%}" for b in BASES)
            + f" | {a['not_testable']:.0%} | {i['covered']:.1%} |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=float))
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        for sc, style in (("in_these_cells", "-o"), ("across_tasks", "--s")):
            ax.plot(effects, [summary[f"all +{e} sd 1.0"][sc]["better"]["kd"] for e in effects],
                    style, label=sc)
        ax.axhline(0.8, color="grey", lw=0.8)
        ax.set_xlabel("true gain of almkd over kd in every cell (points)")
        ax.set_ylabel("P(better)")
        ax.set_title(f"20 cells x 5 seeds, run sd 1, {args.trees} trees", fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
