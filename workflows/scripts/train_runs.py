# A training job of the workflow (teachers.smk, students.smk): `noisykd train-runs` with the
# job's run specs on its standard input and its output in the job's log; on the console the
# study's progress in runs and the job's summary line, or the cause of its failure.
# Snakemake runs this file with the object `snakemake` defined (script: directive).
import sys

from benchmark.workflow.jobconsole import train_job

sys.exit(train_job(snakemake))  # noqa: F821 (defined by Snakemake)
