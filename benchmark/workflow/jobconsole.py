"""What a workflow job says on the console: one line when it finishes, the cause when it fails.

Every job writes its whole output to its log (``results/<study>/logs/...``); the console gets
only the log's last line (``train-runs`` ends with a one-line summary of its runs, prefixed
here with the study's progress counted in runs) or, for a failed job, the lines of the log
that say why. Training jobs are run by ``workflows/scripts/train_runs.py`` through
:func:`train_job`, which hands the runs' specs to ``noisykd train-runs`` on its standard
input: a spec list can be tens of kilobytes, and a command line holding it would be printed
whole by Snakemake when the job fails. Other jobs call ``noisykd job-failed RULE LOG`` after
a failing command (see ``SHOW_ERROR`` in the Snakefile).

No torch here: this runs in the Snakemake process's helpers, once per job.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from benchmark.core.layout import METRICS

#: the first line of a CLI error (benchmark.cli prints "noisykd <command>: error: ...")
ERROR_LINE = re.compile(r"^noisykd [a-z-]+: error:")
#: at most this many characters of a log line reach the console
WIDTH = 300


def failure_lines(log: str | Path, n_error: int = 4, n_tail: int = 3) -> list[str]:
    """The lines of a failed job's log that say why: from the CLI's own error line (up to
    ``n_error`` lines: the message and what it names), else the last ``n_tail`` lines (a
    traceback ends with the exception); each cut to ``WIDTH`` characters."""
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError as exc:
        return [f"(log unreadable: {exc})"]
    start = next((i for i, line in enumerate(lines) if ERROR_LINE.match(line)), None)
    picked = lines[start:start + n_error] if start is not None else lines[-n_tail:]
    return [line[:WIDTH] for line in picked] or ["(the log is empty)"]


def report_failure(rule: str, log: str | Path, file=None) -> None:
    file = file or sys.stderr
    print(f"job {rule} failed; from its log {log}:", file=file)
    for line in failure_lines(log):
        print(f"  {line}", file=file)


def last_line(log: str | Path) -> str:
    lines = [line for line in Path(log).read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:WIDTH] if lines else ""


def finished_metrics(p) -> tuple[list[str], int]:
    """The metrics.json files of a plan's finished runs (teachers and students), and how many
    runs it plans: the progress line of every job and the workflow's final summary."""
    runs = [r.out for r in p.teacher_runs + p.student_runs]
    done = [f"{out}/{METRICS}" for out in runs if os.path.exists(f"{out}/{METRICS}")]
    return done, len(runs)


def study_progress(config: dict) -> tuple[int, int]:
    """(finished, planned) runs, teachers and students, of the study the config plans."""
    from benchmark.plan.grid import plan

    done, total = finished_metrics(plan(config))
    return len(done), total


def share_flag(config: dict) -> list[str]:
    """``train-runs``'s flag for the config's ``runtime.share_teacher_work`` (the schema's
    default when unset): on the command line, not in the job's params, so switching it
    reruns no job (the numbers do not depend on it)."""
    from benchmark.spec import schema

    default = schema.defaults("runtime")["share_teacher_work"]
    on = ((config or {}).get("runtime") or {}).get("share_teacher_work", default)
    return ["--share-teacher-work" if on else "--no-share-teacher-work"]


def train_job(smk) -> int:
    """Run a training job (Snakemake's ``script:`` object ``smk``): ``noisykd train-runs``
    with the job's specs on stdin, output to the job's log; print the progress line or the
    failure's cause. Returns the exit status for the script to exit with."""
    specs = shlex.split(smk.params.runs)[0]  # the rules keep the specs shell-quoted (params)
    threads = str(smk.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads}
    log = smk.log[0]
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        status = subprocess.run(
            [sys.executable, "-m", "benchmark", "train-runs", "--threads", threads,
             "--runs-file", "-"] + share_flag(smk.config), input=specs, text=True, stdout=fh,
            stderr=subprocess.STDOUT, env=env).returncode
    if status:
        report_failure(smk.rule, log)
        return 1
    done, total = study_progress(smk.config)
    print(f"[{done}/{total} runs] {last_line(log)}", file=sys.stderr)
    return 0
