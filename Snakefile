# NoisyKD Bench workflow. Thin: config, validation, the plan, rule files, the `all` target.
#   snakemake --cores all                          the embedded default grid (offline, CPU)
#   snakemake --profile profiles/workstation --configfile workflows/config/paper.yaml
#   snakemake --cores 1 tables                     rebuild tables and figures, training nothing
# Each config is a study: its files live under results/<study>/ (key `study`, default the
# config file's stem, `default` for the embedded grid).
import os
import sys

from snakemake.utils import validate

from benchmark import grid
from benchmark.config_check import explain_file
from benchmark.errors import UserError


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

wildcard_constraints:
    dataset=r"[a-z0-9_]+",
    noise_id=r"[a-z\-]+(_[0-9.]+)?|human-[a-z0-9]+",
    seed=r"\d+",

report: "workflows/report/workflow.rst"


include: "workflows/rules/labels.smk"
include: "workflows/rules/teachers.smk"
include: "workflows/rules/students.smk"
include: "workflows/rules/report.smk"


rule all:
    default_target: True
    input:
        grid.report_outputs(PLAN),
