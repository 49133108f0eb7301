"""CE training throughput: the engine against a naive loop, measured in one process.

Naive loop: fp32, eager, every batch gathered from CPU memory, augmented image by image on
the CPU (as a DataLoader with per-sample transforms would) and copied to the device. Engine:
what `noisykd student` runs (data on the device, batched on-device augmentation, bf16 and
channels_last on CUDA). Random CIFAR-shaped uint8 data (3x32x32, 100 classes), no download.
The two are alternated epoch by epoch and the median epoch time is reported.

    python scripts/bench_engine.py --archs cifar_resnet8 cifar_resnet56 --n 2048 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.data.record import make_record
from benchmark.device_data import DeviceData
from benchmark.engine import Trainer, resolve_device
from benchmark.labels import LabelsRequest, build_labels, read_labels
from benchmark.models import create_model
from benchmark.noise import NoiseSpec
from benchmark.runinfo import write_npz_atomic
from benchmark.trainconfig import TrainConfig
from methods import build_method


def fake_cifar(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = np.arange(n) % 100
    return make_record("cifar100", x, y, x[:256], y[:256], [str(i) for i in range(100)],
                       "official")


def naive_epoch(model, opt, x_cpu, y_cpu, mean, std, device, batch, rng):
    model.train()
    order = rng.permutation(len(y_cpu))
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        imgs = []
        for i in idx:  # per-image crop and flip on the CPU
            img = np.pad(x_cpu[i], ((0, 0), (4, 4), (4, 4)))
            oy, ox = rng.integers(0, 9, 2)
            img = img[:, oy:oy + 32, ox:ox + 32]
            if rng.random() < 0.5:
                img = img[:, :, ::-1]
            imgs.append(np.ascontiguousarray(img))
        xb = torch.from_numpy(np.stack(imgs)).float().div_(255)
        xb = ((xb - mean) / std).to(device)
        yb = torch.from_numpy(y_cpu[idx]).to(device)
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(arch: str, n: int, epochs: int, device: torch.device, compile_: bool) -> dict:
    rec = fake_cifar(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.npz"
        write_npz_atomic(path, build_labels(
            LabelsRequest("cifar100", NoiseSpec("symmetric", 0.0), 0, val_fraction=0.1), rec))
        lf = read_labels(path)
        cfg = TrainConfig(epochs=epochs + 1, batch_size=128, device=str(device),
                          compile=compile_)
        data = DeviceData(rec, lf, device, channels_last=device.type == "cuda"
                          and cfg.channels_last != "off")
        torch.manual_seed(0)
        trainer = Trainer(model=create_model(arch, 100, (3, 32, 32)), data=data,
                          method=build_method("ce"), teachers=[], cfg=cfg, seed=0,
                          role="student", run_id=arch, spec_hash="bench",
                          checkpoint_dir=Path(tmp), log_path=Path(tmp) / "log.csv",
                          progress=False)
        torch.manual_seed(0)
        naive_model = create_model(arch, 100, (3, 32, 32)).to(device)
        naive_opt = torch.optim.SGD(naive_model.parameters(), lr=0.1, momentum=0.9,
                                    nesterov=True, weight_decay=5e-4)
        x_cpu = rec.train_x[lf.arrays["train_idx"]]
        y_cpu = lf.arrays["train_noisy"]
        mean = torch.tensor(rec.mean).view(1, 3, 1, 1)
        std = torch.tensor(rec.std).view(1, 3, 1, 1)
        rng = np.random.default_rng(0)
        times = {"naive": [], "engine": []}
        for epoch in range(epochs + 1):  # epoch 0 warms up both
            t0 = time.perf_counter()
            naive_epoch(naive_model, naive_opt, x_cpu, y_cpu, mean, std, device, 128, rng)
            t1 = time.perf_counter()
            trainer._train_epoch(epoch)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t2 = time.perf_counter()
            if epoch:
                times["naive"].append(t1 - t0)
                times["engine"].append(t2 - t1)
    n_train = len(y_cpu)
    naive = n_train / statistics.median(times["naive"])
    eng = n_train / statistics.median(times["engine"])
    return {"arch": arch, "device": str(device), "n_train": n_train, "epochs": epochs,
            "compile": compile_, "naive_img_s": round(naive, 1), "engine_img_s": round(eng, 1),
            "ratio": round(eng / naive, 2), "threads": torch.get_num_threads()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=["cifar_resnet8", "cifar_resnet56"])
    p.add_argument("--n", type=int, default=2048, help="images in the fake training pool")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up")
    p.add_argument("--device", default="auto")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    device = resolve_device(args.device)
    rows = [bench(a, args.n, args.epochs, device, args.compile) for a in args.archs]
    for r in rows:
        print(f"{r['arch']:16s} {r['device']:6s} naive {r['naive_img_s']:9.1f} img/s  "
              f"engine {r['engine_img_s']:9.1f} img/s  ratio {r['ratio']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
