# Report stage. For now: the table of requested, implied and realised label noise.


rule label_noise_table:
    input:
        [job.path for job in LABELS_JOBS],
    output:
        "results/tables/label_noise.md",
    log:
        "results/logs/report/label_noise.log",
    localrule: True
    shell:
        "noisykd labels-summary {input} --out {output} > {log} 2>&1"
