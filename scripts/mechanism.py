"""Measure ALM-KD's mechanism on the authors' synthetic task, for both teacher conditions.

Protocol authors (raw features, refresh chunk 2, cosine period epochs + 1), 40% symmetric
noise in their include-true convention, MLP teacher 80 hidden trained on the clean labels
(their setting) or on the noisy labels (the suite's extension), MLP student 50, SGD 0.01,
batch 128. For each ALM method, seed and teacher condition: the teacher's share of an
instance's weight after the last refresh, sum_m w_m / sum_k w_k, for instances whose given
label is noisy versus clean, and the CE weight for each.

    python scripts/mechanism.py --epochs 100 --seeds 0 1 2 --out /tmp/mechanism

Writes ``mechanism.csv`` and prints a Markdown table (the README's mechanism section).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.data.labels import LabelsRequest, write_labels  # noqa: E402
from benchmark.data.noise import NoiseSpec  # noqa: E402
from benchmark.plan.specs import RunSpec
from benchmark.spec.trainconfig import TrainConfig  # noqa: E402
from benchmark.training.run import RunOptions, run  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["almkd", "amal", "almkd_v1"])
    ap.add_argument("--protocol", default="authors")
    ap.add_argument("--out", type=Path, default=Path("/tmp/mechanism"))
    args = ap.parse_args(argv)
    cfg = TrainConfig(epochs=args.epochs, batch_size=128, lr=0.01, schedule="cosine",
                      protocol=args.protocol, device="cpu")
    rows = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        labels = args.out_dir / "labels" / f"seed{seed}.npz"
        if not labels.exists():
            write_labels(LabelsRequest("synthetic", NoiseSpec("symmetric", 0.4,
                                                              include_true=True), seed), labels)
        for tl in ("clean", "noisy"):
            t = RunSpec(kind="teacher", dataset="synthetic", labels=labels,
                           arch="mlp_80", seed=seed, out=args.out_dir / "teachers" / f"{tl}{seed}",
                           train=cfg, teacher_labels=tl)
            run(t, RunOptions(threads=1))
            for method in args.methods:
                s = RunSpec(kind="student", dataset="synthetic", labels=labels,
                               arch="mlp_50", seed=seed,
                               out=args.out_dir / "runs" / f"{method}-{tl}T-{seed}", train=cfg,
                               method=method, teachers=[t.out])
                run(s, RunOptions(threads=1))
                a = np.load(s.out_dir / "alpha.npz")
                w = a["weights"][-1]
                share = w[:, 1:].sum(1) / w.sum(1)
                noisy = a["clean_labels"] != a["noisy_labels"]
                rows.append({"method": method, "teacher": tl, "seed": seed,
                             "share_noisy": share[noisy].mean(),
                             "share_clean": share[~noisy].mean(),
                             "ce_noisy": w[noisy, 0].mean(), "ce_clean": w[~noisy, 0].mean()})
                print(rows[-1], f"{time.perf_counter() - t0:.0f} s", flush=True)
    import pandas as pd

    df = pd.DataFrame(rows)
    df.to_csv(args.out_dir / "mechanism.csv", index=False)
    print("\n| method | teacher trained on | KD share, noisy labels | KD share, clean labels "
          "| CE weight, noisy | CE weight, clean | noisy > clean in |")
    print("|---|---|---|---|---|---|---|")
    for (method, tl), g in df.groupby(["method", "teacher"], sort=False):
        def f(col, g=g):
            return ", ".join(f"{v:.3f}" for v in g[col])
        more = int((g["share_noisy"] > g["share_clean"]).sum())
        print(f"| {method} | {tl} labels | {f('share_noisy')} | {f('share_clean')} | "
              f"{f('ce_noisy')} | {f('ce_clean')} | {more} of {len(g)} seeds |")
    print(f"\n{len(df)} student runs in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
