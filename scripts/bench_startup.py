"""What a training process pays before and beside its epochs, each part in a fresh process.

Every Snakemake training job is a new Python process (``noisykd train-runs``), and CI runs
about a hundred of them (tests, the default grid, the reference slice), so a second per
process is minutes of CI. Measured here, each in its own interpreter, the median of
``--repeat`` runs:

- ``import torch``;
- the first ``torch.optim.SGD``: its methods are wrapped by ``torch._disable_dynamo``, whose
  first call imports ``torch._dynamo`` (with sympy);
- the first ``torch.compiler.cudagraph_mark_step_begin()``: it imports the inductor; the
  engine's evaluation called it on every batch until it was made conditional on CUDA graphs;
- Fashion-MNIST's per-channel statistics (every job loads its dataset): the float64 pass
  over all pixels (before) and the integer sums of ``benchmark.data.record.channel_stats``.

    python scripts/bench_startup.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBES = {
    "import torch": ("", "import torch"),
    "first torch.optim.SGD (imports torch._dynamo)": (
        "import torch; m = torch.nn.Linear(3, 3)",
        "torch.optim.SGD(m.parameters(), lr=0.1)"),
    "first cudagraph_mark_step_begin (imports the inductor)": (
        "import torch; torch.optim.SGD(torch.nn.Linear(3, 3).parameters(), lr=0.1)",
        "torch.compiler.cudagraph_mark_step_begin()"),
    "Fashion-MNIST channel stats, float64 pass (before)": (
        "import numpy as np\n"
        "from benchmark.data.fashion_mnist import locate_fashion_mnist, read_idx\n"
        "x = read_idx(locate_fashion_mnist(None, False)['train_x'])[:, None]",
        "xf = x.astype(np.float64) / 255.0; xf.mean(axis=(0, 2, 3)); xf.std(axis=(0, 2, 3))"),
    "Fashion-MNIST channel stats, integer sums (now)": (
        "from benchmark.data.fashion_mnist import locate_fashion_mnist, read_idx\n"
        "from benchmark.data.record import channel_stats\n"
        "x = read_idx(locate_fashion_mnist(None, False)['train_x'])[:, None]",
        "channel_stats(x)"),
}

TEMPLATE = """
import time
{setup}
t = time.perf_counter()
{stmt}
print(time.perf_counter() - t)
"""


def measure(setup: str, stmt: str) -> float:
    out = subprocess.run([sys.executable, "-c", TEMPLATE.format(setup=setup, stmt=stmt)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    rows = {}
    for name, (setup, stmt) in PROBES.items():
        times = [measure(setup, stmt) for _ in range(args.repeat)]
        rows[name] = {"median_s": statistics.median(times), "runs_s": times}
        print(f"{name}: {statistics.median(times):.2f} s (runs: "
              f"{', '.join(f'{t:.2f}' for t in times)})", flush=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
