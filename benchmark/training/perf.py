"""`noisykd perf`: measured throughput of the training paths, method costs and concurrency.

Whether the suite's grids are affordable is decided by per-run speed and by how well small
runs fill a card, so this measures them in one process on random tensors shaped like CIFAR
(3x32x32, 100 classes; no download), alternating the paths epoch by epoch so that clock and
thermal drift hit them alike:

- ``naive``: fp32, eager, each batch gathered from CPU memory and augmented image by image,
  then copied to the device;
- ``engine``: the suite's Trainer (data on the device, batched on-device augmentation, bf16
  autocast and channels_last on CUDA);
- ``compiled``: the engine with torch.compile; ``cudagraphs``: with compile mode
  reduce-overhead (CUDA only). The warm-up epoch's extra time is reported as compile time,
  apart from steady-state throughput.

Then a measured matrix-product peak (bf16 on CUDA, fp32 on CPU) and each model's counted
training FLOPs (torch.utils.flop_counter) give the fraction of peak; ce, kd, almkd, amal
(epoch and refresh timed apart) and almkd_full (per step) give the method costs; and 1, 2, 4,
8 concurrent cifar_resnet8 runs in separate processes give the aggregate throughput that a
workstation profile with several GPU slots gets. Results go to JSON after every phase, so a
run cut short by a time limit keeps what it measured.
"""

from __future__ import annotations

import functools
import shutil
import statistics
import tempfile
import time
from pathlib import Path

DEFAULT_ARCHS = ("cifar_resnet8", "cifar_resnet56", "small_resnet18", "wrn_40_2")
# the architectures the targets name are measured first; the rest after the method costs
TARGET_ARCHS = ("cifar_resnet8", "cifar_resnet56", "small_resnet18")
# paper.yaml's multi-teacher architectures: measured on the engine paths for the cost model
COST_MODEL_ARCHS = ("cifar_resnet14", "cifar_resnet26", "cifar_resnet32")
ENGINE_VARIANTS = {"engine": {"compile": False},
                   "compiled": {"compile": True, "compile_mode": "default"},
                   "cudagraphs": {"compile": True, "compile_mode": "reduce-overhead"}}
# the recommended concurrency is the smallest that reaches this share of the best aggregate
SLOT_SHARE = 0.9


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device, fn, *args) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn(*args)
    _sync(device)
    return time.perf_counter() - t0


def _error(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


@functools.cache
def _scratch() -> Path:
    """This process's temporary folder (the labels file; the Trainers' checkpoint and log
    paths, which epoch-level timing never writes), removed when the process exits: through
    multiprocessing's exit hook, which pool workers run and atexit handlers they skip."""
    from multiprocessing.util import Finalize

    folder = tempfile.mkdtemp(prefix="noisykd-perf-")
    Finalize(None, shutil.rmtree, args=(folder, True), exitpriority=0)
    return Path(folder)


@functools.cache
def _fake_data(n: int, device):
    """Random CIFAR-shaped images with 100 classes and their labels, built once per process
    and device and shared by every path and method (training only reads them)."""
    import numpy as np

    from benchmark.core.atomic import write_npz_atomic
    from benchmark.data.labels import LabelsRequest, build_labels, read_labels
    from benchmark.data.noise import NoiseSpec
    from benchmark.data.record import make_record
    from benchmark.spec.trainconfig import TrainConfig
    from benchmark.training.device_data import DeviceData
    from benchmark.training.engine import use_channels_last

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = np.arange(n) % 100
    rec = make_record("cifar100", x, y, x[:512], y[:512], [str(i) for i in range(100)],
                      "official")
    path = _scratch() / f"labels-{n}.npz"
    write_npz_atomic(path, build_labels(
        LabelsRequest("cifar100", NoiseSpec("symmetric", 0.2), 0), rec))
    lf = read_labels(path)
    channels_last = use_channels_last(TrainConfig(device=str(device)), device)
    return rec, lf, DeviceData(rec, lf, device, channels_last=channels_last)


def _fake_trainer(n: int, device, arch: str, method: str = "ce", teacher: str | None = None,
                  hparams: dict | None = None, epochs: int = 3, **runtime):
    """A Trainer over the shared random data, ready for _train_epoch calls."""
    import torch

    from benchmark.spec.trainconfig import TrainConfig
    from benchmark.training.engine import Trainer
    from benchmark.training.models import create_model
    from methods import build_method

    cfg = TrainConfig(epochs=epochs, batch_size=128, device=str(device), **runtime)
    torch.manual_seed(0)
    teachers = [create_model(teacher, 100, (3, 32, 32)).eval()] if teacher else []
    return Trainer(model=create_model(arch, 100, (3, 32, 32)), data=_fake_data(n, device)[2],
                   method=build_method(method, **(hparams or {})), teachers=teachers,
                   cfg=cfg, seed=0, role="student", run_id=f"perf-{arch}-{method}",
                   spec_hash="perf", checkpoint_dir=_scratch(), log_path=_scratch() / "log.csv",
                   progress=False)


class _NaiveLoop:
    """The loop a first attempt would write: fp32, eager, CPU-side per-image augmentation."""

    def __init__(self, arch, rec, lf, device, batch=128):
        import numpy as np
        import torch

        from benchmark.training.models import create_model

        torch.manual_seed(0)
        self.model = create_model(arch, 100, (3, 32, 32)).to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9,
                                   nesterov=True, weight_decay=5e-4)
        self.x, self.y = rec.train_x[lf.arrays["train_idx"]], lf.arrays["train_noisy"]
        self.mean = torch.tensor(rec.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(rec.std).view(1, 3, 1, 1)
        self.rng = np.random.default_rng(0)
        self.device, self.batch = device, batch

    def epoch(self, epoch: int):  # the epoch number is unused: one rng stream
        import numpy as np
        import torch
        import torch.nn.functional as F

        self.model.train()
        order = self.rng.permutation(len(self.y))
        for s in range(0, len(order), self.batch):
            idx = order[s:s + self.batch]
            imgs = []
            for i in idx:
                img = np.pad(self.x[i], ((0, 0), (4, 4), (4, 4)))
                oy, ox = self.rng.integers(0, 9, 2)
                img = img[:, oy:oy + 32, ox:ox + 32]
                if self.rng.random() < 0.5:
                    img = img[:, :, ::-1]
                imgs.append(np.ascontiguousarray(img))
            xb = torch.from_numpy(np.stack(imgs)).float().div_(255)
            xb = ((xb - self.mean) / self.std).to(self.device)
            loss = F.cross_entropy(self.model(xb), torch.from_numpy(self.y[idx]).to(self.device))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()


def train_gflop_per_image(arch: str) -> float:
    """Counted FLOPs of one training image (forward + backward), not a rule of thumb."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from benchmark.training.models import create_model

    model = create_model(arch, 100, (3, 32, 32)).train()
    x, y = torch.randn(2, 3, 32, 32), torch.arange(2)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / 2 / 1e9


def matmul_peak(device) -> dict:
    """The card's matrix-product rate measured here (bf16 on CUDA, fp32 on CPU): the peak
    that the fraction-of-peak figure divides by, rather than a datasheet number."""
    import torch

    cuda = device.type == "cuda"
    n, dtype, reps = (8192, torch.bfloat16, 10) if cuda else (1024, torch.float32, 5)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b

    def run():
        for _ in range(reps):
            a @ b

    seconds = _timed(device, run)
    return {"dtype": str(dtype).replace("torch.", ""), "size": n,
            "tflops": round(2 * n**3 * reps / seconds / 1e12, 3)}


def _peak_memory_mb(device) -> float:
    """CUDA: the most memory allocated since this architecture's paths began (all of them
    together); CPU: the process's peak resident set so far (it only grows)."""
    import resource

    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_paths(arch: str, n: int, epochs: int, device, variants) -> dict:
    """Images/s of each path, alternated epoch by epoch; a path that fails is reported with
    its error and the others go on."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rec, lf, _ = _fake_data(n, device)
    runners, errors = {}, {}
    for name in variants:
        try:
            if name == "naive":
                runners[name] = _NaiveLoop(arch, rec, lf, device).epoch
            else:
                runners[name] = _fake_trainer(n, device, arch, epochs=epochs + 1,
                                              **ENGINE_VARIANTS[name])._train_epoch
        except Exception as exc:  # noqa: BLE001 - report the path as failing, measure the rest
            errors[name] = _error(exc)
    warmup: dict[str, float] = {}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for epoch in range(epochs + 1):  # epoch 0 warms up (and compiles)
        for name, fn in list(runners.items()):
            try:
                seconds = _timed(device, fn, epoch)
            except Exception as exc:  # noqa: BLE001
                errors[name] = _error(exc)
                del runners[name]
                times.pop(name)
                continue
            if epoch:
                times[name].append(seconds)
            else:
                warmup[name] = seconds
    n_train = len(lf.arrays["train_noisy"])
    out = {"arch": arch, "n_train": n_train, "epochs": epochs}
    for name, ts in times.items():
        steady = statistics.median(ts)
        out[f"{name}_img_s"] = round(n_train / steady, 1)
        if name in ("compiled", "cudagraphs"):
            out[f"{name}_compile_s"] = round(warmup[name] - steady, 1)
    for name in times:
        if name != "naive" and "naive_img_s" in out:
            out[f"{name}_over_naive"] = round(out[f"{name}_img_s"] / out["naive_img_s"], 2)
    if errors:
        out["errors"] = errors
    out["peak_memory_mb"] = round(_peak_memory_mb(device), 1)
    return out


def add_flops(row: dict, gflop: float, peak_tflops: float | None) -> dict:
    """Counted GFLOP per training image, the best engine path's TFLOP/s and share of peak."""
    best = max((row.get(f"{v}_img_s", 0) for v in ENGINE_VARIANTS), default=0)
    row["train_gflop_per_image"] = round(gflop, 3)
    row["best_tflops"] = round(best * gflop / 1e3, 2)
    if peak_tflops:
        row["fraction_of_peak"] = round(best * gflop / 1e3 / peak_tflops, 3)
    return row


def bench_students(n: int, device, teacher: str = "cifar_resnet56") -> dict:
    """Seconds per epoch of ce, kd, almkd, amal (refresh timed apart) and almkd_full."""
    from benchmark.plan.cost_model import n_refreshes
    from methods.catalog import ALM_DEFAULTS

    epoch_s, refresh_s = {}, {}
    for method, hp in (("ce", {}), ("kd", {}), ("almkd", {"meta_start": 1, "meta_every": 1}),
                       ("amal", {"meta_start": 1, "meta_every": 1}),
                       ("almkd_full", {"meta_start": 0})):
        trainer = _fake_trainer(n, device, "cifar_resnet8", method,
                                None if method == "ce" else teacher, hp)
        trainer.ctx.lr = 0.1
        trainer.method.on_epoch_start(0, trainer.ctx)
        trainer._train_epoch(0)  # warm-up
        trainer.ctx.epoch = 1
        refresh_s[method] = _timed(device, trainer.method.on_epoch_start, 1, trainer.ctx)
        epoch_s[method] = _timed(device, trainer._train_epoch, 1)
    kd = epoch_s["kd"]
    # averaged over the paper's training: 200 epochs, refreshes on the default schedule
    refreshes = n_refreshes(200, ALM_DEFAULTS["meta_start"], ALM_DEFAULTS["meta_every"])
    res = {"teacher": teacher, **{f"{m}_s_per_epoch": round(v, 3) for m, v in epoch_s.items()}}
    res["kd_over_ce"] = round(kd / epoch_s["ce"], 3)
    for m in ("almkd", "amal"):
        res[f"{m}_refresh_s"] = round(refresh_s[m], 3)
        res[f"{m}_epoch_over_kd"] = round(epoch_s[m] / kd, 3)
        res[f"{m}_refresh_over_kd_epoch"] = round(refresh_s[m] / kd, 3)
        res[f"{m}_over_kd_epoch_with_refresh"] = round((epoch_s[m] + refresh_s[m]) / kd, 3)
        res[f"{m}_over_kd_paper_schedule"] = round(
            (200 * epoch_s[m] + refreshes * refresh_s[m]) / (200 * kd), 3)
    res["almkd_full_over_kd_per_step"] = round(epoch_s["almkd_full"] / kd, 3)
    return res


def _concurrent_worker(args):
    n, epochs, device_name, k = args
    import os

    import torch

    device = torch.device(device_name)
    if device.type == "cpu":  # share the cores instead of oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // k))
    trainer = _fake_trainer(n, device, "cifar_resnet8", epochs=epochs + 1)
    trainer._train_epoch(0)
    _sync(device)
    t0 = time.perf_counter()
    for e in range(1, epochs + 1):
        trainer._train_epoch(e)
    _sync(device)
    return trainer.data.n_train * epochs, time.perf_counter() - t0


def bench_concurrency(n: int, epochs: int, device, counts=(1, 2, 4, 8)) -> dict:
    """Aggregate images/s of K concurrent cifar_resnet8 runs in separate processes (what K
    integer GPU slots in the workstation profile run), and the K to use."""
    import multiprocessing as mp

    out: dict = {}
    ctx = mp.get_context("spawn")
    for k in counts:
        with ctx.Pool(k) as pool:
            t0 = time.perf_counter()
            results = pool.map(_concurrent_worker, [(n, epochs, str(device), k)] * k)
            wall = time.perf_counter() - t0
            pool.close()  # let the workers exit (and clean up) rather than be terminated
            pool.join()
        images = sum(r[0] for r in results)
        slowest = max(r[1] for r in results)
        out[str(k)] = {"aggregate_img_s": round(images / slowest, 1),
                       "wall_s_incl_start": round(wall, 1)}
    base = out[str(min(counts))]["aggregate_img_s"]
    for row in out.values():
        row["speedup"] = round(row["aggregate_img_s"] / base, 2)
    best = max(row["aggregate_img_s"] for row in out.values())
    out["recommended_slots"] = min(k for k in counts
                                   if out[str(k)]["aggregate_img_s"] >= SLOT_SHARE * best)
    return out


def run_perf(archs, n: int, epochs: int, device_name: str, compile_: bool, students: bool,
             concurrency: list[int], cost_model_archs=(), budget_s: float | None = None,
             teacher: str = "cifar_resnet56", on_phase=None) -> dict:
    """Every measurement in order of what it decides (the target architectures, the method
    costs, the cost model's further architectures on the engine path, concurrency, other
    architectures); phases not started within ``budget_s`` are listed as skipped."""
    import torch

    from benchmark.training.engine import resolve_device

    t_start = time.perf_counter()
    device = resolve_device(device_name)
    variants = ["naive", "engine"]
    if compile_:
        variants += ["compiled", "cudagraphs"] if device.type == "cuda" else ["compiled"]
    result: dict = {"info": {"device": str(device), "torch": torch.__version__,
                             "card": torch.cuda.get_device_name(device)
                             if device.type == "cuda" else "cpu",
                             "threads": torch.get_num_threads(), "n": n, "epochs": epochs,
                             "variants": variants},
                    "paths": [], "skipped": []}
    result["peak"] = matmul_peak(device)

    def paths(arch, variants_, epochs_):
        row = bench_paths(arch, n, epochs_, device, variants_)
        result["paths"].append(add_flops(row, train_gflop_per_image(arch),
                                         result["peak"]["tflops"]))

    first = [a for a in archs if a in TARGET_ARCHS]
    phases = [(f"paths {a}", lambda a=a: paths(a, variants, epochs)) for a in first]
    if students:
        phases.append(("students", lambda: result.update(
            students=bench_students(n, device, teacher))))
    phases += [(f"cost model {a}", lambda a=a: paths(a, ["engine"], 1))
               for a in cost_model_archs if a not in archs]
    if concurrency:
        phases.append(("concurrency", lambda: result.update(
            concurrency=bench_concurrency(n, epochs, device, concurrency))))
    phases += [(f"paths {a}", lambda a=a: paths(a, variants, epochs))
               for a in archs if a not in first]
    for name, phase in phases:
        elapsed = time.perf_counter() - t_start
        if budget_s is not None and elapsed > budget_s:
            result["skipped"].append(name)
            print(f"perf: skipped {name} (budget of {budget_s:.0f} s spent)", flush=True)
            continue
        t0 = time.perf_counter()
        phase()
        print(f"perf: {name} took {time.perf_counter() - t0:.1f} s", flush=True)
        result["info"]["wall_s"] = round(time.perf_counter() - t_start, 1)
        if on_phase:
            on_phase(result)
    return result
