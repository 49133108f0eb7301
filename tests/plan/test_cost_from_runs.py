"""A grid's wall time priced from an earlier study's runs (benchmark/plan/cost_from_runs.py),
against hand arithmetic: each run fixed + epochs x per-epoch seconds of its measured match,
each job its runs plus a start, jobs longest first on cores // threads slots, teachers then
students."""

import copy
import json

import pytest

from benchmark.core.errors import UserError
from benchmark.plan import cost_from_runs
from benchmark.plan.grid import plan
from tests.helpers import TINY

# seconds measured per (kind, method): (wall - train, train per epoch)
COST = {("teacher", "ce"): (1.0, 0.5), ("student", "ce"): (0.2, 0.1),
        ("student", "kd"): (0.3, 0.2), ("student", "fixed_alpha"): (0.4, 0.3),
        ("student", "almkd"): (0.5, 0.7)}


def _measured_study(tmp_path, config, epochs=3, skip=()):
    """A results folder with a metrics.json for every run of ``config``'s plan, timed by
    COST (the multi setup's runs measured 10x slower, so a match on the wrong teachers
    shows)."""
    p = plan(config)
    arch = {t.out: t.arch for t in p.teacher_runs}
    for r in p.teacher_runs + p.student_runs:
        if r.method in skip:
            continue
        fixed, per_epoch = COST[(r.kind, r.method)]
        if len(r.teachers) > 1:
            per_epoch *= 10
        spec = {"kind": r.kind, "dataset": r.dataset, "arch": r.arch, "seed": r.seed,
                "labels": {"seed": r.seed}, "train": {"epochs": epochs, "protocol": "suite"},
                "method": {"name": r.method, "hparams": dict(r.hparams)},
                "teachers": [{"arch": arch[t]} for t in r.teachers]}
        m = {"kind": r.kind, "spec": spec, "epochs": epochs, "best_epoch": 1,
             **{k: 0.5 for k in ("test_acc_best_val", "test_acc_last", "val_acc_best",
                                 "val_acc_last")},
             "train_time_s": per_epoch * epochs, "wall_time_s": fixed + per_epoch * epochs}
        out = tmp_path / r.out
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps(m))
    return tmp_path / p.root


def _lpt(durations, slots):
    """Longest first, each to the least loaded slot (a plain loop)."""
    loads = [0.0] * slots
    for d in sorted(durations, reverse=True):
        i = loads.index(min(loads))
        loads[i] += d
    return max(loads)


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_a_grid_is_priced_run_by_run_and_scheduled_on_the_cores(tmp_path, cores):
    measured = _measured_study(tmp_path, TINY)
    bigger = copy.deepcopy(TINY)
    bigger["datasets"][0]["train"]["epochs"] = 7  # the grid to price trains longer
    p = plan(bigger)
    start = 2.5
    teacher_jobs = [start + sum(COST[(r.kind, r.method)][0] + 7 * COST[(r.kind, r.method)][1]
                                for r in j.runs) for j in p.teacher_jobs]
    student_jobs = []
    for j in p.student_jobs:
        total = start
        for r in j.runs:
            fixed, per_epoch = COST[(r.kind, r.method)]
            total += fixed + 7 * per_epoch * (10 if len(r.teachers) > 1 else 1)
        student_jobs.append(total)
    labels = [cost_from_runs.LABELS_S] * len(p.labels)  # 2 seeds: 2 labels files
    est = cost_from_runs.estimate_from_runs(bigger, measured, cores, job_start_s=start)
    assert est["slots"] == cores and est["jobs"] == len(teacher_jobs) + len(student_jobs)
    assert est["busy_s"] == pytest.approx(sum(labels + teacher_jobs + student_jobs), abs=0.1)
    assert est["labels_wall_s"] == pytest.approx(_lpt(labels, cores), abs=0.1)
    assert est["teacher_wall_s"] == pytest.approx(_lpt(teacher_jobs, cores), abs=0.1)
    assert est["student_wall_s"] == pytest.approx(_lpt(student_jobs, cores), abs=0.1)
    assert est["wall_s"] == pytest.approx(
        _lpt(labels, cores) + _lpt(teacher_jobs, cores) + _lpt(student_jobs, cores), abs=0.2)
    assert est["matches"]["exact"] == est["runs"]


def test_threads_per_job_take_cores(tmp_path):
    measured = _measured_study(tmp_path, TINY)
    two = {**TINY, "runtime": {"threads": 2}}
    assert cost_from_runs.estimate_from_runs(two, measured, 4)["slots"] == 2
    assert cost_from_runs.estimate_from_runs(two, measured, 1)["slots"] == 1


def test_the_closest_measured_run_prices_an_unmeasured_one(tmp_path):
    """A setup whose teachers were not measured is priced by the same method's runs with
    other teachers; a method never measured is one error naming it."""
    single = {**TINY, "setups": ["single"]}
    measured = _measured_study(tmp_path, single)
    est = cost_from_runs.estimate_from_runs({**TINY, "setups": ["single", "multi"]},
                                            measured, 1)
    assert est["matches"]["other teachers"] > 0
    no_almkd = _measured_study(tmp_path / "b", TINY, skip=("almkd",))
    with pytest.raises(UserError, match="measured no run like: student digits .*almkd"):
        cost_from_runs.estimate_from_runs(TINY, no_almkd, 1)
    with pytest.raises(UserError, match="no finished run with timings"):
        cost_from_runs.estimate_from_runs(TINY, tmp_path / "empty", 1)


def test_the_cli_prices_from_a_folder_and_refuses_no_cores(tmp_path, capsys):
    import yaml

    from benchmark.cli import main

    measured = _measured_study(tmp_path, TINY)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    args = ["perf", "--estimate", str(cfg), "--measured", str(measured)]
    assert main([*args, "--cores", "0"]) == 2
    assert "--cores must be at least 1, got 0" in capsys.readouterr().err
    assert main([*args, "--cores", "2"]) in (0, None)
    assert "on 2 slot(s)" in capsys.readouterr().out
