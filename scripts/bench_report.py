"""Time `noisykd report` on a generated results tree of about 20,000 runs.

The tree has the real layout and metrics.json schema (tests/simulate.py writes it): 10
datasets x 25 noise ids = 250 (dataset, noise) cells, 5 seeds, ce plus kd, fixed_alpha at two
alphas, almkd and amal in each of the setups single, multi and self: 250 x 5 x (1 + 3 x 5)
= 20,000 runs, with a plan. Reports the wall time of the whole command (a fresh process,
imports included) with and without figures, and the phases in-process.

    python scripts/bench_report.py [--root /tmp/bench-report] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETUPS = ("single-mlp_8", "multi-2t-0a1b2c3d", "self")
METHODS = (("kd", "kd", None), ("fixed_alpha", "fixed_alpha-a0.30", 0.3),
           ("fixed_alpha", "fixed_alpha-a0.70", 0.7), ("almkd", "almkd", None),
           ("amal", "amal", None))
NOISES = tuple(f"{k}_0.{r:02d}" for k in ("symmetric", "pairflip", "asymmetric")
               for r in range(5, 45, 5))[:24] + ("symmetric-incl_0.40",)


def build(results: Path) -> int:
    from tests.simulate import metrics_json, run_row

    rng = np.random.default_rng(0)
    paths = []
    for d in range(10):
        for noise in NOISES:
            for seed in range(5):
                shift = rng.normal(0, 2)
                rows = [run_row(f"data{d}", noise, "none", "ce", "ce", None, seed,
                                (70 + shift + rng.normal()) / 100, 0.7)]
                for setup in SETUPS:
                    for method, mid, alpha in METHODS:
                        rows.append(run_row(f"data{d}", noise, setup, method, mid, alpha, seed,
                                            (70 + shift + rng.normal()) / 100,
                                            0.7 + rng.normal(0, 0.01)))
                for r in rows:
                    out = results / Path(r["path"]).relative_to("results")
                    out.mkdir(parents=True, exist_ok=True)
                    m = metrics_json(r)
                    if r["setup_id"].startswith("multi"):
                        m["spec"]["teachers"] *= 2
                    (out / "metrics.json").write_text(json.dumps(m))
                    paths.append(r["path"])
    (results / "expected_runs.json").write_text(json.dumps(
        {"runs": sorted(paths), "comparisons": {"alm": ["almkd", "amal"],
                                                "baselines": ["kd", "fixed_alpha", "ce"]}}))
    return len(paths)


def timed_command(results: Path, *flags: str) -> float:
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "benchmark", "report", "--results",
                          str(results), *flags], capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(res.stderr)
    return time.perf_counter() - t


def phases(results: Path) -> dict:
    from benchmark.analysis import completeness
    from benchmark.analysis.collect import collect_runs
    from benchmark.analysis.report import analyse

    out = {}
    t = time.perf_counter()
    runs = collect_runs(results)
    out["collect (read 20,000 metrics.json)"] = time.perf_counter() - t
    t = time.perf_counter()
    comp = completeness.check(results, runs)
    out["completeness"] = time.perf_counter() - t
    t = time.perf_counter()
    analyse(comp.included, comp.plan.alm, comp.plan.baselines)
    out["statistics (scores, comparisons, verdicts, ranks)"] = time.perf_counter() - t
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/bench-report"))
    ap.add_argument("--keep", action="store_true", help="keep the generated tree")
    args = ap.parse_args(argv)
    results = args.root / "results"
    shutil.rmtree(args.root, ignore_errors=True)
    t = time.perf_counter()
    n = build(results)
    print(f"generated {n} runs in {time.perf_counter() - t:.1f} s under {results}")
    rows = [("noisykd report --no-figures (fresh process)", timed_command(results, "--no-figures")),
            ("noisykd report (fresh process, figures too)", timed_command(results))]
    rows += list(phases(results).items())
    print("\n| what | seconds |\n|---|---|")
    for name, s in rows:
        print(f"| {name} | {s:.1f} |")
    if not args.keep:
        shutil.rmtree(args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
