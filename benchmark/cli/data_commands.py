"""The data commands: labels, labels-summary, datasets, prepare-data. Each ``add_*`` adds a
subparser whose command imports what it needs when it runs."""

from __future__ import annotations

import sys
from pathlib import Path


def add_labels(sub) -> None:
    p = sub.add_parser(
        "labels",
        help="write the labels file (split, clean and noisy labels) of one dataset/noise/seed",
        description="Write a labels file: stratified clean validation split, noisy training "
                    "labels, realised transition matrix and rates. Same inputs, same bytes.",
    )
    p.add_argument("--dataset", required=True, help="dataset name (see `noisykd datasets`)")
    p.add_argument("--noise", required=True,
                   help="noise type: symmetric, asymmetric, pairflip, instance or human")
    p.add_argument("--rate", type=float, help="noise rate in [0, 1) (not for human noise)")
    p.add_argument("--variant", help="human noise variant: aggre, worst, random1-3 "
                                     "(cifar10) or noisy (cifar100)")
    p.add_argument("--include-true", action="store_true",
                   help="symmetric noise as the ALM-KD authors drew it: int(N*r) labels "
                        "redrawn uniformly from all classes (realises about r(C-1)/C)")
    p.add_argument("--features", choices=("raw", "standardised"),
                   help="instance noise only: what Xia et al.'s random projection scores; "
                        "raw (default): the stored inputs, pixel values 0..255 as Xia et al. "
                        "feed them; standardised: the normalised inputs (noise id "
                        "instance-std_<rate>, the suite's form before issue 30)")
    p.add_argument("--seed", type=int, required=True,
                   help="run seed (split and noise derive from it)")
    p.add_argument("--out", type=Path, required=True, help="labels file to write (.npz)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="clean validation share of the training pool (default 0.1)")
    p.add_argument("--select-fraction", type=float, metavar="F",
                   help="carve a clean selection split of F x the pool (epoch and alpha "
                        "selection only; no method trains on it); default: none, the "
                        "validation (meta) split also selects")
    p.add_argument("--train-subset", type=int, metavar="N",
                   help="train on a stratified subset of N examples of the training split "
                        "(seeded by --seed; the validation and test sets are unchanged)")
    p.add_argument("--data-root", type=Path, help="folder holding the dataset files "
                                                   "(default $NOISYKD_DATA_ROOT or ./data)")
    p.add_argument("--cifar-n-dir", type=Path, help="folder holding CIFAR-10_human.pt / "
                                                     "CIFAR-100_human.pt")
    p.add_argument("--download", action="store_true",
                   help="let torchvision download a missing dataset (needs network)")
    p.add_argument("--quiet", action="store_true", help="do not print the summary line")
    p.set_defaults(func=_run_labels)


def _run_labels(args) -> None:
    from benchmark.data.labels import LabelsRequest, print_summary, write_labels
    from benchmark.data.noise import NoiseSpec

    spec = NoiseSpec(args.noise, rate=args.rate, variant=args.variant,
                     include_true=args.include_true, features=args.features)
    req = LabelsRequest(args.dataset, spec, args.seed, val_fraction=args.val_fraction,
                        data_root=args.data_root, download=args.download,
                        cifar_n_dir=args.cifar_n_dir, train_subset=args.train_subset,
                        select_fraction=args.select_fraction)
    meta = write_labels(req, args.out)
    if not args.quiet:
        print_summary(meta)


def add_labels_summary(sub) -> None:
    p = sub.add_parser("labels-summary",
                       help="tabulate requested, expected and realised noise of labels files")
    p.add_argument("files", nargs="+", type=Path, help="labels files (.npz)")
    p.add_argument("--out", type=Path, help="write the Markdown table here (default: stdout)")
    p.set_defaults(func=_run_labels_summary)


def _run_labels_summary(args) -> None:
    from benchmark.core.atomic import atomic_write_text
    from benchmark.data.labels_summary import labels_summary_markdown

    text = labels_summary_markdown(args.files)
    if args.out:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)


def add_datasets(sub) -> None:
    p = sub.add_parser("datasets", help="list the registered datasets")
    p.set_defaults(func=_run_datasets)


def _run_datasets(args) -> None:
    from benchmark.data import dataset_names, get_entry

    for name in dataset_names():
        e = get_entry(name)
        classes = "?" if e.num_classes is None else e.num_classes
        human = f"; human noise: {', '.join(e.human_variants)}" if e.human_variants else ""
        print(f"{name:14s} {e.kind:8s} {classes:>4} classes  {e.description}{human}")


def add_prepare_data(sub) -> None:
    p = sub.add_parser("prepare-data", help="check (or, with --download, fetch) a dataset once, "
                                             "so that later jobs never download")
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", type=Path)
    p.add_argument("--download", action="store_true")
    p.add_argument("--out", type=Path, required=True, help="JSON summary to write")
    p.set_defaults(func=_run_prepare_data)


def _run_prepare_data(args) -> None:
    from benchmark.core.atomic import write_json_atomic
    from benchmark.data import load_dataset

    rec = load_dataset(args.dataset, args.data_root, args.download)
    write_json_atomic(args.out, {
        "dataset": rec.name, "fingerprint": rec.fingerprint(), "num_classes": rec.num_classes,
        "input_shape": list(rec.input_shape), "n_pool": len(rec.train_y),
        "n_test": len(rec.test_y), "test_source": rec.test_source})
    print(f"{rec.name}: {len(rec.train_y)} training-pool and {len(rec.test_y)} test examples, "
          f"{rec.num_classes} classes, inputs {rec.input_shape}")
