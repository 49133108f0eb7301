"""Teacher outputs computed once (benchmark/training/teacher_cache.py): where the cache is
allowed, that it holds each row's own logits, that one process computes them once per
(teachers, data), and that a run's numbers are the same with the switch on and off."""

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from benchmark.data import load_dataset
from benchmark.data.labels import LabelsRequest, read_labels, write_labels
from benchmark.data.noise import NoiseSpec
from benchmark.plan.specs import RunSpec
from benchmark.spec.trainconfig import TrainConfig
from benchmark.training import teacher_cache
from benchmark.training.device_data import DeviceData
from benchmark.training.models import create_model
from benchmark.training.run import RunOptions, run
from benchmark.training.teacher_cache import (
    SharedTeacherOutputs,
    TeacherOutputs,
    cacheable,
    mode_free,
)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache") / "results"
    paths = {}
    for seed in (0, 1):
        paths[seed] = root / "labels" / "digits" / "symmetric_0.40" / f"seed{seed}.npz"
        write_labels(LabelsRequest("digits", NoiseSpec("symmetric", 0.4), seed), paths[seed])
    return {"root": root, "labels": paths, "record": load_dataset("digits"),
            "lf": read_labels(paths[0])}


def _data(digits, augment="auto"):
    return DeviceData(digits["record"], digits["lf"], torch.device("cpu"), augment=augment)


def test_the_cache_is_allowed_only_where_the_logits_cannot_change(digits):
    torch.manual_seed(0)
    mlp = create_model("mlp_32", 10, (1, 8, 8))
    conv = create_model("cifar_resnet8", 10, (1, 8, 8))
    assert mode_free(mlp) and not mode_free(conv)  # BatchNorm: its output follows the mode
    assert not mode_free(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)))

    class NoisyLinear(nn.Linear):  # a subclass may read self.training
        def forward(self, x):
            return super().forward(x) * (2.0 if self.training else 1.0)

    class DropHead(nn.Module):  # a container whose own forward reads self.training
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return nn.functional.dropout(self.fc(x), 0.5, self.training)

    assert not mode_free(nn.Sequential(NoisyLinear(4, 4))) and not mode_free(DropHead())
    assert mode_free(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    plain = _data(digits)  # digits (8 px): augment auto crops and flips nothing
    assert cacheable(plain, [conv], teachers_train=False, compiled=False)
    assert cacheable(plain, [mlp], teachers_train=True, compiled=False)
    assert not cacheable(plain, [conv], teachers_train=True, compiled=False)
    assert not cacheable(plain, [mlp, conv], teachers_train=True, compiled=False)
    assert not cacheable(plain, [mlp], teachers_train=False, compiled=True)
    assert not cacheable(plain, [], teachers_train=False, compiled=False)
    for augment in ("crop_flip", "crop"):
        assert not cacheable(_data(digits, augment), [mlp], teachers_train=False,
                             compiled=False)


def test_each_row_is_the_teachers_logits_on_that_example(digits):
    """Against the teachers' own forward on hand-gathered inputs (no cache code): every row
    of a shuffled batch, two teachers, stacked in the teachers' order; an MLP's rows are
    bit-identical, a convolutional teacher's equal within float tolerance."""
    data = _data(digits)
    torch.manual_seed(1)
    teachers = [create_model("mlp_32", 10, (1, 8, 8)).eval(),
                create_model("mlp_16", 10, (1, 8, 8)).eval()]
    # chunks of 323 rows: the training split's last row would be a chunk of its own
    n = data.n_train
    chunk = next(d for d in range(200, 700) if n % d == 1)
    out = TeacherOutputs({}, teachers, data, min_rows=32, eval_batch_size=chunk)
    idx = torch.as_tensor(np.random.default_rng(0).permutation(n)[:37])
    x = (data.x_train[idx].float() / 255.0 - data.mean) / data.std
    with torch.no_grad():
        want = torch.stack([teachers[0](x), teachers[1](x)])
        whole = (data.x_train.float() / 255.0 - data.mean) / data.std
        every = torch.stack([teachers[0](whole), teachers[1](whole)])
    got = out.train_logits(idx)
    assert got.shape == (2, 37, 10) and torch.equal(got, want)
    assert torch.equal(out.train_logits(torch.arange(n)), every)  # the last row too
    short = idx[:3]  # fewer rows than a training batch: a pass of their own, as uncached
    with torch.no_grad():
        x3 = (data.x_train[short].float() / 255.0 - data.mean) / data.std
        assert torch.equal(out.train_logits(short),
                           torch.stack([teachers[0](x3), teachers[1](x3)]))
    conv = [create_model("cifar_resnet8", 10, (1, 8, 8)).eval()]
    got = TeacherOutputs({}, conv, data, min_rows=32, eval_batch_size=100).train_logits(idx)
    with torch.no_grad():
        torch.testing.assert_close(got[0], conv[0](x), rtol=1e-5, atol=1e-5)


def test_one_process_computes_a_teachers_logits_once_per_data(digits, monkeypatch):
    data = _data(digits)
    teachers = [create_model("mlp_16", 10, (1, 8, 8)).eval()]
    calls = []
    forward = teachers[0].forward
    monkeypatch.setattr(teachers[0], "forward", lambda x: calls.append(len(x)) or forward(x))
    shared = SharedTeacherOutputs()
    a = TeacherOutputs(shared.store(("t", "labels0")), teachers, data, 1, 500)
    b = TeacherOutputs(shared.store(("t", "labels0")), teachers, data, 1, 500)
    idx = torch.arange(10)
    a.train_logits(idx)
    one = sum(calls)  # one pass over the training inputs (its last chunk overlapping)
    assert data.n_train <= one < data.n_train + 500 and min(calls) == 500
    b.train_logits(torch.arange(5, 40))
    assert sum(calls) == one  # the other run of the same key reads it
    TeacherOutputs(shared.store(("t", "labels1")), teachers, data, 1, 500).train_logits(idx)
    assert sum(calls) == 2 * one  # another key: its own pass
    a.train_logits(idx, torch.bfloat16)  # another autocast dtype: its own logits
    assert sum(calls) == 3 * one


def test_the_cache_keeps_at_most_its_budget_dropping_the_least_recently_used():
    shared = SharedTeacherOutputs(budget=1000)
    for key in "abc":
        shared.store(key)[None] = torch.zeros(100)  # 400 bytes each: 1,200 in all
    shared.store("a")  # a used again: b is now the least recently used, and goes
    assert list(shared._entries) == ["c", "a"]
    shared.store("d")  # 800 bytes and an empty store: within the budget
    assert list(shared._entries) == ["c", "a", "d"]
    shared.store("d")[None] = torch.zeros(1000)  # one store over the budget alone stays
    shared.store("d")
    assert list(shared._entries) == ["d"]


def test_logits_larger_than_the_budget_are_not_kept_but_still_right(digits):
    """A run whose logits alone are over the budget takes a pass per batch (nothing
    kept); a store filled after others were is trimmed to the budget once filled."""
    data = _data(digits)
    teachers = [create_model("mlp_16", 10, (1, 8, 8)).eval()]
    idx = torch.arange(40, 104)
    with torch.no_grad():
        want = teachers[0](data.train_batch(idx, None))[None]
    tiny = SharedTeacherOutputs(budget=1000)
    out = TeacherOutputs(tiny.store("a"), teachers, data, 1, 500)
    assert torch.equal(out.train_logits(idx), want)
    assert tiny._entries["a"] == {None: None}  # too large: not kept
    fits = SharedTeacherOutputs(budget=data.n_train * 10 * 4 + 100)
    TeacherOutputs(fits.store("a"), teachers, data, 1, 500).train_logits(idx)
    b = TeacherOutputs(fits.store("b"), teachers, data, 1, 500)
    assert list(fits._entries) == ["a", "b"]  # b is still empty
    assert torch.equal(b.train_logits(idx), want)
    assert list(fits._entries) == ["b"]  # filled: a goes, the two would exceed the budget


def _numbers(out_dir):
    m = json.loads((out_dir / "metrics.json").read_text())
    with open(out_dir / "log.csv") as fh:
        log = [{k: v for k, v in row.items() if k not in ("epoch_time_s", "images_per_s")}
               for row in csv.DictReader(fh)]
    keep = ("test_acc_best_val", "test_acc_last", "val_acc_best", "val_acc_last",
            "best_epoch", "train_loss_last", "train_acc_last", "config_hash")
    return {k: m[k] for k in keep}, log, m["runtime"]["share_teacher_work"]


def _odd_sizes(n: int) -> dict:
    """A batch size and an eval batch size that leave one row over (n % size == 1): an
    epoch's last training batch and the cache's last chunk would be a single row."""
    return {"batch_size": next(d for d in range(48, 129) if n % d == 1),
            "eval_batch_size": next(d for d in range(200, 700) if n % d == 1)}


def _train_both(digits, root, cfg, methods, seeds=(0,), hp=None, teacher_arch="mlp_64"):
    """Each method trained with the switch on and off (one process: the cache persists
    between runs, as in a job); what each run wrote."""
    got: dict = {}
    for seed in seeds:
        base = dict(dataset="digits", labels=digits["labels"][seed], seed=seed, train=cfg)
        t = RunSpec(kind="teacher", arch=teacher_arch, out=root / "teachers" / f"t{seed}",
                    **base)
        run(t)
        for method in methods:
            for share in (True, False):
                s = RunSpec(kind="student", arch="mlp_32", method=method, teachers=[t.out],
                            hparams=(hp or {}).get(method, {}),
                            out=root / "runs" / f"{method}-{seed}-{share}", **base)
                run(s, RunOptions(share_teacher_work=share))
                numbers = _numbers(s.out_dir)
                if (s.out_dir / "alpha.npz").exists():
                    numbers += (np.load(s.out_dir / "alpha.npz")["weights"].tobytes(),)
                got[(method, seed, share)] = numbers
    return got


def _same(got: dict) -> None:
    for (method, seed, share), numbers in got.items():
        if share:
            off = got[(method, seed, False)]
            assert numbers[:2] == off[:2] and numbers[3:] == off[3:], (method, seed)


ALM = {"meta_start": 1, "meta_every": 1}


def test_a_run_is_bit_identical_with_the_switch_on_and_off(digits, tmp_path):
    """Every number a run writes (accuracies, losses per epoch, the ALM weights) is the same
    whether the teachers' logits come from the cache or from a pass per batch, with an
    epoch's last batch and the cache's last chunk a single row each; the cache was used
    when on and not when off."""
    teacher_cache.SHARED.clear()
    n = digits["lf"].meta["n_train"]
    cfg = TrainConfig(epochs=3, lr=0.05, schedule="cosine", **_odd_sizes(n))
    got = _train_both(digits, tmp_path / "results", cfg, ("kd", "almkd", "almkd_full", "mwnet"),
                      hp={"almkd": ALM, "almkd_full": {"meta_start": 1}})
    assert {k: v[2] for k, v in got.items()} == {k: k[2] for k in got}
    _same(got)


def test_runs_of_other_labels_files_and_training_sets_in_one_process(digits, tmp_path):
    """Two seeds (two labels files) and kd_union (training on the training and meta splits)
    after kd, in one process: each reads its own logits, none another's."""
    teacher_cache.SHARED.clear()
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, schedule="cosine")
    got = _train_both(digits, tmp_path / "results", cfg, ("kd", "kd_union"), seeds=(0, 1))
    assert all(v[2] == k[2] for k, v in got.items())
    _same(got)


@pytest.mark.parametrize(("protocol", "amp", "method"), [
    ("authors", "auto", "almkd_v1"),  # train-mode teachers: an MLP ignores its mode
    ("suite", "on", "kd"),  # bf16 autocast on the CPU: the step's logits under it
])
def test_the_switch_is_exact_under_authors_teachers_and_autocast(digits, tmp_path, protocol,
                                                                  amp, method):
    teacher_cache.SHARED.clear()
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, protocol=protocol, amp=amp)
    got = _train_both(digits, tmp_path / "results", cfg, (method,), hp={"almkd_v1": ALM})
    assert all(v[2] == k[2] for k, v in got.items())
    _same(got)


def test_augmented_inputs_take_a_teacher_pass_per_batch(digits, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=64, augment="crop_flip")
    got = _train_both(digits, tmp_path / "results", cfg, ("kd",))
    assert [v[2] for v in got.values()] == [False, False]  # not used, even when on
    _same(got)


def test_the_cli_switch_reaches_the_run(digits, tmp_path, capsys):
    from benchmark.cli import main

    root = tmp_path / "results"
    common = ["--dataset", "digits", "--labels", str(digits["labels"][0]), "--seed", "0",
              "--epochs", "1", "--batch-size", "64", "--no-progress"]
    assert main(["teacher", *common, "--arch", "mlp_16", "--out", str(root / "t")]) in (0, None)
    for flag, used in (([], True), (["--no-share-teacher-work"], False),
                       (["--share-teacher-work"], True)):
        out = root / f"kd{len(flag)}{used}"
        assert main(["student", *common, "--arch", "mlp_16", "--method", "kd", "--teacher",
                     str(root / "t"), "--out", str(out), *flag]) in (0, None)
        assert json.loads((out / "metrics.json").read_text())["runtime"][
            "share_teacher_work"] is used
