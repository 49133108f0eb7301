"""Time one reference cell with the teachers' work shared and not, side by side (issue 28).

The cell: Fashion-MNIST, symmetric 40%, the single-teacher setup with teachers trained on
the noisy labels, every method of the reference study (workflows/config/reference.yaml),
seeds 0 and 1 (``--seeds``). Labels and teachers are made once (Snakemake, the study
``bench_off``) and copied into ``bench_on``; then each student job of the plan runs as the
workflow runs it (``python -m benchmark train-runs --threads 1``, its specs on stdin, a new
process: its start counts), once with ``--no-share-teacher-work`` and once with the
default, alternating which goes first. Reports the wall time of each job and of the cell in
both modes, the parts of a run's time from its metrics (training epochs with refreshes,
evaluation and the rest, process start), and ``noisykd compare`` of the two studies with
``--fail-on moved`` (every matched run's numbers bit-identical).

    python scripts/bench_teacher_work.py --json bench.json   # in an empty folder: ~10 min
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.core.layout import METRICS  # noqa: E402
from benchmark.plan import grid  # noqa: E402


def cell_config(study: str, seeds: list[int], share: bool) -> dict:
    ref = yaml.safe_load((REPO / "workflows/config/reference.yaml").read_text())
    fm = copy.deepcopy(next(d for d in ref["datasets"] if d["name"] == "fashion_mnist"))
    fm.update(noise=[{"type": "symmetric", "rates": [0.4]}], setups=["single"],
              teacher_labels="noisy")
    return {**{k: v for k, v in ref.items() if k not in ("datasets", "study", "seeds")},
            "study": study, "seeds": seeds, "datasets": [fm],
            "runtime": {**ref.get("runtime", {}), "share_teacher_work": share}}


def train_job(job, share: bool) -> float:
    payload = json.loads(shlex.split(job.command_args(None, None))[0])
    flag = "--share-teacher-work" if share else "--no-share-teacher-work"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "benchmark", "train-runs", "--threads", "1",
                    "--runs-file", "-", flag], input=json.dumps(payload), text=True,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "OMP_NUM_THREADS": "1",
                        "MKL_NUM_THREADS": "1"})
    return time.perf_counter() - t0


def parts(runs) -> dict:
    """Seconds summed over the runs: training epochs (with refreshes), the rest of the
    run inside its process (data, teachers, evaluation, files)."""
    train = wall = 0.0
    for r in runs:
        m = json.loads(Path(r.out, METRICS).read_text())
        train += m["train_time_s"]
        wall += m["wall_time_s"]
    return {"train_epochs_s": round(train, 2), "evaluation_and_rest_s": round(wall - train, 2)}


def per_method(runs) -> dict:
    out: dict = {}
    for r in runs:
        m = json.loads(Path(r.out, METRICS).read_text())
        out.setdefault(Path(r.out).parts[-2], []).append(m["train_time_s"])
    return {k: round(sum(v) / len(v), 3) for k, v in sorted(out.items())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    plans = {}
    for share in (False, True):
        cfg = cell_config(f"bench_{'on' if share else 'off'}", args.seeds, share)
        Path(f"{cfg['study']}.yaml").write_text(yaml.safe_dump(cfg))
        plans[share] = grid.plan(cfg)
    off, on = plans[False], plans[True]
    targets = [o for j in off.teacher_jobs for o in j.outputs]
    # the targets first: --configfile takes every word after it
    subprocess.run(["snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2", *targets,
                    "--configfile", "bench_off.yaml"], check=True, stdout=subprocess.DEVNULL)
    for folder in ("labels", "teachers", "data"):
        if Path(off.root, folder).exists():
            shutil.copytree(Path(off.root, folder), Path(on.root, folder), dirs_exist_ok=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, benchmark.training.engine"], check=True)
    start_s = time.perf_counter() - t0
    jobs = []
    for i, (j_off, j_on) in enumerate(zip(off.student_jobs, on.student_jobs, strict=True)):
        order = (False, True) if i % 2 == 0 else (True, False)
        times = {}
        for share in order:
            times[share] = train_job(j_on if share else j_off, share)
        jobs.append({"job": j_off.name, "runs": len(j_off.runs),
                     "off_s": round(times[False], 2), "on_s": round(times[True], 2)})
        print(jobs[-1], flush=True)
    total_off, total_on = sum(j["off_s"] for j in jobs), sum(j["on_s"] for j in jobs)
    cmp = subprocess.run(["noisykd", "compare", off.root, on.root, "--fail-on", "moved",
                          "--out", "compare"], text=True, capture_output=True)
    result = {
        "cell": "fashion_mnist symmetric_0.40 single (noisy-label teacher)",
        "seeds": args.seeds, "jobs": jobs, "cell_off_s": round(total_off, 2),
        "cell_on_s": round(total_on, 2), "ratio_on_off": round(total_on / total_off, 3),
        "process_start_s": round(start_s, 2),
        "parts_off": parts(off.student_runs), "parts_on": parts(on.student_runs),
        "train_s_per_run_off": per_method(off.student_runs),
        "train_s_per_run_on": per_method(on.student_runs),
        "compare_rc": cmp.returncode,
        "bit_identity": next((line for line in Path("compare/compare.md").read_text()
                              .splitlines() if line.startswith("Bit-identity")), None)
        if Path("compare/compare.md").exists() else None,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
