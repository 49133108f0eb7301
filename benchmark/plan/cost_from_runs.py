"""`noisykd perf --estimate CONFIG --measured results/<study>`: a grid's wall time on this
machine, priced from the runs of an earlier, smaller study made on it (a slice: one cell with
every method, say). Torch-free.

``cost_model.estimate`` prices a grid from `noisykd perf` throughput on CIFAR-shaped inputs,
one run at a time: the right model for a GPU grid of convolutional networks, far off for
small MLPs on a CPU, where a run's time is mostly per-step overhead, evaluation and process
start, and jobs run side by side on the cores. Here each planned run is priced by the runs
of the measured study that did the same work:

- a run costs ``fixed + epochs x per_epoch``: ``per_epoch`` the median of the measured runs'
  ``train_time_s / epochs`` (training epochs with their refreshes), ``fixed`` the median of
  ``wall_time_s - train_time_s`` (data, teachers, evaluation, files), both over the runs
  with the same kind, dataset, protocol, architecture, method and hyper-parameters and
  teacher architectures (the closest measured match otherwise: the same without the
  teachers' architectures, then without the hyper-parameters; a teacher of another width,
  by the dataset's measured teachers; ``matches`` counts which);
- a job costs its runs plus ``job_start_s`` (a process importing torch, measured 1.8 s on
  the 2-core CPU, docs/performance.md, plus Snakemake's own per-job work);
- jobs run on ``cores // threads`` slots, the labels files' jobs (``LABELS_S`` each), then
  the teachers', then the students', each stage scheduled longest first (Snakemake starts
  what is ready; the stages overlap in practice, so this errs long). The report at the end
  (seconds to a minute) is not counted.

The measured study's runs carry their own machine's speed and the code's (the teacher
cache, say); price on the machine that made them.
"""

from __future__ import annotations

import heapq
import json
import statistics
from pathlib import Path

from benchmark.core.errors import UserError
from benchmark.core.layout import StudyLayout
from benchmark.plan.grid import plan
from benchmark.spec.run_metrics import read_metrics

#: a job's start: the process (import torch and the engine, 1.8 s measured) and Snakemake's
#: scheduling and job script (about 1 s): docs/performance.md
JOB_START_S = 3.0
#: a labels file's job (`noisykd labels`, no torch): 1-2 s each in the reference slice
LABELS_S = 1.5


def _hp(hparams) -> str:
    return json.dumps(dict(hparams), sort_keys=True, default=str)


def _keys(kind, dataset, protocol, arch, method, hparams, teacher_archs) -> list[tuple]:
    """The match keys of a run, the closest first."""
    base = (kind, dataset, protocol, arch, method)
    return [base + (_hp(hparams), tuple(teacher_archs)), base + (_hp(hparams),), base]


def measured_costs(results: Path) -> dict:
    """Per match key: the median ``fixed`` and ``per_epoch`` seconds of the measured study's
    finished runs (students and teachers), and how many runs each median is over."""
    lay = StudyLayout.of(results)
    samples: dict = {}
    paths = [(p, "student") for p in lay.run_metrics()] + [
        (p, "teacher") for p in lay.teacher_metrics()]
    for path, kind in paths:
        m = read_metrics(path, kind)
        spec = m.spec
        wall, train = m.get("wall_time_s"), m.get("train_time_s")
        if not (isinstance(wall, (int, float)) and isinstance(train, (int, float))
                and m.epochs > 0 and wall == wall and train == train):
            continue  # a run without timings (hand-made, or an older file)
        cost = (max(0.0, wall - train), train / m.epochs)
        protocol = (spec.get("train") or {}).get("protocol", "suite")
        teacher_archs = [t["arch"] for t in m.teachers]
        for key in _keys(kind, spec.get("dataset"), protocol, spec.get("arch"), m.method,
                         m.hparams, teacher_archs):
            samples.setdefault(key, []).append(cost)
        if kind == "teacher":  # a teacher of another width: by the dataset's teachers
            samples.setdefault(("teacher", spec.get("dataset"), protocol), []).append(cost)
    if not samples:
        raise UserError(f"--measured: {results} has no finished run with timings (a results "
                        "folder, results/<study>, of a study made on this machine)")
    return {k: {"fixed_s": statistics.median(c[0] for c in v),
                "per_epoch_s": statistics.median(c[1] for c in v), "n": len(v)}
            for k, v in samples.items()}


def _schedule(durations: list[float], slots: int) -> float:
    """Makespan of jobs started longest first on ``slots`` identical slots."""
    heap = [0.0] * max(1, slots)
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(heap, heap[0] + d)
    return max(heap)


def estimate_from_runs(config: dict, results: Path, cores: int,
                       job_start_s: float = JOB_START_S) -> dict:
    """The wall time of ``config``'s whole grid on ``cores`` cores, priced from the runs of
    the study in ``results`` (module docstring)."""
    p = plan(config)
    costs = measured_costs(results)
    threads = int(p.runtime.get("threads") or 1)
    slots = max(1, cores // threads)
    teacher_arch = {t.out: t.arch for t in p.teacher_runs}
    matches = {"exact": 0, "other teachers": 0, "other hyper-parameters": 0,
               "another teacher width": 0}
    missing = set()

    def run_cost(r) -> float:
        cfg = dict(r.train)
        protocol = cfg.get("protocol", "suite")
        keys = _keys(r.kind, r.dataset, protocol, r.arch, r.method, r.hparams,
                     [teacher_arch[t] for t in r.teachers])
        if r.kind == "teacher":
            keys.append(("teacher", r.dataset, protocol))
        for key, how in zip(keys, matches, strict=False):
            if key in costs:
                matches[how] += 1
                c = costs[key]
                return c["fixed_s"] + cfg["epochs"] * c["per_epoch_s"]
        missing.add(f"{r.kind} {r.dataset} ({protocol}) {r.arch} {r.method}")
        return 0.0

    stages = {"labels": [LABELS_S] * len(p.labels)}
    for stage, jobs in (("teachers", p.teacher_jobs), ("students", p.student_jobs)):
        stages[stage] = [job_start_s + sum(run_cost(r) for r in j.runs) for j in jobs]
    if missing:
        raise UserError(f"--estimate: {results} measured no run like: "
                        f"{'; '.join(sorted(missing)[:3])}"
                        + (f" (and {len(missing) - 3} more)" if len(missing) > 3 else "")
                        + "; measure a study with those datasets, architectures and methods")
    wall = {s: _schedule(d, slots) for s, d in stages.items()}
    return {"runs": len(p.teacher_runs) + len(p.student_runs),
            "jobs": len(p.teacher_jobs) + len(p.student_jobs), "slots": slots,
            "busy_s": round(sum(sum(d) for d in stages.values()), 1),
            "labels_wall_s": round(wall["labels"], 1),
            "teacher_wall_s": round(wall["teachers"], 1),
            "student_wall_s": round(wall["students"], 1),
            "wall_s": round(sum(wall.values()), 1), "matches": matches,
            "measured": str(results)}


def format_estimate_from_runs(config_name: str, est: dict) -> str:
    m = est["matches"]
    return (f"{config_name}: {est['runs']} runs in {est['jobs']} jobs, about "
            f"{est['wall_s'] / 60:.0f} min on {est['slots']} slot(s) "
            f"({est['labels_wall_s']:.0f} s for labels, {est['teacher_wall_s']:.0f} s for "
            f"teachers, then {est['student_wall_s']:.0f} s for students; "
            f"{est['busy_s']:.0f} s of job time); priced from the runs of {est['measured']} "
            f"({m['exact']} runs matched exactly, {m['other teachers']} by other teachers, "
            f"{m['other hyper-parameters']} by other hyper-parameters, "
            f"{m['another teacher width']} teachers by another width): an estimate")
