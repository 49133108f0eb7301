"""Mutation testing of methods/ with mutmut: every mutant of the refresh, the mixing rules,
the losses and the hypergradients should make a test fail.

    python scripts/mutation_test.py [--max-children 2] [--out mutation-report.md] [PATTERN]

Runs ``mutmut run`` with the settings in pyproject.toml ([tool.mutmut]: the methods' unit
tests, the independent refresh reference and the protocol wiring; tests marked slow are
left out), then writes a report: the score (killed / (killed + survived + timeouts)), and
every surviving mutant with its diff, for the closing note. PATTERN (e.g.
``"methods.mixing*"``) limits the run to some mutants. mutmut keeps its state in
``mutants/`` (git-ignored), so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# mutmut forks a process that has imported torch for every mutant; a child of a process
# whose OpenMP pool is running can deadlock (seen here: every mutant of a function timing
# out), so torch runs single-threaded, and the mutants run side by side instead
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "OPENBLAS_NUM_THREADS": "1"}


def mutmut(*args: str, check: bool = True) -> str:
    out = subprocess.run([sys.executable, "-m", "mutmut", *args], cwd=ROOT, text=True,
                         capture_output=True, env=ENV)
    if check and out.returncode not in (0, 1):
        sys.exit(f"mutmut {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return out.stdout


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pattern", nargs="*", help="mutant names or globs (default: all)")
    ap.add_argument("--max-children", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "mutation-report.md")
    ap.add_argument("--report-only", action="store_true", help="skip the run, report only")
    args = ap.parse_args(argv)
    if not args.report_only:
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children",
                        str(args.max_children), *args.pattern], cwd=ROOT, check=False,
                       env=ENV)
    mutmut("export-cicd-stats")
    stats = json.loads((ROOT / "mutants" / "mutmut-cicd-stats.json").read_text())
    judged = stats["killed"] + stats["survived"] + stats.get("timeout", 0)
    score = stats["killed"] / judged if judged else float("nan")
    results = mutmut("results", "--all", "true")
    survivors = [line.split(":")[0].strip() for line in results.splitlines()
                 if line.strip().endswith(": survived")]
    lines = ["# Mutation testing of methods/ (mutmut)\n",
             f"score {score:.1%}: {stats['killed']} killed, {stats['survived']} survived, "
             f"{stats.get('timeout', 0)} timeouts, {stats.get('no_tests', 0)} not covered by "
             f"the selected tests, {stats.get('skipped', 0)} skipped, of {stats['total']}\n",
             "## Survivors\n"]
    for name in survivors:
        lines += [f"### {name}\n", "```diff", mutmut("show", name, check=False).strip(), "```\n"]
    args.out.write_text("\n".join(lines) + "\n")
    print(lines[1].strip())
    print(f"{len(survivors)} survivors; report: {args.out}")


if __name__ == "__main__":
    main()
