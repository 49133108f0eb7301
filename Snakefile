# NoisyKD Bench workflow. Thin: config, validation, the plan, rule files, the `all` target.
#   snakemake --cores all                          the embedded default grid (offline, CPU)
#   snakemake --profile profiles/workstation --configfile workflows/config/paper.yaml
#   snakemake --cores 1 tables                     rebuild tables and figures, training nothing
# Each config is a study: its files live under results/<study>/ (key `study`, default the
# config file's stem, `default` for the embedded grid).
import os
import sys

from snakemake.utils import validate

from benchmark.plan import grid
from benchmark.plan.config_check import explain_file
from benchmark.core.errors import UserError


def config_error(message):
    """A config mistake: one line, before any of Snakemake's machinery (no schema dump)."""
    sys.stderr.write(f"invalid config: {message}\n")
    sys.exit(1)


# Snakemake deep-merges config files: load the default only when no --configfile was given,
# so nothing of it leaks into another grid.
if not workflow.overwrite_configfiles:
    configfile: os.path.join(workflow.basedir, "workflows/config/default.yaml")

# A study is a folder: everything this config writes lives under results/<study>/. The name
# defaults to the config file's stem (`default` for the embedded grid).
if "study" not in config:
    files = workflow.overwrite_configfiles
    config["study"] = os.path.splitext(os.path.basename(files[-1]))[0] if files else "default"
if os.path.isdir("results/runs") or os.path.isdir("results/teachers"):
    sys.stderr.write(
        "note: results/runs is the layout before studies; this config writes to "
        f"results/{config['study']}/ and does not see those runs. To keep them as a study: "
        "mkdir -p results/default && mv results/{runs,teachers,labels,checkpoints,tables,"
        "figures,logs,data,expected_runs.json} results/default/ (what exists)\n")

SCHEMA = os.path.join(workflow.basedir, "workflows/config/schema.yaml")
problem = explain_file(config, SCHEMA)
if problem:
    config_error(problem)
validate(config, SCHEMA)  # fills the schema's defaults
try:
    PLAN = grid.plan(config)
except UserError as exc:
    config_error(exc)
for note in PLAN.notes:
    sys.stderr.write(f"note: {note}\n")

# The console tells the story: a job prints its log's last line (train-runs ends with a
# one-line summary), and a failed job prints the lines of its log that say why
# (benchmark/workflow/jobconsole.py; training jobs do both in workflows/scripts/train_runs.py).
SHOW_ERROR = " || noisykd job-failed {rule} {log:q}"
SHOW_LOG = " && tail -n 1 {log:q}" + SHOW_ERROR

wildcard_constraints:
    dataset=r"[a-z0-9_]+",
    noise_id=r"[a-z\-]+(_[0-9.]+)?|human-[a-z0-9]+",
    seed=r"\d+",

report: "workflows/report/workflow.rst"


include: "workflows/rules/labels.smk"
include: "workflows/rules/teachers.smk"
include: "workflows/rules/students.smk"
include: "workflows/rules/report.smk"


# Every run's files are targets themselves, not only inputs of the report: a run whose
# metrics.json was deleted is then rerun (restored from its finished copy, or trained when
# `noisykd forget` removed that too), although the tables are newer than everything else.
rule all:
    default_target: True
    input:
        grid.report_outputs(PLAN),
        str(PLAN.layout.config),  # the study's config, for bundles (rule expected_runs)
        [o for job in PLAN.teacher_jobs + PLAN.student_jobs for o in job.outputs],


START = __import__("time").time()


def run_counts():
    """The plan's finished runs, the planned count, and how many this command trained."""
    import datetime as dt
    import json

    from benchmark.workflow.jobconsole import finished_metrics

    done, planned = finished_metrics(PLAN)
    started = dt.datetime.fromtimestamp(START, dt.timezone.utc).isoformat(timespec="seconds")
    new = 0
    for path in done:  # trained now: finished after this command started (restored: before)
        with open(path) as fh:
            new += json.load(fh).get("finished_at", "") >= started
    return len(done), planned, new


def run_summary(ok, done, planned, new):
    """The console's last line: what the study holds now and where its tables are."""
    text = (f"study {PLAN.study}: {done} of {planned} runs finished ({new} trained now, "
            f"{done - new} reused)")
    if ok:
        text += f"; tables in {PLAN.root}/tables/, figures in {PLAN.root}/figures/"
    else:
        text += (f"; {planned - done} missing or failed: the errors above name each "
                 "failed job and the end of its log; the same command resumes")
    return text


def finish(ok):
    """Log the invocation (results/<study>/invocations.json: command, code, versions, wall
    time; bundles carry it) and print the summary when Snakemake's process exits, after its
    own closing lines (log path, elapsed time, the failure's WorkflowError), so that it is
    the console's last line. Counted now: by then Snakemake has left the working directory
    (-d)."""
    import atexit
    import time

    from benchmark.exchange import studylog

    done, planned, new = run_counts()
    try:
        studylog.append(PLAN.root, studylog.entry(sys.argv, START, time.time(), ok, done,
                                                  planned, new))
    except OSError as exc:
        sys.stderr.write(f"note: {PLAN.root}/{studylog.LOG_NAME} not written: {exc}\n")
    atexit.register(print, run_summary(ok, done, planned, new), file=sys.stderr)


onsuccess:
    finish(True)


onerror:
    finish(False)
