"""`noisykd perf --estimate CONFIG`: device-hours of a config's whole grid from measured speeds.

Whether a user can afford a grid is decided before the first job runs, so this is plain
Python over the planner (no torch) and a perf JSON from the card in question. It is an
estimate from measured per-epoch throughput, not a measurement of the grid:

- a run costs ``epochs x (n_train x train_time_per_image x method_factor + n_eval x
  eval_time_per_image)``;
- ``train_time_per_image`` is ``1 / throughput`` of the run's architecture under the variant
  the config runs (``engine``, ``compiled`` or ``cudagraphs`` from its ``runtime`` block),
  plus a third of that for each teacher's forward pass (forward ~ 1/3 of forward+backward);
- evaluation (validation and test set every epoch) is a forward pass: a third of a
  training image;
- ALM methods multiply the training part by their measured cost relative to kd, with the
  refreshes counted from each run's own schedule (``meta_start``, ``meta_every``, epochs);
  ``almkd_full`` by its per-step ratio for the epochs from ``meta_start`` on;
- with ``concurrency`` measured, cifar_resnet8 runs are also costed at the measured
  aggregate speed-up of the recommended number of runs per card (other architectures were
  not measured concurrently and stay one at a time).
"""

from __future__ import annotations

import math

from benchmark.core.errors import UserError
from benchmark.plan.grid import plan, val_fraction_of
from methods.catalog import CATALOG, HPARAM_DEFAULTS

# training pool (before the validation split) and test set sizes, as the loaders build them
POOL_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "fashion_mnist": 60_000, "digits": 1_437,
              "mnist": 4_000, "synthetic": 9_000}
TEST_SIZES = {"cifar10": 10_000, "cifar100": 10_000, "fashion_mnist": 10_000, "digits": 360,
              "mnist": 1_000, "synthetic": 1_000}
FORWARD_SHARE = 1 / 3


def variant_of_runtime(runtime: dict) -> str:
    """Which measured training path a config's runtime block runs."""
    if not runtime.get("compile"):
        return "engine"
    mode = runtime.get("compile_mode", "default")
    if mode == "default":
        return "compiled"
    if mode == "reduce-overhead":
        return "cudagraphs"
    raise UserError(f"--estimate: runtime.compile_mode {mode!r} is not one that `noisykd perf` "
                    "measures (default, reduce-overhead); pass --variant to cost it as one")


def n_refreshes(epochs: int, meta_start: int, meta_every: int) -> int:
    """Epochs e in [0, epochs) with a refresh, as methods.alm_refresh.refresh_due counts them."""
    return max(0, math.ceil((epochs - meta_start) / meta_every))


def method_factor(method: str, hparams: dict, epochs: int, students: dict) -> float:
    """A run's training cost relative to kd with the same teachers, by the catalog's cost
    class: 1 (cost kd: ce, kd, fixed_alpha, the clean-budget baselines); the epochs plus the
    refreshes measured for the entry's ``priced_as`` (refresh: the ALM methods with a
    last-layer refresh); almkd_full's per-step cost (lookahead: l2rw, mwnet); almkd_full's
    own schedule (exact_lookahead)."""
    entry = CATALOG[method]
    if entry.cost == "lookahead":  # a look-ahead every step: priced as almkd_full's
        per_step = students.get("almkd_full_over_kd_per_step")
        if per_step is None:
            raise UserError("--estimate: the perf results have no almkd_full cost (which "
                            f"prices {method}'s look-ahead); run `noisykd perf` without "
                            "--no-students")
        return per_step
    if entry.cost == "kd":
        return 1.0
    hp = {**HPARAM_DEFAULTS[method], **hparams}
    if entry.cost == "refresh" or hp.get("schedule") == "almkd":
        key = entry.priced_as or "almkd"  # almkd_full's schedule almkd: almkd's refresh
        epoch, refresh = (students.get(f"{key}_epoch_over_kd"),
                          students.get(f"{key}_refresh_over_kd_epoch"))
        if epoch is None or refresh is None:
            raise UserError(f"--estimate: the perf results have no {key} cost; run "
                            "`noisykd perf` without --no-students")
        return epoch + refresh * n_refreshes(epochs, hp["meta_start"], hp["meta_every"]) / epochs
    per_step = students.get("almkd_full_over_kd_per_step")
    if per_step is None:
        raise UserError("--estimate: the perf results have no almkd_full cost; run "
                        "`noisykd perf` without --no-students")
    adaptive = max(0, epochs - hp["meta_start"])
    return ((epochs - adaptive) + adaptive * per_step * hp["full_steps"]) / epochs


def estimate(config: dict, perf: dict, variant: str | None = None) -> dict:
    p = plan(config)
    variant = variant or variant_of_runtime(p.runtime)
    ips = {row["arch"]: row[f"{variant}_img_s"] for row in perf["paths"]
           if row.get(f"{variant}_img_s")}
    students = perf.get("students", {})
    concurrency = perf.get("concurrency", {})
    slots = concurrency.get("recommended_slots")
    speedup = concurrency.get(str(slots), {}).get("speedup") if slots and slots > 1 else None
    teacher_arch = {t.out: t.arch for t in p.teacher_runs}
    subsets = {d["name"]: d.get("train_subset") for d in config["datasets"]
               if isinstance(d, dict)}
    seconds = {"teachers": 0.0, "students": 0.0}
    concurrent_seconds = 0.0
    missing = set()
    for r in p.teacher_runs + p.student_runs:
        if r.dataset not in POOL_SIZES:
            raise UserError(f"--estimate: no training-set size known for {r.dataset!r}")
        archs = [r.arch] + [teacher_arch[t] for t in r.teachers]
        unmeasured = {a for a in archs if a not in ips}
        if unmeasured:
            missing |= unmeasured
            continue
        epochs = dict(r.train)["epochs"]
        val = val_fraction_of(config, r.dataset)
        n_train = subsets.get(r.dataset) or POOL_SIZES[r.dataset] * (1 - val)
        n_eval = POOL_SIZES[r.dataset] * val + TEST_SIZES[r.dataset]
        train_per_image = 1 / ips[r.arch] + sum(FORWARD_SHARE / ips[a] for a in archs[1:])
        factor = method_factor(r.method, dict(r.hparams), epochs, students) \
            if r.kind == "student" else 1.0
        run_s = epochs * (n_train * train_per_image * factor
                          + n_eval * FORWARD_SHARE / ips[r.arch])
        seconds["teachers" if r.kind == "teacher" else "students"] += run_s
        concurrent_seconds += run_s / speedup if speedup and r.arch == "cifar_resnet8" else run_s
    if missing:
        how = "" if variant == "engine" else (
            " without --no-compile" + (" on CUDA" if variant == "cudagraphs" else ""))
        raise UserError(f"--estimate: the perf results have no {variant} throughput for "
                        f"{', '.join(sorted(missing))}; measure them with `noisykd perf "
                        f"--archs {' '.join(sorted(missing))}`{how}")
    out = {"runs": len(p.teacher_runs) + len(p.student_runs), "variant": variant,
           "total_s": sum(seconds.values()), "teacher_s": seconds["teachers"],
           "teacher_hours": round(seconds["teachers"] / 3600, 1),
           "student_hours": round(seconds["students"] / 3600, 1),
           "total_hours": round(sum(seconds.values()) / 3600, 1),
           "card": perf["info"].get("card")}
    if speedup:
        out["concurrent_slots"] = slots
        out["concurrent_total_s"] = concurrent_seconds
        out["concurrent_total_hours"] = round(concurrent_seconds / 3600, 1)
    return out


def format_estimate(config_name: str, est: dict) -> str:
    text = (f"{config_name}: {est['runs']} runs, about {est['total_hours']} device-hours on "
            f"{est['card']} ({est['teacher_hours']} for teachers, {est['student_hours']} for "
            f"students), one run at a time, {est['variant']} path; an estimate from measured "
            "per-epoch throughput")
    if "concurrent_total_hours" in est:
        text += (f"\n  with {est['concurrent_slots']} concurrent runs per card for the "
                 f"cifar_resnet8 runs (measured aggregate speed-up): about "
                 f"{est['concurrent_total_hours']} device-hours")
    return text
