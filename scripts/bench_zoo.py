"""What each rule of the trust-rule zoo costs per training epoch, relative to kd (issue 29).

One reference-study cell on this CPU: Fashion-MNIST (9,000 training images, symmetric 40%),
an ``mlp_64`` student, teachers ``mlp_256`` (one teacher) or ``mlp_128`` + ``mlp_256`` (two,
for the per-teacher rules and a second kd), 1 thread, the default (teacher logits shared).
Two measurements, in one process:

1. **per step** (the rule's own cost, stable): one training step of the student (forward,
   the rule's loss on cached teacher logits, backward, SGD) on a fixed batch of 128, the
   methods interleaved ``--step-rounds`` times, ``--steps`` steps each; the median per
   method;
2. **per epoch, whole runs** (what a study pays, noisy: an epoch is ~0.1 s here): every
   student trains ``--epochs`` epochs through the engine; its per-epoch times (the engine's
   ``epoch_time_s``, training only) are taken after the first epoch; the methods run in a
   shuffled order, ``--rounds`` times.

A rule with two teachers is set against kd with the same two.

    python scripts/bench_zoo.py --json zoo.json     # ~6 min on the 2-core CPU
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmark.data.labels import LabelsRequest, write_labels  # noqa: E402
from benchmark.data.noise import NoiseSpec  # noqa: E402
from benchmark.plan.specs import RunSpec  # noqa: E402
from benchmark.spec.trainconfig import TrainConfig  # noqa: E402
from benchmark.training.run import run  # noqa: E402
from methods.catalog import CATALOG  # noqa: E402

ZOO_FAMILIES = ("per_instance_trust", "robust_label", "per_teacher_trust", "logit_kd",
                "control")


def step_times(jobs, steps: int, rounds: int) -> dict[str, float]:
    """Median seconds of one training step per job label (see the module docstring)."""
    from benchmark.training.models import create_model
    from methods.base import MethodContext, StepOutput, build_method

    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 784, generator=g)
    y = torch.randint(0, 10, (128,), generator=g)
    t_logits = torch.randn(2, 128, 10, generator=g) * 3
    cfg = TrainConfig(epochs=10, batch_size=128)
    setups = {}
    for label, method, ts in jobs:
        torch.manual_seed(0)
        model = create_model("mlp_64", 10, (1, 28, 28))
        m = build_method(method)
        m.setup(MethodContext(n_train=9000, num_classes=10, n_teachers=len(ts),
                              device=torch.device("cpu"), seed=0, extras={"cfg": cfg}))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        setups[label] = (model, m, opt, t_logits[:len(ts)] if ts else None)
    samples: dict[str, list[float]] = {label: [] for label in setups}
    for _ in range(rounds):
        for label, (model, m, opt, t) in setups.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                logits = model(x.view(128, 1, 28, 28))
                loss = m.loss(StepOutput(logits=logits, features=logits, labels=y,
                                         index=torch.arange(128), teacher_logits=t))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            samples[label].append((time.perf_counter() - t0) / steps)
    return {label: statistics.median(v) for label, v in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--step-rounds", type=int, default=15)
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig(epochs=args.epochs, batch_size=128, lr=0.05, schedule="cosine",
                      augment="none", device="cpu")
    tmp = Path(tempfile.mkdtemp(prefix="bench_zoo_"))
    labels = tmp / "labels.npz"
    write_labels(LabelsRequest("fashion_mnist", NoiseSpec("symmetric", 0.4), 0,
                               val_fraction=0.03, train_subset=9000), labels)
    teachers = {}
    for arch in ("mlp_128", "mlp_256"):
        t = RunSpec(kind="teacher", dataset="fashion_mnist", labels=labels, arch=arch, seed=0,
                    out=tmp / "teachers" / arch, train=cfg)
        run(t)
        teachers[arch] = t.out
    one, two = [teachers["mlp_256"]], [teachers["mlp_128"], teachers["mlp_256"]]
    zoo = [n for n, e in CATALOG.items() if e.family in ZOO_FAMILIES]
    # (label, method, teachers): kd with one and with two teachers are the references
    jobs = [("kd", "kd", one), ("kd (2 teachers)", "kd", two)]
    for name in zoo:
        e = CATALOG[name]
        ts = [] if not e.uses_teachers else two if e.min_teachers > 1 else one
        jobs.append((name + (" (2 teachers)" if len(ts) == 2 else ""), name, ts))
    per_step = step_times(jobs, args.steps, args.step_rounds)
    times: dict[str, list[float]] = {label: [] for label, _, _ in jobs}
    rng = random.Random(0)
    for r in range(args.rounds):
        order = jobs[:]
        rng.shuffle(order)
        for label, method, ts in order:
            spec = RunSpec(kind="student", dataset="fashion_mnist", labels=labels,
                           arch="mlp_64", seed=0, out=tmp / "runs" / f"{label}-{r}",
                           train=cfg, method=method, teachers=ts)
            run(spec)
            with open(spec.out_dir / "log.csv") as f:
                times[label] += [float(row["epoch_time_s"]) for row in csv.DictReader(f)][1:]
    med = {label: statistics.median(v) for label, v in times.items()}
    out = []
    for label, _method, ts in jobs:
        ref = med["kd (2 teachers)" if len(ts) == 2 else "kd"]
        sref = per_step["kd (2 teachers)" if len(ts) == 2 else "kd"]
        out.append({"method": label, "epoch_s": med[label], "over_kd": med[label] / ref,
                    "step_ms": 1e3 * per_step[label], "step_over_kd": per_step[label] / sref,
                    "teachers": len(ts)})
    print("| method | teachers | ms / step | step, relative to kd | s / epoch (median) | "
          "epoch, relative to kd |")
    print("|---|---|---|---|---|---|")
    for row in out:
        print(f"| {row['method']} | {row['teachers']} | {row['step_ms']:.2f} | "
              f"{row['step_over_kd']:.2f} | {row['epoch_s']:.3f} | {row['over_kd']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"epochs": args.epochs, "rounds": args.rounds,
                                         "steps": args.steps, "step_rounds": args.step_rounds,
                                         "rows": out}, indent=1))


if __name__ == "__main__":
    main()
