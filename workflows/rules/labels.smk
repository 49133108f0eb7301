# Data and labels: each dataset is checked (or downloaded, with download: true) once by a
# local job, so cluster jobs never download; one labels file per (dataset, noise, seed),
# shared by every teacher and student of that seed.


from benchmark.core.shellquote import quote_always


def _path_args(cfg):
    """Path options from the config, each quoted for the shell (a config value never runs)."""
    args = []
    if cfg.get("data_root"):
        args.append(f"--data-root {quote_always(cfg['data_root'])}")
    return " ".join(args)


rule prepare_data:
    output:
        str(PLAN.layout.data_record("{dataset}")),
    log:
        f"{PLAN.root}/logs/data/{{dataset}}.log",
    params:
        paths=_path_args(config),
        download="--download" if config.get("download") else "",
    localrule: True
    priority: 1  # upstream of everything (teachers too): first
    shell:
        "noisykd prepare-data --dataset {wildcards.dataset} {params.paths} {params.download}"
        " --out {output:q} > {log:q} 2>&1" + SHOW_ERROR


rule labels:
    input:
        str(PLAN.layout.data_record("{dataset}")),
    output:
        grid.labels_path("{dataset}", "{noise_id}", "{seed}", PLAN.root),
    log:
        f"{PLAN.root}/logs/labels/{{dataset}}/{{noise_id}}/seed{{seed}}.log",
    params:
        noise=lambda wc: grid.labels_cli_args(wc.noise_id),
        # the dataset's training subset and selection split ride with the path options, so a
        # dataset without either keeps the params (and Snakemake's params trigger) it always had
        paths=lambda wc: " ".join(filter(None, [_path_args(config),
                                                grid.labels_split_args(config, wc.dataset)])),
        cifar_n=(f"--cifar-n-dir {quote_always(config['cifar_n_dir'])}"
                 if config.get("cifar_n_dir") else ""),
        val_fraction=lambda wc: grid.val_fraction_of(config, wc.dataset),
    threads: 1
    priority: 1  # upstream of teachers and students: first
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        "noisykd labels --dataset {wildcards.dataset} {params.noise} --seed {wildcards.seed}"
        " --val-fraction {params.val_fraction} {params.paths} {params.cifar_n} --out {output:q}"
        " > {log:q} 2>&1" + SHOW_ERROR
