"""`noisykd perf`: measured throughput of the training paths, and a cost model for a grid.

In one process, alternating epoch by epoch, on random tensors shaped like CIFAR (3x32x32,
100 classes; no download): (a) a naive loop (fp32, eager, each batch gathered from CPU
memory and augmented image by image, then copied to the device), (b) the engine as the
suite runs it (data on the device, batched on-device augmentation, bf16 autocast and
channels_last on CUDA), (c) the engine compiled (torch.compile). Then students: ce, kd with
a cifar_resnet56 teacher, almkd per epoch including one refresh, almkd_full per step; and
the aggregate throughput of 1, 2, 4, 8 concurrent cifar_resnet8 runs (separate processes,
as a workstation profile with several GPU slots would run them).

``--estimate CONFIG`` turns a perf JSON into device-hours for a config's whole grid.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .errors import UserError

DEFAULT_ARCHS = ("cifar_resnet8", "cifar_resnet56", "wrn_40_2", "small_resnet18")
# training FLOPs per image (forward + backward ~ 3x forward) for the peak-fraction figure
TRAIN_GFLOP_PER_IMAGE = {"small_resnet18": 3.3}
POOL_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "fashion_mnist": 60_000,
              "digits": 1_437, "synthetic": 9_000}


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fake_setup(n: int, device, compile_: bool, arch: str, method: str = "ce",
                teacher: str | None = None, hparams: dict | None = None, epochs: int = 3):
    """A Trainer over random CIFAR-shaped data, ready for _train_epoch calls."""
    import numpy as np
    import torch

    from methods import build_method

    from .data.record import make_record
    from .device_data import DeviceData
    from .engine import Trainer, use_channels_last
    from .labels import LabelsRequest, build_labels, read_labels
    from .models import create_model
    from .noise import NoiseSpec
    from .runinfo import write_npz_atomic
    from .trainconfig import TrainConfig

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = np.arange(n) % 100
    rec = make_record("cifar100", x, y, x[:512], y[:512], [str(i) for i in range(100)],
                      "official")
    tmp = Path(tempfile.mkdtemp(prefix="noisykd-perf-"))
    write_npz_atomic(tmp / "l.npz", build_labels(
        LabelsRequest("cifar100", NoiseSpec("symmetric", 0.2), 0), rec))
    lf = read_labels(tmp / "l.npz")
    cfg = TrainConfig(epochs=epochs, batch_size=128, device=str(device), compile=compile_)
    data = DeviceData(rec, lf, device, channels_last=use_channels_last(cfg, device))
    torch.manual_seed(0)
    teachers = [create_model(teacher, 100, (3, 32, 32)).eval()] if teacher else []
    trainer = Trainer(model=create_model(arch, 100, (3, 32, 32)), data=data,
                      method=build_method(method, **(hparams or {})), teachers=teachers,
                      cfg=cfg, seed=0, role="student", run_id=f"perf-{arch}-{method}",
                      spec_hash="perf", checkpoint_dir=tmp, log_path=tmp / "log.csv",
                      progress=False)
    return trainer, rec, lf


def _naive_epoch(model, opt, x_cpu, y_cpu, mean, std, device, rng, batch=128):
    import numpy as np
    import torch
    import torch.nn.functional as F

    model.train()
    order = rng.permutation(len(y_cpu))
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        imgs = []
        for i in idx:
            img = np.pad(x_cpu[i], ((0, 0), (4, 4), (4, 4)))
            oy, ox = rng.integers(0, 9, 2)
            img = img[:, oy:oy + 32, ox:ox + 32]
            if rng.random() < 0.5:
                img = img[:, :, ::-1]
            imgs.append(np.ascontiguousarray(img))
        xb = torch.from_numpy(np.stack(imgs)).float().div_(255)
        xb = ((xb - mean) / std).to(device)
        loss = F.cross_entropy(model(xb), torch.from_numpy(y_cpu[idx]).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)


def _peak_memory_mb(device) -> float:
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_paths(arch: str, n: int, epochs: int, device, compile_: bool) -> dict:
    """Images/s of the naive loop, the engine and the compiled engine, alternated."""
    import numpy as np
    import torch

    from .models import create_model

    trainer, rec, lf = _fake_setup(n, device, False, arch, epochs=epochs + 1)
    compiled = _fake_setup(n, device, True, arch, epochs=epochs + 1)[0] if compile_ else None
    torch.manual_seed(0)
    naive = create_model(arch, 100, (3, 32, 32)).to(device)
    opt = torch.optim.SGD(naive.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    x_cpu, y_cpu = rec.train_x[lf.arrays["train_idx"]], lf.arrays["train_noisy"]
    mean = torch.tensor(rec.mean).view(1, 3, 1, 1)
    std = torch.tensor(rec.std).view(1, 3, 1, 1)
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"naive": [], "engine": [], "compiled": []}
    for epoch in range(epochs + 1):  # epoch 0 warms up (and compiles)
        for name, fn in (("naive", lambda: _naive_epoch(naive, opt, x_cpu, y_cpu, mean, std,
                                                         device, rng)),
                         ("engine", lambda e=epoch: trainer._train_epoch(e)),
                         ("compiled", (lambda e=epoch: compiled._train_epoch(e))
                          if compiled else None)):
            if fn is None:
                continue
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if epoch:
                times[name].append(time.perf_counter() - t0)
    n_train = len(y_cpu)
    out = {"arch": arch, "n_train": n_train, "epochs": epochs}
    for name, ts in times.items():
        if ts:
            out[f"{name}_img_s"] = round(n_train / statistics.median(ts), 1)
    out["engine_over_naive"] = round(out["engine_img_s"] / out["naive_img_s"], 2)
    if "compiled_img_s" in out:
        out["compiled_over_naive"] = round(out["compiled_img_s"] / out["naive_img_s"], 2)
    if arch in TRAIN_GFLOP_PER_IMAGE:
        best = max(out.get("compiled_img_s", 0), out["engine_img_s"])
        out["achieved_tflops"] = round(best * TRAIN_GFLOP_PER_IMAGE[arch] / 1e3, 1)
    out["peak_memory_mb"] = round(_peak_memory_mb(device), 1)
    return out


def bench_students(n: int, device) -> dict:
    """Seconds per epoch for ce, kd, almkd (epoch with a refresh) and almkd_full per step."""
    out = {}
    for method, hp in (("ce", {}), ("kd", {}), ("almkd", {"meta_start": 1, "meta_every": 1}),
                       ("almkd_full", {"meta_start": 0})):
        teacher = None if method == "ce" else "cifar_resnet56"
        trainer = _fake_setup(n, device, False, "cifar_resnet8", method, teacher, hp)[0]
        trainer.ctx.lr = 0.1
        trainer.method.on_epoch_start(0, trainer.ctx)
        trainer._train_epoch(0)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        trainer.ctx.epoch = 1
        trainer.method.on_epoch_start(1, trainer.ctx)  # almkd refreshes here
        trainer._train_epoch(1)
        _sync(device)
        out[method] = time.perf_counter() - t0
    steps = math.ceil(int(n * 0.9) / 128)
    res = {f"{m}_s_per_epoch": round(v, 3) for m, v in out.items()}
    res["almkd_over_kd"] = round(out["almkd"] / out["kd"], 2)
    res["almkd_full_over_kd_per_step"] = round((out["almkd_full"] / steps)
                                               / (out["kd"] / steps), 2)
    res["kd_over_ce"] = round(out["kd"] / out["ce"], 2)
    return res


def _concurrent_worker(args):
    n, epochs, device_name, k = args
    import os

    import torch

    device = torch.device(device_name)
    if device.type == "cpu":  # share the cores instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // k))
    trainer = _fake_setup(n, device, False, "cifar_resnet8", epochs=epochs + 1)[0]
    trainer._train_epoch(0)
    _sync(device)
    t0 = time.perf_counter()
    for e in range(1, epochs + 1):
        trainer._train_epoch(e)
    _sync(device)
    return int(n * 0.9) * epochs, time.perf_counter() - t0


def bench_concurrency(n: int, epochs: int, device, counts=(1, 2, 4, 8)) -> dict:
    """Aggregate images/s of K concurrent cifar_resnet8 runs in separate processes."""
    import multiprocessing as mp

    out = {}
    ctx = mp.get_context("spawn")
    for k in counts:
        with ctx.Pool(k) as pool:
            t0 = time.perf_counter()
            results = pool.map(_concurrent_worker, [(n, epochs, str(device), k)] * k)
            wall = time.perf_counter() - t0
        images = sum(r[0] for r in results)
        slowest = max(r[1] for r in results)
        out[str(k)] = {"aggregate_img_s": round(images / slowest, 1),
                       "wall_s_incl_start": round(wall, 1)}
    return out


def run_perf(archs, n: int, epochs: int, device_name: str, compile_: bool,
             students: bool, concurrency: list[int]) -> dict:
    import torch

    from .engine import resolve_device

    device = resolve_device(device_name)
    info = {"device": str(device), "torch": torch.__version__,
            "card": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "n": n, "epochs": epochs}
    result = {"info": info, "paths": [bench_paths(a, n, epochs, device, compile_)
                                      for a in archs]}
    if students:
        result["students"] = bench_students(n, device)
    if concurrency:
        result["concurrency"] = bench_concurrency(n, epochs, device, concurrency)
    return result


def format_perf(result: dict) -> str:
    from tabulate import tabulate

    rows = [[p["arch"], p.get("naive_img_s"), p.get("engine_img_s"), p.get("compiled_img_s", "-"),
             p.get("engine_over_naive"), p.get("compiled_over_naive", "-"),
             p.get("peak_memory_mb")] for p in result["paths"]]
    text = [f"device: {result['info']['card']} ({result['info']['device']}), torch "
            f"{result['info']['torch']}, {result['info']['n']} images, "
            f"{result['info']['epochs']} timed epochs",
            tabulate(rows, headers=["arch", "naive img/s", "engine img/s", "compiled img/s",
                                    "engine/naive", "compiled/naive", "peak MB"],
                     tablefmt="github")]
    if "students" in result:
        text.append("students (cifar_resnet8, teacher cifar_resnet56): " +
                    ", ".join(f"{k} {v}" for k, v in result["students"].items()))
    if "concurrency" in result:
        text.append("concurrent cifar_resnet8 runs: " + ", ".join(
            f"{k}: {v['aggregate_img_s']} img/s" for k, v in result["concurrency"].items()))
    return "\n".join(text)


# ---- cost model ----------------------------------------------------------------------------

def estimate(config: dict, perf: dict) -> dict:
    """Device-hours of a config's grid from measured throughputs.

    A run costs epochs x n_train / throughput. Throughput per architecture is the engine's
    measured CE training images/s (compiled where measured); an architecture that was not
    measured is an error. A student with teachers adds each teacher's forward pass, taken as
    one third of that teacher's training time per image (forward ~ 1/3 of forward+backward),
    and ALM methods multiply by the measured almkd/kd (or almkd_full/kd) ratio.
    """
    from .grid import plan

    p = plan(config)
    ips = {r["arch"]: max(r.get("engine_img_s", 0), r.get("compiled_img_s", 0))
           for r in perf["paths"]}
    st = perf.get("students", {})
    factor = {"almkd": st.get("almkd_over_kd", 1.0), "amal": st.get("almkd_over_kd", 1.0),
              "almkd_full": st.get("almkd_full_over_kd_per_step", 1.0)}
    val = config.get("val_fraction", 0.1)
    seconds = {"teachers": 0.0, "students": 0.0}
    missing = set()
    for r in p.teacher_runs + p.student_runs:
        if r.dataset not in POOL_SIZES:
            raise UserError(f"--estimate: no training-set size known for {r.dataset!r}")
        n_train = POOL_SIZES[r.dataset] * (1 - val)
        per_image = 0.0
        for arch, share in [(r.arch, 1.0)] + [(t.split("/")[4].replace("-cleanT", ""), 1 / 3)
                                              for t in r.teachers]:
            if arch not in ips or not ips[arch]:
                missing.add(arch)
                continue
            per_image += share / ips[arch]
        per_image *= factor.get(r.method, 1.0) if r.kind == "student" else 1.0
        seconds["teachers" if r.kind == "teacher" else "students"] += (
            dict(r.train)["epochs"] * n_train * per_image)
    if missing:
        raise UserError(f"--estimate: the perf results have no throughput for "
                        f"{', '.join(sorted(missing))}; measure them with "
                        f"`noisykd perf --archs {' '.join(sorted(missing))}`")
    return {"runs": len(p.teacher_runs) + len(p.student_runs),
            "teacher_hours": round(seconds["teachers"] / 3600, 1),
            "student_hours": round(seconds["students"] / 3600, 1),
            "total_hours": round(sum(seconds.values()) / 3600, 1),
            "card": perf["info"].get("card")}


def main_perf(args) -> None:
    if not args.estimate and args.n < 1024:
        raise UserError(f"--n must be at least 1024 (a stratified 10% validation split needs "
                        f"one image per class of 100), got {args.n}")
    if args.estimate:
        import yaml

        if not args.measured or not Path(args.measured).is_file():
            raise UserError("--estimate needs --measured PERF.json from an earlier "
                            "`noisykd perf --json PERF.json` on the card to estimate for")
        config = yaml.safe_load(Path(args.estimate).read_text())
        perf = json.loads(Path(args.measured).read_text())
        est = estimate(config, perf)
        print(f"{args.estimate}: {est['runs']} runs, about {est['total_hours']} device-hours "
              f"on {est['card']} ({est['teacher_hours']} for teachers, {est['student_hours']} "
              "for students), one run at a time")
        return
    result = run_perf(args.archs, args.n, args.epochs, args.device, not args.no_compile,
                      not args.no_students, [int(k) for k in args.concurrency.split(",")
                                             if k.strip()])
    print(format_perf(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    sys.stdout.flush()
