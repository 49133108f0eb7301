# Teachers: one job per (dataset, noise, architecture, teacher labels, seed chunk); every
# student that distils from a teacher depends on the same job. The runs of a job and their
# full specs are in params, so a changed spec reruns the job (rerun trigger "params").

for _job in PLAN.teacher_jobs:

    rule:
        name:
            grid.rule_name(_job)
        input:
            _job.inputs,
        output:
            _job.outputs,
        log:
            f"{PLAN.root}/logs/{_job.name}.log",
        params:
            runs=_job.command_args(config.get("data_root"), config.get("cifar_n_dir")),
        threads: PLAN.runtime["threads"]
        # upstream of students: started first, so that the last students do not wait for a
        # teacher that could have trained while others ran
        priority: 1
        resources:
            mem_mb=PLAN.runtime["mem_mb"],
            runtime=PLAN.runtime["runtime_min"],
            gpu=PLAN.runtime["gpu"],
        script:
            # noisykd train-runs --threads {threads} --runs-file - < specs > {log} 2>&1
            "../scripts/train_runs.py"
