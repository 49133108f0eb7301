"""`noisykd perf`'s output: the measured table, the targets it is held to, and the command
(measure, print, estimate a config's cost). The measurements: benchmark/training/perf.py."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.core.atomic import write_json_atomic
from benchmark.core.errors import UserError
from benchmark.plan.cost_model import estimate, format_estimate
from benchmark.training.perf import ENGINE_VARIANTS, SLOT_SHARE, run_perf


def format_perf(result: dict) -> str:
    from tabulate import tabulate

    variants = result["info"]["variants"]
    rows = []
    for p in result["paths"]:
        rows.append([p["arch"]] + [p.get(f"{v}_img_s", "-") for v in variants]
                    + [p.get(f"{v}_over_naive", "-") for v in variants if v != "naive"]
                    + [" / ".join(str(p.get(f"{v}_compile_s", "-")) for v in variants
                                  if v in ("compiled", "cudagraphs")) or "-",
                       p.get("train_gflop_per_image"), p.get("best_tflops"),
                       p.get("fraction_of_peak", "-"), p.get("peak_memory_mb")])
    headers = ([f"{v} img/s" for v in variants] + [f"{v}/naive" for v in variants
                                                    if v != "naive"]
               + ["compile s", "GFLOP/img", "TFLOP/s", "of peak"])
    info, peak = result["info"], result["peak"]
    headers.append("peak MB" if info["device"].startswith("cuda") else "max RSS MB")
    text = [f"device: {info['card']} ({info['device']}), torch {info['torch']}, {info['n']} "
            f"images, {info['epochs']} timed epochs; measured {peak['dtype']} matrix-product "
            f"peak {peak['tflops']} TFLOP/s",
            tabulate(rows, headers=["arch"] + headers, tablefmt="github")]
    for p in result["paths"]:
        for name, err in p.get("errors", {}).items():
            text.append(f"{p['arch']}: {name} path failed: {err}")
    if "students" in result:
        st = result["students"]
        text.append(
            f"students (cifar_resnet8, teacher {st['teacher']}), relative to kd: almkd "
            f"{st['almkd_epoch_over_kd']} per epoch without a refresh, "
            f"{st['almkd_over_kd_epoch_with_refresh']} with one, "
            f"{st['almkd_over_kd_paper_schedule']} averaged over the paper's 200 epochs; amal "
            f"{st['amal_over_kd_paper_schedule']} averaged; almkd_full "
            f"{st['almkd_full_over_kd_per_step']} per step; kd/ce {st['kd_over_ce']}")
    if "concurrency" in result:
        conc = result["concurrency"]
        text.append("concurrent cifar_resnet8 runs: " + ", ".join(
            f"{k}: {v['aggregate_img_s']} img/s ({v['speedup']}x)" for k, v in conc.items()
            if k != "recommended_slots"))
        k = conc["recommended_slots"]
        text.append(f"recommended: {k} concurrent run(s) per card, the smallest count within "
                    f"{SLOT_SHARE:.0%} of the best aggregate: set `gpu={k}` (times the number "
                    "of cards) under resources in profiles/workstation/config.yaml")
    if result["skipped"]:
        text.append("skipped (time budget): " + ", ".join(result["skipped"]))
    return "\n".join(text)


def targets(perf: dict, est: dict | None, config_name: str) -> list[list]:
    """The performance issue's targets against what was measured: [target, measured, met]."""
    rows = []

    def add(target, value, ok):
        rows.append([target, "not measured" if value is None else value,
                     "-" if value is None else ("yes" if ok else "NO")])

    paths = {p["arch"]: p for p in perf.get("paths", [])}
    for arch in ("cifar_resnet8", "cifar_resnet56"):
        row = paths.get(arch, {})
        ratios = {v: row[f"{v}_over_naive"] for v in ENGINE_VARIANTS if f"{v}_over_naive" in row}
        add(f"{arch} CE: engine >= 3x naive",
            ", ".join(f"{v} {r}x" for v, r in ratios.items()) or None,
            ratios.get("engine", 0) >= 3)
    frac = paths.get("small_resnet18", {}).get("fraction_of_peak")
    add(f"small_resnet18 >= 25% of measured {perf.get('peak', {}).get('dtype', '')} peak",
        None if frac is None else f"{frac:.1%} of {perf['peak']['tflops']} TFLOP/s",
        frac is not None and frac >= 0.25)
    st = perf.get("students", {})
    value = st.get("almkd_over_kd_paper_schedule")
    add("almkd <= 1.25x kd per epoch, averaged over a training", value,
        value is not None and value <= 1.25)
    value = st.get("almkd_full_over_kd_per_step")
    add("almkd_full <= 3.5x kd per step", value, value is not None and value <= 3.5)
    conc = perf.get("concurrency")
    best = max((r["speedup"] for k, r in conc.items() if k != "recommended_slots"),
               default=None) if conc else None
    add(">= 2x aggregate with concurrent cifar_resnet8 runs", best,
        best is not None and best >= 2)
    if est is not None:
        hours = est.get("concurrent_total_hours", est["total_hours"])
        add(f"{config_name} <= 24 device-hours (estimate)",
            f"{est['total_hours']} h one at a time"
            + (f", {hours} h with {est['concurrent_slots']} per card"
               if "concurrent_total_hours" in est else ""), hours <= 24)
    return rows


def main_perf(args) -> None:
    if args.estimate:
        import yaml

        if not args.measured or not (Path(args.measured).is_file()
                                     or Path(args.measured).is_dir()):
            raise UserError("--estimate needs --measured PERF.json from an earlier "
                            "`noisykd perf --json PERF.json` on the card to estimate for, or "
                            "a results folder (results/<study>) made on this machine")
        if not Path(args.estimate).is_file():
            raise UserError(f"--estimate: config {args.estimate} does not exist")
        try:
            config = yaml.safe_load(Path(args.estimate).read_text())
        except yaml.YAMLError as exc:
            raise UserError(f"--estimate: {args.estimate} is not valid YAML: {exc}") from None
        if not isinstance(config, dict):
            raise UserError(f"--estimate: {args.estimate} is not a config (a mapping of keys)")
        if Path(args.measured).is_dir():
            import os

            from benchmark.plan.cost_from_runs import (
                estimate_from_runs,
                format_estimate_from_runs,
            )

            cores = args.cores if args.cores is not None else (os.cpu_count() or 1)
            if cores < 1:
                raise UserError(f"--cores must be at least 1, got {cores}")
            print(format_estimate_from_runs(str(args.estimate), estimate_from_runs(
                config, Path(args.measured), cores)))
            return
        try:
            perf = json.loads(Path(args.measured).read_text())
        except ValueError as exc:
            raise UserError(f"--measured: {args.measured} is not valid JSON: {exc}") from None
        if not (isinstance(perf, dict) and isinstance(perf.get("info"), dict)
                and isinstance(perf.get("paths"), list)):
            raise UserError(f"--measured: {args.measured} is not a `noisykd perf --json` "
                            "result (it needs 'info' and 'paths')")
        est = estimate(config, perf, args.variant)
        print(format_estimate(str(args.estimate), est))
        if args.targets:
            from tabulate import tabulate

            print(f"targets on {perf['info'].get('card')} (torch {perf['info'].get('torch')}):")
            print(tabulate(targets(perf, est, Path(args.estimate).name),
                           headers=["target", "measured", "met"], tablefmt="github"))
        return
    if args.n < 1024:
        raise UserError(f"--n must be at least 1024 (a stratified 10% validation split needs "
                        f"one image per class of 100), got {args.n}")
    if args.epochs < 1:
        raise UserError(f"--epochs must be at least 1 (timed epochs after the warm-up), got "
                        f"{args.epochs}")
    from benchmark.training.models import check_arch

    for arch in [*args.archs, *args.cost_model_archs, args.teacher]:
        check_arch(arch, (3, 32, 32))  # every name checked before any measurement
    try:
        counts = [int(k) for k in args.concurrency.split(",") if k.strip()]
    except ValueError:
        raise UserError(f"--concurrency must be comma-separated integers, got "
                        f"{args.concurrency!r}") from None
    if any(k < 1 for k in counts):
        raise UserError(f"--concurrency counts must be >= 1, got {args.concurrency!r}")

    def save(result):
        if args.json:
            write_json_atomic(args.json, result)

    result = run_perf(args.archs, args.n, args.epochs, args.device, not args.no_compile,
                      not args.no_students, counts, args.cost_model_archs, args.budget_s,
                      args.teacher, on_phase=save)
    save(result)
    print(format_perf(result), flush=True)

