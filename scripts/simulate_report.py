"""Calibration and power of the report's markers and verdicts on simulated results.

Trees come from tests/simulate.py (20 dataset x noise cells, 5 seeds, ce, kd, fixed_alpha
at two alphas, almkd, amal; accuracy = seed effect + true method mean + run noise) and go
through the report's own functions (scores -> per-cell comparisons -> verdicts), primary
metric. Scenarios:

- null: every method equal, run sd 0.5 / 1.0 / 1.5 points: how often a table shows any
  marker (family-wise) and any comparison is marked, how often any verdict is not
  'no difference' and how often one verdict is;
- gain everywhere: almkd truly 1 point better in every cell at run sd 1.0: the verdict's
  power against each baseline;
- gain in half the cells (the issue's marker scenario), run sd 0.5 / 1.0 / 1.5: how many
  truly better cells get a + against kd, and the verdict's power;
- effect sizes 0.1 .. 0.6 points everywhere at sd 1.0: the verdict's power curve, hence its
  minimum detectable effect (80% power) for 5 seeds and 20 cells;
- the bootstrap interval's coverage of the true mean difference.

    python scripts/simulate_report.py --trees 300 --json sim.json

Prints a Markdown summary (the README quotes it). Two worker processes by default.
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
    from benchmark import scores, stats, verdicts
    from tests.simulate import simulate_runs

    scenario, seed, run_sd, effect, half = args
    rng = np.random.default_rng([seed, int(run_sd * 100), int(effect * 100), half])

    def gain(method, cell):
        if method != "almkd":
            return 0.0
        return effect if (not half or cell % 2 == 0) else 0.0

    runs = simulate_runs(rng, gain=gain, run_sd=run_sd)
    sc = scores.common_seeds(scores.method_scores(runs, "best"))
    comp = stats.paired_comparisons(sc, ALM, BASES)
    v = verdicts.finalise(verdicts.setup_verdicts(sc, "single", "best", ALM, BASES))
    alm = v[v["alm"] == "almkd"].set_index("baseline")
    truth = effect / 2 if half else effect
    kd = comp[(comp["alm"] == "almkd") & (comp["baseline"] == "kd")]
    better_cells = kd["dataset"].str[1:].astype(int) * 5 + kd["noise_id"].str[-2].astype(int) - 1
    return {
        "scenario": scenario,
        "any_marker": bool((comp["marker"] != "").any()),
        "marked_share": float((comp["marker"] != "").mean()),
        "any_verdict": bool((v["verdict"] != "no difference").any()),
        "verdict_share": float((v["verdict"] != "no difference").mean()),
        "better": {b: alm.loc[b, "verdict"] == "better" for b in BASES},
        "covered": {b: bool(alm.loc[b, "ci_low"] <= truth <= alm.loc[b, "ci_high"])
                    for b in BASES},
        "plus_true_cells": float(((kd["marker"] == "+") & (better_cells.to_numpy() % 2 == 0)
                                  ).sum() / max(1, (better_cells.to_numpy() % 2 == 0).sum())),
        "mde": stats.minimum_detectable(comp),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    jobs = []
    for sd in (0.5, 1.0, 1.5):
        jobs += [(f"null sd {sd}", i, sd, 0.0, 0) for i in range(args.trees)]
        jobs += [(f"half +1 sd {sd}", i, sd, 1.0, 1) for i in range(args.trees)]
    for eff in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 1.0):
        jobs += [(f"all +{eff} sd 1.0", i, 1.0, eff, 0) for i in range(args.trees)]
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as ex:
        results = list(ex.map(one_tree, jobs, chunksize=20))
    by: dict[str, list] = {}
    for r in results:
        by.setdefault(r["scenario"], []).append(r)
    summary = {}
    lines = [f"Simulated trees per scenario: {args.trees} (20 cells, 5 seeds; "
             f"{time.time() - t0:.0f} s on {args.workers} workers)\n",
             "| scenario | any marker in table | comparisons marked | any verdict | "
             "verdicts not 'no difference' | almkd better than kd / fixed_alpha / ce | "
             "true cells marked + vs kd | CI coverage (kd) | marker MDE Holm / unadj. |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, rs in by.items():
        s = {"any_marker": np.mean([r["any_marker"] for r in rs]),
             "marked_share": np.mean([r["marked_share"] for r in rs]),
             "any_verdict": np.mean([r["any_verdict"] for r in rs]),
             "verdict_share": np.mean([r["verdict_share"] for r in rs]),
             "better": {b: float(np.mean([r["better"][b] for r in rs])) for b in BASES},
             "coverage": {b: float(np.mean([r["covered"][b] for r in rs])) for b in BASES},
             "plus_true_cells": np.mean([r["plus_true_cells"] for r in rs]),
             "mde_holm": np.mean([r["mde"]["holm"] for r in rs]),
             "mde_unadjusted": np.mean([r["mde"]["unadjusted"] for r in rs])}
        summary[name] = s
        lines.append(
            f"| {name} | {s['any_marker']:.1%} | {s['marked_share']:.2%} | "
            f"{s['any_verdict']:.1%} | {s['verdict_share']:.2%} | "
            + " / ".join(f"{s['better'][b]:.1%}" for b in BASES)
            + f" | {s['plus_true_cells']:.1%} | {s['coverage']['kd']:.1%} | "
              f"{s['mde_holm']:.2f} / {s['mde_unadjusted']:.2f} |")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
