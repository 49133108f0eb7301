"""How sharply instance noise picks its flip targets, with raw and with standardised inputs.

Issue 30: Xia et al.'s ``get_instance_noisy_label`` projects raw pixel values 0..255; the
suite projected standardised ones until the ``features`` option (raw by default). For each
dataset, form and seed this builds the labels file's arrays (``build_labels``, the same code
as ``noisykd labels``), replays the noise stream to get every instance's row, and reports

- ``sharp``: the share of training instances whose most likely flip target has probability
  above 0.99 (of the flip distribution, softmax(x W_y) with y masked out);
- ``conc_exp``: per class, the largest share of the expected flips that go to one target
  (the rows of ``transition_expected`` without the diagonal), averaged over classes;
- ``conc_real``: the same from the realised flips (``transition_realised``);
- the realised rate.

    python scripts/instance_noise_stats.py --datasets digits fashion_mnist --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.data import load_dataset  # noqa: E402
from benchmark.data.labels import LabelsRequest, build_labels  # noqa: E402
from benchmark.data.noise import NoiseSpec, instance_model, sample_rows  # noqa: E402


def off_diagonal_concentration(t: np.ndarray) -> float:
    """Mean over classes (those with any flip) of max_j t[y, j] / sum_j t[y, j], j != y."""
    off = t.copy()
    np.fill_diagonal(off, 0.0)
    tot = off.sum(axis=1)
    keep = tot > 0
    return float(np.mean(off.max(axis=1)[keep] / tot[keep]))


def flip_target_sharpness(clean: np.ndarray, q: np.ndarray, rows: np.ndarray,
                          threshold: float = 0.99) -> float:
    """Share of instances whose most likely flip target has probability above ``threshold``."""
    flip = rows.copy()
    flip[np.arange(len(clean)), clean] = 0.0
    flip /= q[:, None]
    return float(np.mean(flip.max(axis=1) > threshold))


def measure(record, rate: float, features: str, seed: int) -> dict:
    spec = NoiseSpec("instance", rate, features=features)
    a = build_labels(LabelsRequest(record.name, spec, seed), record)
    meta = json.loads(str(a["meta"]))
    x = record.train_x[a["train_idx"]]
    feats = record.raw_features(x) if features == "raw" else record.features(x)
    rng = np.random.default_rng(meta["seeds"]["noise"])
    clean = a["train_clean"]
    q, rows = instance_model(clean, feats, record.num_classes, rate, rng)
    # the replay is the labels file's stream: the same flip rates and the same draws
    np.testing.assert_array_equal(q, a["flip_prob"])
    np.testing.assert_array_equal(sample_rows(rows, rng), a["train_noisy"])
    return {"sharp": flip_target_sharpness(clean, q, rows),
            "conc_exp": off_diagonal_concentration(a["transition_expected"]),
            "conc_real": off_diagonal_concentration(a["transition_realised"]),
            "realised": meta["rate_realised"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "fashion_mnist"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rate", type=float, default=0.4)
    args = ap.parse_args(argv)
    print("| dataset | features | sharp (>0.99) | conc. expected | conc. realised "
          "| realised rate |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets:
        record = load_dataset(name)
        for features in ("raw", "standardised"):
            per_seed = [measure(record, args.rate, features, s) for s in args.seeds]
            mean = {k: np.mean([m[k] for m in per_seed]) for k in per_seed[0]}
            sd = {k: np.std([m[k] for m in per_seed]) for k in per_seed[0]}
            cells = " | ".join(f"{mean[k]:.3f} ± {sd[k]:.3f}"
                               for k in ("sharp", "conc_exp", "conc_real", "realised"))
            print(f"| {name} | {features} | {cells} |", flush=True)
    print(f"\nrate {args.rate}, seeds {args.seeds}: mean ± sd over seeds")


if __name__ == "__main__":
    main()
