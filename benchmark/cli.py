"""The ``noisykd`` command: every workflow rule calls the library through it.

Subcommands import what they need when they run, so ``noisykd --help`` and the labels job
stay free of torch. A ``UserError`` is printed as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import UserError


def _add_labels(sub) -> None:
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
    from .labels import LabelsRequest, print_summary, write_labels
    from .noise import NoiseSpec

    spec = NoiseSpec(args.noise, rate=args.rate, variant=args.variant,
                     include_true=args.include_true)
    req = LabelsRequest(args.dataset, spec, args.seed, val_fraction=args.val_fraction,
                        data_root=args.data_root, download=args.download,
                        cifar_n_dir=args.cifar_n_dir, train_subset=args.train_subset,
                        select_fraction=args.select_fraction)
    meta = write_labels(req, args.out)
    if not args.quiet:
        print_summary(meta)


def _add_labels_summary(sub) -> None:
    p = sub.add_parser("labels-summary",
                       help="tabulate requested, expected and realised noise of labels files")
    p.add_argument("files", nargs="+", type=Path, help="labels files (.npz)")
    p.add_argument("--out", type=Path, help="write the Markdown table here (default: stdout)")
    p.set_defaults(func=_run_labels_summary)


def _run_labels_summary(args) -> None:
    from .labels_summary import labels_summary_markdown
    from .runinfo import atomic_write_text

    text = labels_summary_markdown(args.files)
    if args.out:
        atomic_write_text(args.out, text)
    else:
        sys.stdout.write(text)


def _add_datasets(sub) -> None:
    p = sub.add_parser("datasets", help="list the registered datasets")
    p.set_defaults(func=_run_datasets)


def _run_datasets(args) -> None:
    from .data import dataset_names, get_entry

    for name in dataset_names():
        e = get_entry(name)
        classes = "?" if e.num_classes is None else e.num_classes
        human = f"; human noise: {', '.join(e.human_variants)}" if e.human_variants else ""
        print(f"{name:14s} {e.kind:8s} {classes:>4} classes  {e.description}{human}")


def _add_training_options(p) -> None:
    from .trainconfig import TrainConfig

    d = TrainConfig()
    p.add_argument("--dataset", required=True, help="dataset name (must match the labels file)")
    p.add_argument("--labels", type=Path, required=True, help="labels file from `noisykd labels`")
    p.add_argument("--arch", required=True, help="backbone (timm name or a suite model)")
    p.add_argument("--seed", type=int, required=True, help="run seed")
    p.add_argument("--out", type=Path, required=True, help="run folder to write")
    p.add_argument("--run-id", help="id recorded in metrics.json (default: path under the study "
                        "folder)")
    g = p.add_argument_group("optimisation (part of the run's identity)")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--momentum", type=float, default=d.momentum)
    g.add_argument("--no-nesterov", dest="nesterov", action="store_false")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--schedule", default=d.schedule, help="step, cosine or constant")
    g.add_argument("--milestones", default=",".join(map(str, d.milestones)),
                   help="epochs at which a step schedule multiplies the lr by --gamma")
    g.add_argument("--gamma", type=float, default=d.gamma)
    g.add_argument("--augment", default=d.augment, help="auto, none, crop or crop_flip")
    g.add_argument("--protocol", default=d.protocol,
                   help="suite (default) or authors: reproduce the ALM-KD authors' released "
                        "code where it differs (docs/reproduction-notes.md)")
    g = p.add_argument_group("runtime (not part of the run's identity)")
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    g.add_argument("--amp", default=d.amp, help="bf16 autocast: auto (CUDA only), on, off")
    g.add_argument("--channels-last", default=d.channels_last, help="auto (CUDA only), on, off")
    g.add_argument("--compile", action="store_true", help="torch.compile the models")
    g.add_argument("--compile-mode", default=d.compile_mode,
                   help="torch.compile mode with --compile: default, reduce-overhead (CUDA "
                        "graphs), max-autotune, max-autotune-no-cudagraphs")
    g.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size)
    g.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    g.add_argument("--keep-checkpoint", action="store_true")
    g.add_argument("--checkpoint-dir", type=Path,
                   help="default: <study>/checkpoints/<run> for runs under a study folder")
    g.add_argument("--threads", type=int, help="torch CPU threads (Snakemake passes {threads})")
    g.add_argument("--data-root", type=Path)
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="progress bar (default: when stderr is a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false")


def _train_config(args):
    from .trainconfig import TrainConfig

    try:
        milestones = tuple(int(m) for m in args.milestones.split(",") if m.strip())
    except ValueError:
        raise UserError(f"--milestones must be comma-separated integers, got "
                        f"{args.milestones!r}") from None
    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
        nesterov=args.nesterov, weight_decay=args.weight_decay, schedule=args.schedule,
        milestones=milestones, gamma=args.gamma, augment=args.augment,
        protocol=args.protocol, device=args.device,
        amp=args.amp, channels_last=args.channels_last, compile=args.compile,
        compile_mode=args.compile_mode, eval_batch_size=args.eval_batch_size,
        checkpoint_every=args.checkpoint_every, keep_checkpoint=args.keep_checkpoint)


def _parse_hparams(items: list[str]) -> dict:
    """``--hparam KEY=VALUE`` values read as YAML (4 is an integer, 4.0 a number, null null),
    and 1e3 as the number YAML 1.1 reads as text; ``methods.catalog.check_hparams`` checks
    them."""
    import re

    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--hparam expects KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(f"--hparam {item!r}: {value!r} is not a value (a number, a word "
                            "or null)") from None
        if isinstance(out[key], str) and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+",
                                                      out[key]):
            out[key] = float(out[key])
    return out


def _run_training(args) -> None:
    from methods.catalog import check_hparams

    from .runs import RunRequest, run

    cfg = _train_config(args)
    method = getattr(args, "method", "ce")
    hparams = _parse_hparams(getattr(args, "hparam", None) or [])
    check_hparams(method, hparams)  # before anything is read or written
    from .engine import resolve_device

    resolve_device(cfg.device)  # a device this machine lacks, before the run's folders
    req = RunRequest(
        kind=args.command, dataset=args.dataset, labels_path=args.labels, arch=args.arch,
        seed=args.seed, out=args.out, cfg=cfg, method=method, hparams=hparams,
        teacher_dirs=getattr(args, "teacher", None) or [],
        teacher_checkpoint=getattr(args, "teacher_checkpoint", "last"),
        teacher_labels=getattr(args, "teacher_labels", "noisy"),
        data_root=args.data_root, checkpoint_dir=args.checkpoint_dir, threads=args.threads,
        progress=args.progress, run_id=args.run_id)
    metrics = run(req)
    if metrics:
        print(f"{metrics['run_id']}: test acc {metrics['test_acc_best_val']:.4f} at best val "
              f"epoch {metrics['best_epoch']}, {metrics['test_acc_last']:.4f} at the last "
              f"({metrics['images_per_s']:.0f} img/s on {metrics['provenance']['device']})")


def _add_train_runs(sub) -> None:
    p = sub.add_parser("train-runs", help="train a list of runs given as JSON (what workflow "
                                          "jobs call; finished runs are skipped)")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--runs", help="JSON list of run specs (benchmark/grid.py: "
                                      "RunSpec.request); every spec is checked before the "
                                      "first trains; an empty list trains nothing and exits 0")
    given.add_argument("--runs-file", type=Path,
                       help="the same JSON in a file, or - for standard input (workflow jobs: "
                            "a long spec list stays off the command line)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--progress", dest="progress", action="store_true", default=None)
    p.set_defaults(func=_run_train_runs)


def _run_train_runs(args) -> None:
    import json

    from .runs import RunRequest, run
    from .trainconfig import TrainConfig

    if args.runs_file is None:
        text, source = args.runs, "--runs"
    elif str(args.runs_file) == "-":
        text, source = sys.stdin.read(), "--runs-file - (standard input)"
    else:
        if not args.runs_file.is_file():
            raise UserError(f"--runs-file {args.runs_file} does not exist")
        text, source = args.runs_file.read_text(), f"--runs-file {args.runs_file}"
    try:
        specs = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{source} is not valid JSON: {exc}") from None
    from .grid import check_request

    if not isinstance(specs, list):
        kinds = {dict: "an object", str: "a string", bool: "true or false", type(None): "null"}
        raise UserError(f"{source} must be a JSON list of run specs (objects), got "
                        f"{kinds.get(type(specs), 'a number')}")
    for i, s in enumerate(specs):  # every spec checked before the first one trains
        check_request(s, f"{source}: run {i}")
    if specs:
        from .engine import resolve_device

        for device in sorted({s["train"].get("device", "auto") for s in specs}):
            resolve_device(device)  # a device this machine lacks
    requests = []
    for s in specs:  # all checked before the first one trains
        requests.append(RunRequest(
            kind=s["kind"], dataset=s["dataset"], labels_path=Path(s["labels"]), arch=s["arch"],
            seed=s["seed"], out=Path(s["out"]), cfg=TrainConfig.from_dict(s["train"]),
            method=s.get("method", "ce"), hparams=s.get("hparams") or {},
            teacher_dirs=[Path(t) for t in s.get("teachers") or []],
            teacher_checkpoint=s.get("teacher_checkpoint", "last"),
            teacher_labels=s.get("teacher_labels", "noisy"),
            data_root=Path(s["data_root"]) if s.get("data_root") else None,
            threads=args.threads, progress=args.progress))
    trained, best = 0, None
    for req in requests:
        metrics = run(req)
        if metrics:
            trained += 1
            print(f"{metrics['run_id']}: test acc {metrics['test_acc_best_val']:.4f} "
                  f"(best val epoch {metrics['best_epoch']}), {metrics['train_time_s']:.1f} s")
        else:
            metrics = json.loads((req.out / "metrics.json").read_text())
        if best is None or metrics["test_acc_best_val"] > best["test_acc_best_val"]:
            best = metrics
    print(job_summary(len(requests), trained, best))


def job_summary(n: int, trained: int, best: dict | None) -> str:
    """The job's one line on the console (the workflow prints its log's last line)."""
    if best is None:
        return "done: no runs"
    parts = best["run_id"].split("/")
    return (f"done {'/'.join(parts[:4])}: {n} run(s), {trained} trained, {n - trained} "
            f"reused; best test acc {100 * best['test_acc_best_val']:.2f}% "
            f"({'/'.join(parts[4:])})")


def _add_prepare_data(sub) -> None:
    p = sub.add_parser("prepare-data", help="check (or, with --download, fetch) a dataset once, "
                                             "so that later jobs never download")
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", type=Path)
    p.add_argument("--download", action="store_true")
    p.add_argument("--out", type=Path, required=True, help="JSON summary to write")
    p.set_defaults(func=_run_prepare_data)


def _run_prepare_data(args) -> None:
    from .data import load_dataset
    from .runinfo import write_json_atomic

    rec = load_dataset(args.dataset, args.data_root, args.download)
    write_json_atomic(args.out, {
        "dataset": rec.name, "fingerprint": rec.fingerprint(), "num_classes": rec.num_classes,
        "input_shape": list(rec.input_shape), "n_pool": len(rec.train_y),
        "n_test": len(rec.test_y), "test_source": rec.test_source})
    print(f"{rec.name}: {len(rec.train_y)} training-pool and {len(rec.test_y)} test examples, "
          f"{rec.num_classes} classes, inputs {rec.input_shape}")


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="rebuild every table and figure from results/ "
                                       "(trains nothing)")
    p.add_argument("--results", type=Path, default=Path("results/default"),
                   help="a study's folder (results/<study>; default: the embedded grid's)")
    p.add_argument("--strict", action="store_true",
                   help="fail, writing nothing, when runs are missing, extra (not in the "
                        "plan), duplicated or mixed (specs or code revisions)")
    p.add_argument("--no-figures", action="store_true",
                   help="tables only (skips matplotlib: a quick rerun)")
    p.set_defaults(func=_run_report)


def _run_report(args) -> None:
    from .report import write_report

    if not args.results.is_dir():
        raise UserError(f"results folder {args.results} does not exist")
    if not (args.results / "runs").is_dir():
        studies = sorted(p.name for p in args.results.iterdir()
                         if (p / "runs").is_dir() or (p / "expected_runs.json").is_file())
        if studies:
            raise UserError(f"{args.results} holds studies ({', '.join(studies)}): name one, "
                            f"e.g. --results {args.results / studies[0]}")
    written = write_report(args.results, strict=args.strict, figures=not args.no_figures)
    print(f"wrote {len(written)} files under {args.results}/tables and {args.results}/figures")


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="did RESULTS reproduce REFERENCE? (each a study folder "
                                       "or a bundle): per-cell equivalence, verdicts, ranks")
    p.add_argument("reference", type=Path, help="results/<study> or a .tar.gz bundle")
    p.add_argument("results", type=Path, help="results/<study> or a .tar.gz bundle")
    p.add_argument("--margin", type=float, default=1.0,
                   help="equivalence margin in percentage points (default 1.0)")
    p.add_argument("--out", type=Path, help="also write compare.md and tidy CSVs here")
    p.add_argument("--fail-on", choices=["differs", "inconclusive", "moved"],
                   help="exit 1 when: differs: any cell is labelled better or worse (beyond "
                        "the margin, above or below the reference), or a matched run is not "
                        "comparable; inconclusive: as differs, and also when any cell is "
                        "inconclusive; moved: as differs, and also when any matched run's "
                        "numbers are not bit-identical (a rerun of the same code on the same "
                        "arithmetic)")
    p.add_argument("--platform", type=Path, metavar="FINGERPRINT",
                   help="the arithmetic fingerprint of the machine that made REFERENCE (`noisykd "
                        "fingerprint --out FILE`): on a machine whose fingerprint differs, "
                        "bit-identity is not expected and --fail-on moved acts as differs")
    p.set_defaults(func=_run_compare)


def _add_fingerprint(sub) -> None:
    p = sub.add_parser("fingerprint", help="this machine's arithmetic fingerprint (torch build, "
                                           "CPU kernels, processor) as JSON: machines that "
                                           "share it rerun a spec bit for bit")
    p.add_argument("--out", type=Path, help="also write it to this file")
    p.set_defaults(func=_run_fingerprint)


def _run_fingerprint(args) -> int:
    import json

    from .arithmetic import fingerprint
    from .runinfo import atomic_write_text

    text = json.dumps(fingerprint(), indent=2) + "\n"
    print(text, end="")
    if args.out is not None:
        atomic_write_text(args.out, text)
    return 0


def _run_compare(args) -> int:
    from .compare import compare, markdown, write_outputs
    from .vocabulary import INCONCLUSIVE

    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    fail_on, note = args.fail_on, None
    if args.platform is not None:
        from .arithmetic import differences, fingerprint, read

        ref_platform = read(args.platform)  # a bad file fails before the comparison
        differ = differences(ref_platform, fingerprint())
        if differ and fail_on == "moved":
            fail_on = "differs"
            note = (f"noisykd compare: this machine's arithmetic differs from {args.platform} "
                    f"({'; '.join(differ)}): bit-identity is not expected here, so --fail-on "
                    "moved acts as --fail-on differs")
    result = compare(args.reference, args.results, args.margin)
    text = markdown(result, str(args.reference), str(args.results))
    print(text)
    if args.out is not None:
        write_outputs(result, args.out, text)
    if note:
        print(note, file=sys.stderr)
    differs = result.n_differs + len(result.not_comparable)  # better or worse
    failing = {"differs": differs,
               "inconclusive": differs + result.count(INCONCLUSIVE),
               "moved": differs + result.n_moved}
    if fail_on and failing[fail_on]:
        what = "cells and runs" if fail_on == "moved" else "cells"
        print(f"noisykd compare: {failing[fail_on]} {what} fail --fail-on {fail_on}",
              file=sys.stderr)
        return 1
    return 0


def _add_bundle(sub) -> None:
    p = sub.add_parser("bundle", help="results bundles: export a study to one file, verify "
                                      "one, import one into a study folder")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    e = verbs.add_parser("export", help="write a study's runs, labels, config and plan (and "
                                        "with --with-teachers the teacher models) to a .tar.gz")
    e.add_argument("--results", type=Path, required=True, help="the study folder")
    e.add_argument("--out", type=Path, required=True, help="FILE.tar.gz")
    e.add_argument("--with-teachers", action="store_true",
                   help="add the teachers' model files (model_last.pt, model_best.pt)")
    e.add_argument("--alpha", choices=("full", "summary"), default="full",
                   help="ALM runs' weights: full (each alpha.npz, every instance and refresh) "
                        "or summary (alpha_summary.json: what the tables and figures need, "
                        "a fraction of the size)")
    e.add_argument("--teachers-only", action="store_true",
                   help="teachers (with their models), labels and config only: a teacher zoo")
    e.add_argument("--config", type=Path, help="the study's config when it has no config.yaml")
    for key in ("dataset", "noise", "setup", "method"):
        e.add_argument(f"--{key}", action="append", default=[],
                       help=f"only these {key}s (repeatable)")
    v = verbs.add_parser("verify", help="check every checksum and spec hash of a bundle")
    v.add_argument("bundle", type=Path)
    i = verbs.add_parser("import", help="verify a bundle, then copy its files into a study "
                                        "folder (never overwriting other content)")
    i.add_argument("bundle", type=Path)
    i.add_argument("--results", type=Path, required=True, help="the study folder to fill")
    for q in (v, i):  # benchmark/bundle.py MAX_MEMBER, MAX_TOTAL
        q.add_argument("--max-member-size", metavar="SIZE", default="2G",
                       help="refuse a bundle holding a file larger than this (default 2G; "
                            "K, M, G, T: binary units)")
        q.add_argument("--max-total-size", metavar="SIZE", default="16G",
                       help="refuse a bundle whose files add up to more (default 16G)")
    p.set_defaults(func=_run_bundle)


def _bundle_limits(args):
    from .bundle import Limits, parse_size

    return Limits(parse_size(args.max_member_size, "--max-member-size"),
                  parse_size(args.max_total_size, "--max-total-size"))


def _run_bundle(args) -> int:
    from . import bundle

    try:
        if args.verb == "export":
            filters = bundle.Filters(tuple(args.dataset), tuple(args.noise), tuple(args.setup),
                                     tuple(args.method))
            m = bundle.export(args.results, args.out, filters,
                              with_teachers=args.with_teachers or args.teachers_only,
                              teachers_only=args.teachers_only, config=args.config,
                              alpha=args.alpha)
            kinds = [r["kind"] for r in m["runs"]]
            from .runinfo import file_sha256

            print(f"wrote {args.out}: {len(m['files'])} files, {kinds.count('student')} runs, "
                  f"{kinds.count('teacher')} teachers of study {m['study']}; sha256 "
                  f"{file_sha256(args.out)}")
        elif args.verb == "verify":
            c = bundle.verify(args.bundle, _bundle_limits(args))
            print(f"{args.bundle}: verified ({c['files']} files, {c['runs']} runs, "
                  f"{c['teachers']} teachers of study {c['study']})")
            for e in c["trained_by"]:  # the manifest's invocation log (benchmark/studylog.py)
                git = e.get("git") or {}
                print(f"  trained {e.get('trained_now')} runs in {e.get('wall_time_s', 0) / 60:.1f}"
                      f" min on {e.get('started', '?')}: {e.get('command')} (git "
                      f"{(git.get('commit') or '?')[:10]}{' dirty' if git.get('dirty') else ''}"
                      f", {(e.get('host') or {}).get('cpus')} CPUs)")
        else:
            c = bundle.import_bundle(args.bundle, args.results, _bundle_limits(args))
            print(f"imported {args.bundle} into {args.results}: {c['written']} files written, "
                  f"{c['present']} already there ({c['runs']} runs, {c['teachers']} teachers "
                  f"of study {c['study']}); tables: noisykd report --results {args.results}")
    except bundle.BundleInvalid as exc:
        problems = bundle.summary_lines(exc.args[0])
        print(f"noisykd bundle {args.verb}: {args.bundle} failed verification "
              f"({len(exc.args[0])} problems)"
              + ("; nothing was written:" if args.verb == "import" else ":"), file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def _add_job_failed(sub) -> None:
    p = sub.add_parser("job-failed", help="print a failed workflow job's cause from its log "
                                          "and exit 1 (what the workflow's rules call)")
    p.add_argument("rule")
    p.add_argument("log", type=Path)
    p.set_defaults(func=_run_job_failed)


def _run_job_failed(args) -> int:
    from .jobconsole import report_failure

    report_failure(args.rule, args.log)
    return 1


def _add_forget(sub) -> None:
    p = sub.add_parser("forget", help="remove runs (their folder and checkpoints) so that the "
                                      "next snakemake trains them again from scratch")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="e.g. results/default/runs/digits/symmetric_0.40/none/ce/seed3")
    p.set_defaults(func=_run_forget)


def _run_forget(args) -> None:
    from .forget import forget

    for line in forget(args.run_dirs):
        print(line)
    print("the next snakemake (the same command as before) trains them again")


def _add_perf(sub) -> None:
    from .perf import COST_MODEL_ARCHS, DEFAULT_ARCHS

    p = sub.add_parser("perf", help="measure training throughput (naive loop, engine, "
                                     "compiled), method costs and concurrency; or estimate a "
                                     "grid's device-hours")
    p.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    p.add_argument("--n", type=int, default=4096, help="random CIFAR-shaped images")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs after a warm-up")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile path")
    p.add_argument("--no-students", action="store_true", help="skip the method costs")
    p.add_argument("--concurrency", default="1,2,4,8",
                   help="concurrent cifar_resnet8 runs to measure ('' to skip)")
    p.add_argument("--cost-model-archs", nargs="*", default=list(COST_MODEL_ARCHS),
                   help="further architectures timed on the engine paths only, for --estimate")
    p.add_argument("--teacher", default="cifar_resnet56",
                   help="teacher architecture of the method-cost phase")
    p.add_argument("--budget-s", type=float,
                   help="start no phase after this many seconds (skipped phases are listed)")
    p.add_argument("--json", type=Path, help="write the results here (after every phase)")
    p.add_argument("--estimate", type=Path, metavar="CONFIG",
                   help="estimate device-hours of CONFIG's grid from --measured")
    p.add_argument("--measured", type=Path, help="a perf JSON (with --estimate)")
    p.add_argument("--targets", action="store_true",
                   help="with --estimate: also list the performance targets, met or not")
    p.add_argument("--variant", choices=["engine", "compiled", "cudagraphs"],
                   help="with --estimate: cost this training path instead of the one the "
                        "config's runtime block selects")
    p.set_defaults(func=_run_perf)


def _run_perf(args) -> None:
    from .perf import main_perf

    main_perf(args)


def _add_teacher(sub) -> None:
    p = sub.add_parser("teacher", help="train a teacher with CE on the noisy (or clean) labels")
    _add_training_options(p)
    p.add_argument("--teacher-labels", default="noisy",
                   help="noisy (default) or clean: the labels the teacher trains on")
    p.set_defaults(func=_run_training)


def _add_student(sub) -> None:
    p = sub.add_parser("student", help="train a student with a method, from trained teachers")
    _add_training_options(p)
    p.add_argument("--method", default="ce", help="method name (see methods/)")
    p.add_argument("--hparam", action="append", metavar="KEY=VALUE",
                   help="method hyper-parameter (repeatable)")
    p.add_argument("--teacher", action="append", type=Path, metavar="DIR",
                   help="trained teacher folder (repeat for several teachers)")
    p.add_argument("--teacher-checkpoint", default="last", help="last (default) or best_val")
    p.set_defaults(func=_run_training)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noisykd",
        description="NoisyKD Bench: knowledge distillation under label noise.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_labels(sub)
    _add_labels_summary(sub)
    _add_datasets(sub)
    _add_teacher(sub)
    _add_student(sub)
    _add_train_runs(sub)
    _add_prepare_data(sub)
    _add_report(sub)
    _add_forget(sub)
    _add_compare(sub)
    _add_fingerprint(sub)
    _add_bundle(sub)
    _add_job_failed(sub)
    _add_perf(sub)
    return parser


#: commands whose --out is one file to write (the others' --out is a folder)
FILE_OUT = {"labels", "labels-summary", "prepare-data", "fingerprint", "bundle export"}


def _check_out(args) -> None:
    """Refuse an --out that cannot be written, before any work starts: a file output that
    names a folder, a folder output that names a file, or a path under a file or under a
    folder this process cannot write."""
    import os

    out = getattr(args, "out", None)
    if out is None or str(out) == "-":
        return
    out = Path(out)
    command = " ".join(filter(None, [args.command, getattr(args, "verb", None)]))
    is_file = command in FILE_OUT
    if is_file and out.is_dir():
        raise UserError(f"--out {out} is a folder; name the file to write")
    if not is_file and out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    parent = (out if not is_file and out.is_dir() else out.parent).absolute()
    while not parent.exists():  # the nearest existing folder is where the writing starts
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"--out {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {parent} is not writable")


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system failure: what failed, on which path."""
    import errno

    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    what = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted",
            errno.ENAMETOOLONG: "file name too long"}.get(exc.errno,
                                                          exc.strerror or str(exc))
    return f"{where}: {what}" if where else what


def main(argv: list[str] | None = None) -> int:
    import os

    args = build_parser().parse_args(argv)
    try:
        _check_out(args)
        status = args.func(args)
    except UserError as exc:
        print(f"noisykd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder: the environment, in one line
        if os.environ.get("NOISYKD_TRACEBACK"):
            raise
        print(f"noisykd {args.command}: error: {os_error_line(exc)} (NOISYKD_TRACEBACK=1 "
              "shows the traceback)", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
