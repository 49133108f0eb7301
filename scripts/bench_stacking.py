"""What lock-step and stacked students could save on this machine (issue 28, items 2 and 4).

At the reference cell's sizes (Fashion-MNIST subset: 9,000 training and 11,800 evaluation
inputs of 784 pixels, an ``mlp_64`` student, batch 128, the teachers' logits cached, 1
thread), times one epoch of R students trained with the suite's own model and ``kd`` loss:

- ``per_run``: today's path, each run its whole epoch alone (its batch gathered, its step);
- ``lockstep``: the R runs one batch at a time, the batch gathered once, each run its step;
- ``stacked``: the R students one model (``torch.func.stack_module_state`` + ``vmap``), one
  forward and backward for all, each run's own loss, one ``foreach`` SGD step;
- ``stacked_one_loss``: as ``stacked`` with one loss over the R runs' logits (the bound:
  every run the same loss);
and one evaluation pass (select + test) per run against the R stacked. Also reports how
far the stacked logits are from each run's own (the same weights, another summation order).

    python scripts/bench_stacking.py --runs 8 --repeats 3 --json F
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.training.models import create_model  # noqa: E402
from methods import build_method  # noqa: E402
from methods.base import MethodContext, StepOutput  # noqa: E402

N_TRAIN, N_EVAL, D, C, BATCH, EVAL_BATCH = 9000, 11800, 784, 10, 128, 1024


def _students(r: int):
    torch.manual_seed(0)
    return [create_model("mlp_64", C, (1, 28, 28)) for _ in range(r)]


def _sgd(params, foreach=None):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4,
                           foreach=foreach)


def _kd(n_teachers=1):
    m = build_method("kd")
    m.setup(MethodContext(n_train=N_TRAIN, num_classes=C, n_teachers=n_teachers,
                          device=torch.device("cpu"), seed=0))
    return m


def _data():
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (N_TRAIN, D), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, C, (N_TRAIN,), generator=g)
    teacher = torch.randn(1, N_TRAIN, C, generator=g)
    return pixels, labels, teacher


def _batch(pixels, idx):  # as DeviceData: uint8 rows to standardised floats
    return (pixels[idx].float() / 255.0 - 0.286) / 0.353


def _step_out(logits, y, idx, t):
    return StepOutput(logits, logits, y, idx, t)


def per_run(r, pixels, labels, teacher, order):
    models, loss_fn = _students(r), _kd()
    opts = [_sgd(m.parameters()) for m in models]
    t0 = time.perf_counter()
    for m, opt in zip(models, opts, strict=True):
        for s in range(0, N_TRAIN, BATCH):
            idx = order[s:s + BATCH]
            x, y = _batch(pixels, idx), labels[idx]
            logits = m(x)
            loss = loss_fn.loss(_step_out(logits, y, idx, teacher[:, idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def lockstep(r, pixels, labels, teacher, order):
    models, loss_fn = _students(r), _kd()
    opts = [_sgd(m.parameters()) for m in models]
    t0 = time.perf_counter()
    for s in range(0, N_TRAIN, BATCH):
        idx = order[s:s + BATCH]
        x, y, t = _batch(pixels, idx), labels[idx], teacher[:, idx]
        for m, opt in zip(models, opts, strict=True):
            loss = loss_fn.loss(_step_out(m(x), y, idx, t))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def _stacked(models):
    params, buffers = stack_module_state(models)
    params = {k: torch.nn.Parameter(v) for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")

    def one(p, b, x):
        return functional_call(base, (p, b), (x,))

    return params, buffers, vmap(one, in_dims=(0, 0, None))


def stacked(r, pixels, labels, teacher, order, one_loss=False):
    params, buffers, fwd = _stacked(_students(r))
    loss_fn = _kd()
    opt = _sgd(params.values(), foreach=True)
    t0 = time.perf_counter()
    for s in range(0, N_TRAIN, BATCH):
        idx = order[s:s + BATCH]
        x, y, t = _batch(pixels, idx), labels[idx], teacher[:, idx]
        logits = fwd(params, buffers, x)  # [R, B, C]
        if one_loss:
            b = len(idx)
            loss = r * loss_fn.loss(_step_out(logits.reshape(r * b, C), y.repeat(r),
                                              idx.repeat(r), t.repeat(1, r, 1)))
        else:
            loss = sum(loss_fn.loss(_step_out(logits[i], y, idx, t)) for i in range(r))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


@torch.no_grad()
def evaluation(r, pixels, stack: bool):
    models = _students(r)
    inputs = pixels[torch.arange(N_EVAL) % N_TRAIN]
    t0 = time.perf_counter()
    if stack:
        params, buffers, fwd = _stacked(models)
        for s in range(0, N_EVAL, EVAL_BATCH):
            fwd(params, buffers, _batch(inputs, slice(s, s + EVAL_BATCH))).argmax(-1)
    else:
        for m in models:
            for s in range(0, N_EVAL, EVAL_BATCH):
                m(_batch(inputs, slice(s, s + EVAL_BATCH))).argmax(-1)
    return time.perf_counter() - t0


@torch.no_grad()
def stacking_difference(r, pixels):
    models = _students(r)
    for i, m in enumerate(models):  # distinct weights per run
        for p in m.parameters():
            p.add_(0.01 * i)
    x = _batch(pixels, torch.arange(BATCH))
    params, buffers, fwd = _stacked(models)
    together = fwd(params, buffers, x)
    alone = torch.stack([m(x) for m in models])
    return {"max_abs_logit_difference": float((together - alone).abs().max()),
            "bit_identical_runs": int(sum(torch.equal(a, b)
                                          for a, b in zip(together, alone, strict=True)))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    pixels, labels, teacher = _data()
    order = torch.randperm(N_TRAIN, generator=torch.Generator().manual_seed(1))
    r = args.runs
    timers = {
        "per_run": lambda: per_run(r, pixels, labels, teacher, order),
        "lockstep": lambda: lockstep(r, pixels, labels, teacher, order),
        "stacked": lambda: stacked(r, pixels, labels, teacher, order),
        "stacked_one_loss": lambda: stacked(r, pixels, labels, teacher, order, True),
        "eval_per_run": lambda: evaluation(r, pixels, False),
        "eval_stacked": lambda: evaluation(r, pixels, True),
    }
    seconds: dict = {k: [] for k in timers}
    for _ in range(args.repeats):  # interleaved: drift in the machine's speed hits all
        for name, fn in timers.items():
            seconds[name].append(fn())
    best = {k: min(v) for k, v in seconds.items()}
    report = {
        "runs": r, "repeats": args.repeats, "torch": torch.__version__,
        "seconds_min": {k: round(v, 3) for k, v in best.items()},
        "train_ratio_to_per_run": {k: round(best[k] / best["per_run"], 3)
                                   for k in ("lockstep", "stacked", "stacked_one_loss")},
        "eval_ratio": round(best["eval_stacked"] / best["eval_per_run"], 3),
        **stacking_difference(r, pixels),
    }
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
