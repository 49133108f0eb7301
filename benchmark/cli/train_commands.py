"""The training commands: teacher, student, train-runs, perf. Each ``add_*`` adds a subparser
whose command imports what it needs when it runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.core.errors import UserError


def add_training_options(p) -> None:
    from benchmark.spec.protocol import PROTOCOLS
    from benchmark.spec.trainconfig import AUGMENTS, COMPILE_MODES, DEVICES, SCHEDULES, TrainConfig

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
    g.add_argument("--schedule", default=d.schedule, help=", ".join(SCHEDULES))
    g.add_argument("--milestones", default=",".join(map(str, d.milestones)),
                   help="epochs at which a step schedule multiplies the lr by --gamma")
    g.add_argument("--gamma", type=float, default=d.gamma)
    g.add_argument("--augment", default=d.augment, help=", ".join(AUGMENTS))
    g.add_argument("--protocol", default=d.protocol,
                   help=f"{', '.join(PROTOCOLS)} (default {d.protocol}); authors: reproduce "
                        "the ALM-KD authors' released code where it differs "
                        "(docs/reproduction-notes.md)")
    g = p.add_argument_group("runtime (not part of the run's identity)")
    g.add_argument("--device", default=d.device, help=DEVICES)
    g.add_argument("--amp", default=d.amp, help="bf16 autocast: auto (CUDA only), on, off")
    g.add_argument("--channels-last", default=d.channels_last, help="auto (CUDA only), on, off")
    g.add_argument("--compile", action="store_true", help="torch.compile the models")
    g.add_argument("--compile-mode", default=d.compile_mode,
                   help="torch.compile mode with --compile: " + ", ".join(COMPILE_MODES)
                        + " (reduce-overhead: CUDA graphs)")
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
    add_share_option(g)


def add_share_option(p) -> None:
    p.add_argument("--share-teacher-work", action=argparse.BooleanOptionalAction, default=True,
                   help="compute the teachers' logits once and share them between epochs, "
                        "refreshes and the runs of this process where they are exact (no "
                        "augmentation, teachers whose output ignores their mode); "
                        "--no-share-teacher-work: a teacher pass per batch (the same arithmetic)")


def _train_config(args):
    from benchmark.spec.trainconfig import TrainConfig

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


def parse_hparams(items: list[str]) -> dict:
    """``--hparam KEY=VALUE`` values read as YAML (4 is an integer, 4.0 a number, null null),
    and 1e3 as the number YAML 1.1 reads as text; ``methods.catalog.check_hparams`` checks
    them."""
    import re

    import yaml

    from methods.hparam_types import NUMBER_TEXT

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
        if (isinstance(out[key], str) and NUMBER_TEXT.fullmatch(out[key])
                and re.search("[eE]", out[key])):
            out[key] = float(out[key])
    return out


def _run_training(args) -> None:
    from benchmark.plan.specs import RunSpec
    from benchmark.training.run import RunOptions, run
    from methods.catalog import check_hparams

    cfg = _train_config(args)
    method = getattr(args, "method", "ce")
    hparams = parse_hparams(getattr(args, "hparam", None) or [])
    check_hparams(method, hparams)  # before anything is read or written
    from benchmark.training.engine import resolve_device

    resolve_device(cfg.device)  # a device this machine lacks, before the run's folders
    spec = RunSpec(args.command, args.dataset, args.labels, args.arch, args.seed, args.out, cfg,
                   method, hparams, getattr(args, "teacher", None) or [],
                   getattr(args, "teacher_labels", "noisy"),
                   getattr(args, "teacher_checkpoint", "last"), args.data_root)
    metrics = run(spec, RunOptions(args.checkpoint_dir, args.threads, args.progress,
                                   args.run_id, args.share_teacher_work))
    if metrics:
        print(f"{metrics['run_id']}: test acc {metrics['test_acc_best_val']:.4f} at best val "
              f"epoch {metrics['best_epoch']}, {metrics['test_acc_last']:.4f} at the last "
              f"({metrics['images_per_s']:.0f} img/s on {metrics['provenance']['device']})")


def add_train_runs(sub) -> None:
    p = sub.add_parser("train-runs", help="train a list of runs given as JSON (what workflow "
                                          "jobs call; finished runs are skipped)")
    given = p.add_mutually_exclusive_group(required=True)
    given.add_argument("--runs", help="JSON list of run specs (benchmark/plan/specs.py: "
                                      "RunSpec.to_json); every spec is checked before the "
                                      "first trains; an empty list trains nothing and exits 0")
    given.add_argument("--runs-file", type=Path,
                       help="the same JSON in a file, or - for standard input (workflow jobs: "
                            "a long spec list stays off the command line)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--progress", dest="progress", action="store_true", default=None)
    add_share_option(p)
    p.set_defaults(func=_run_train_runs)


def _run_train_runs(args) -> None:
    import json

    from benchmark.core.layout import METRICS
    from benchmark.spec.run_metrics import read_metrics
    from benchmark.training.run import RunOptions, run

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
    from benchmark.plan.specs import RunSpec

    if not isinstance(specs, list):
        kinds = {dict: "an object", str: "a string", bool: "true or false", type(None): "null"}
        raise UserError(f"{source} must be a JSON list of run specs (objects), got "
                        f"{kinds.get(type(specs), 'a number')}")
    # every spec checked before the first one trains
    requests = [RunSpec.from_json(s, f"{source}: run {i}") for i, s in enumerate(specs)]
    if requests:
        from benchmark.training.engine import resolve_device

        for device in sorted({r.cfg.device for r in requests}):
            resolve_device(device)  # a device this machine lacks
    options = RunOptions(threads=args.threads, progress=args.progress,
                         share_teacher_work=args.share_teacher_work)
    from benchmark.training.engine import TrainingDiverged

    trained, best, diverged = 0, None, []
    for req in requests:
        try:
            metrics = run(req, options)
        except TrainingDiverged as exc:
            # a run's own outcome (its hyper-parameters at this lr): the job's other runs
            # still train, and the job fails at the end naming it
            print(f"noisykd train-runs: {exc}", file=sys.stderr)
            diverged.append(exc)
            continue
        if metrics:
            trained += 1
            print(f"{metrics['run_id']}: test acc {metrics['test_acc_best_val']:.4f} "
                  f"(best val epoch {metrics['best_epoch']}), {metrics['train_time_s']:.1f} s")
        else:
            metrics = read_metrics(req.out_dir / METRICS, req.kind)
        if best is None or metrics["test_acc_best_val"] > best["test_acc_best_val"]:
            best = metrics
    if best is not None or not diverged:
        print(job_summary(len(requests), trained, best))
    if diverged:
        raise UserError(f"{len(diverged)} of {len(requests)} run(s) diverged, the others "
                        f"finished: {diverged[0]}" + (f" (and {len(diverged) - 1} more above)"
                                                      if len(diverged) > 1 else ""))


def job_summary(n: int, trained: int, best: dict | None) -> str:
    """The job's one line on the console (the workflow prints its log's last line)."""
    if best is None:
        return "done: no runs"
    parts = best["run_id"].split("/")
    return (f"done {'/'.join(parts[:4])}: {n} run(s), {trained} trained, {n - trained} "
            f"reused; best test acc {100 * best['test_acc_best_val']:.2f}% "
            f"({'/'.join(parts[4:])})")


def add_perf(sub) -> None:
    from benchmark.training.perf import COST_MODEL_ARCHS, DEFAULT_ARCHS

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
    p.add_argument("--measured", type=Path,
                   help="with --estimate: a perf JSON (device-hours from throughput), or a "
                        "study's results folder made on this machine, results/<study> (the "
                        "grid's wall time priced from its runs)")
    p.add_argument("--cores", type=int,
                   help="with --estimate and a results folder: cores to run the grid on "
                        "(default: this machine's)")
    p.add_argument("--targets", action="store_true",
                   help="with --estimate: also list the performance targets, met or not")
    p.add_argument("--variant", choices=["engine", "compiled", "cudagraphs"],
                   help="with --estimate: cost this training path instead of the one the "
                        "config's runtime block selects")
    p.set_defaults(func=_run_perf)


def _run_perf(args) -> None:
    from benchmark.training.perf_report import main_perf

    main_perf(args)


def add_teacher(sub) -> None:
    p = sub.add_parser("teacher", help="train a teacher with CE on the noisy (or clean) labels")
    add_training_options(p)
    p.add_argument("--teacher-labels", default="noisy",
                   help="noisy (default) or clean: the labels the teacher trains on")
    p.set_defaults(func=_run_training)


def add_student(sub) -> None:
    p = sub.add_parser("student", help="train a student with a method, from trained teachers")
    add_training_options(p)
    p.add_argument("--method", default="ce", help="method name (see methods/)")
    p.add_argument("--hparam", action="append", metavar="KEY=VALUE",
                   help="method hyper-parameter (repeatable)")
    p.add_argument("--teacher", action="append", type=Path, metavar="DIR",
                   help="trained teacher folder (repeat for several teachers)")
    p.add_argument("--teacher-checkpoint", default="last", help="last (default) or best_val")
    p.set_defaults(func=_run_training)
