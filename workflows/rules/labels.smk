# Labels stage: one labels file per (dataset, noise, seed), shared by teachers and students.


def _optional_path_args(cfg):
    args = []
    if cfg.get("data_root"):
        args.append(f"--data-root {cfg['data_root']!r}")
    if cfg.get("cifar_n_dir"):
        args.append(f"--cifar-n-dir {cfg['cifar_n_dir']!r}")
    return " ".join(args)


rule labels:
    output:
        "results/labels/{dataset}/{noise_id}/seed{seed}.npz",
    log:
        "results/logs/labels/{dataset}/{noise_id}/seed{seed}.log",
    params:
        noise=lambda wc: grid.labels_cli_args(wc.noise_id),
        paths=_optional_path_args(config),
        val_fraction=config.get("val_fraction", 0.1),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        "noisykd labels --dataset {wildcards.dataset} {params.noise} --seed {wildcards.seed}"
        " --val-fraction {params.val_fraction} {params.paths} --out {output} > {log} 2>&1"
