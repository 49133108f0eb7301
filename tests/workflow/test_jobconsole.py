"""What a workflow job prints: the cause of a failure, the progress in runs, short lines."""

import json
import subprocess
import sys
from pathlib import Path

from benchmark.plan.grid import plan
from benchmark.workflow.jobconsole import WIDTH, failure_lines, study_progress
from tests.helpers import TINY


def test_failure_lines_start_at_the_cli_error(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("epoch 1 ...\nepoch 2 ...\nnoisykd train-runs: error: teacher model x is "
                   "unreadable\n  named file: x\n  how to fix: y\nextra 1\nextra 2\n")
    assert failure_lines(log) == ["noisykd train-runs: error: teacher model x is unreadable",
                                  "  named file: x", "  how to fix: y", "extra 1"]


def test_failure_lines_without_an_error_line_are_the_tail(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("a\nTraceback (most recent call last):\n  File x\nValueError: " + "v" * 900)
    lines = failure_lines(log)
    assert lines[:2] == ["Traceback (most recent call last):", "  File x"]
    assert lines[2].startswith("ValueError: v") and len(lines[2]) == WIDTH


def test_failure_lines_of_an_empty_or_missing_log(tmp_path):
    (tmp_path / "empty.log").write_text("")
    assert failure_lines(tmp_path / "empty.log") == ["(the log is empty)"]
    assert failure_lines(tmp_path / "missing.log")[0].startswith("(log unreadable")


def test_job_failed_prints_the_cause_and_exits_1(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("noisykd labels: error: data folder data/cifar-10-batches-py not found\n")
    res = subprocess.run([sys.executable, "-m", "benchmark", "job-failed", "labels", str(log)],
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"job labels failed; from its log {log}:",
        "  noisykd labels: error: data folder data/cifar-10-batches-py not found"]


def test_train_runs_reads_specs_from_a_file_or_stdin(tmp_path):
    def train_runs(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "benchmark", "train-runs", *args],
                              input=stdin, capture_output=True, text=True)

    res = train_runs("--runs-file", str(tmp_path / "missing.json"))
    assert res.returncode == 2 and "missing.json does not exist" in res.stderr
    res = train_runs("--runs-file", "-", stdin="[not json")
    assert res.returncode == 2 and "standard input) is not valid JSON" in res.stderr
    assert len(res.stderr.splitlines()) == 1
    res = train_runs("--runs-file", "-", stdin="[]")  # an empty job: nothing to train
    assert res.returncode == 0 and res.stdout.strip() == "done: no runs"
    res = train_runs("--runs", "[]", "--runs-file", "-")
    assert res.returncode == 2  # one or the other


def test_study_progress_counts_the_planned_runs_that_finished(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = {**TINY, "study": "tiny"}
    p = plan(config)
    runs = [r.out for r in p.teacher_runs + p.student_runs]
    assert study_progress(config) == (0, len(runs))
    for out in (runs[0], runs[-1]):
        Path(out).mkdir(parents=True)
        Path(out, "metrics.json").write_text(json.dumps({}))
    Path("results/tiny/runs/other/metrics.json").parent.mkdir(parents=True)
    Path("results/tiny/runs/other/metrics.json").write_text("{}")  # not planned: not counted
    assert study_progress(config) == (2, len(runs))


def test_the_share_switch_reaches_the_job_command_not_its_params():
    """runtime.share_teacher_work becomes train-runs' flag (the schema's default, on, when
    unset); the job's params (its run specs, which Snakemake compares to decide a rerun)
    are the same either way, so switching it reruns nothing."""
    from benchmark.workflow.jobconsole import share_flag

    assert share_flag({}) == ["--share-teacher-work"]
    assert share_flag({"runtime": {"threads": 2}}) == ["--share-teacher-work"]
    assert share_flag({"runtime": {"share_teacher_work": False}}) == ["--no-share-teacher-work"]
    on = plan({**TINY, "runtime": {"share_teacher_work": True}})
    off = plan({**TINY, "runtime": {"share_teacher_work": False}})
    assert [j.command_args(None, None) for j in on.student_jobs] == [
        j.command_args(None, None) for j in off.student_jobs]
    assert [j.command_args(None, None) for j in plan(TINY).student_jobs] == [
        j.command_args(None, None) for j in off.student_jobs]
    import pytest

    from benchmark.core.errors import UserError

    with pytest.raises(UserError, match="runtime.share_teacher_work': true or false, got 'no'"):
        plan({**TINY, "runtime": {"share_teacher_work": "no"}})
