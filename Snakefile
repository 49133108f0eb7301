# NoisyKD Bench workflow. Thin: config, validation, the plan, rule files, the `all` target.
#   snakemake --cores all                          the embedded default grid (offline, CPU)
#   snakemake --profile profiles/workstation --configfile workflows/config/paper.yaml
#   snakemake tables                               rebuild tables and figures, training nothing
import os

from snakemake.utils import validate

from benchmark import grid
from benchmark.errors import UserError

# Snakemake deep-merges config files: load the default only when no --configfile was given,
# so nothing of it leaks into another grid.
if not workflow.overwrite_configfiles:
    configfile: os.path.join(workflow.basedir, "workflows/config/default.yaml")

validate(config, os.path.join(workflow.basedir, "workflows/config/schema.yaml"))
try:
    PLAN = grid.plan(config)
except UserError as exc:
    raise ValueError(f"invalid config: {exc}") from None

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
