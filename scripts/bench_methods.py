"""Cost of the adaptive-mixing methods relative to kd, measured in one process.

Per-epoch training time of almkd and amal against kd over a whole training with the authors'
refresh schedule (a refresh every 10 epochs; the refresh time counts in its epoch), and the
time per training step of almkd_full (exact look-ahead every step) against kd. Runs
`noisykd student` in-process on digits-scale data (cifar_resnet8, digits, batch 128) after
training one teacher; methods are run in the order kd, almkd, amal, almkd_full, kd and the
two kd runs are averaged.

    python scripts/bench_methods.py --epochs 20
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

from benchmark.data.labels import LabelsRequest, read_labels, write_labels
from benchmark.data.noise import NoiseSpec
from benchmark.plan.specs import RunSpec
from benchmark.spec.trainconfig import TrainConfig
from benchmark.training.run import run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--arch", default="cifar_resnet8")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--full-epochs", type=int, default=2, help="epochs timed for almkd_full")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        labels = root / "labels.npz"
        write_labels(LabelsRequest(args.dataset, NoiseSpec("symmetric", 0.4), 0), labels)
        cfg = TrainConfig(epochs=args.epochs, batch_size=128, lr=0.1, schedule="cosine")
        base = dict(dataset=args.dataset, labels=labels, arch=args.arch, seed=0)
        teacher = RunSpec(kind="teacher", out=root / "teacher", train=cfg, **base)
        run(teacher)
        # every 10 epochs from epoch 0: the authors' refresh rate over the whole training
        alm = {"meta_start": 0, "meta_every": 10}
        full_cfg = TrainConfig(epochs=args.full_epochs, batch_size=128, lr=0.1,
                               schedule="cosine")
        plan = [("kd", {}, cfg), ("almkd", alm, cfg), ("amal", alm, cfg),
                ("almkd_full", {"meta_start": 0}, full_cfg), ("kd", {}, full_cfg),
                ("kd", {}, cfg)]
        steps_per_epoch = math.ceil(read_labels(labels).meta["n_train"] / 128)
        times: dict[str, list[float]] = {}
        per_step: dict[str, list[float]] = {}
        for i, (method, hp, c) in enumerate(plan):
            m = run(RunSpec(kind="student", out=root / f"{i}-{method}", train=c, method=method,
                               hparams=hp, teachers=[teacher.out], **base))
            key = f"{method}@{c.epochs}"
            times.setdefault(key, []).append(m["train_time_s"] / c.epochs)
            per_step.setdefault(key, []).append(m["train_time_s"] / (c.epochs * steps_per_epoch))
    kd = sum(times[f"kd@{args.epochs}"]) / 2
    kd_step = per_step[f"kd@{args.full_epochs}"][0]
    out = {
        "arch": args.arch, "dataset": args.dataset, "epochs": args.epochs,
        "kd_s_per_epoch": round(kd, 4),
        "almkd_over_kd": round(times[f"almkd@{args.epochs}"][0] / kd, 3),
        "amal_over_kd": round(times[f"amal@{args.epochs}"][0] / kd, 3),
        "almkd_full_over_kd_per_step": round(per_step[f"almkd_full@{args.full_epochs}"][0]
                                             / kd_step, 3),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
