"""Every rule of the trust-rule zoo (issue 29) trained end to end on digits for a few epochs,
and each resumed exactly after a kill between two epochs: the same numbers, per epoch, as
the run that was never killed. (Each rule's loss has its own reference test:
tests/methods/test_zoo_<name>.py.)"""

import csv

import pytest

from benchmark.data.labels import LabelsRequest, write_labels
from benchmark.data.noise import NoiseSpec
from benchmark.plan.specs import RunSpec
from benchmark.spec.trainconfig import TrainConfig
from benchmark.training.run import run
from methods.catalog import CATALOG
from tests.conftest import killed_then_resumed

ZOO = [n for n, e in CATALOG.items() if e.family in (
    "per_instance_trust", "robust_label", "per_teacher_trust", "logit_kd", "control")]
# a short schedule: dkd's warm-up and proselflc's trust schedule must move within it
HPARAMS = {"dkd": {"warmup": 2}, "bootstrap": {"mode": "hard"}}
CFG = TrainConfig(epochs=4, batch_size=64, lr=0.05, milestones=(3,), checkpoint_every=1)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo") / "results"
    labels = root / "labels" / "digits.npz"
    write_labels(LabelsRequest("digits", NoiseSpec("symmetric", 0.3), 0), labels)
    teachers = []
    for arch in ("mlp_32", "mlp_64"):
        t = RunSpec(kind="teacher", dataset="digits", labels=labels, arch=arch, seed=0,
                    out=root / "teachers" / arch, train=CFG)
        run(t)
        teachers.append(t.out)
    return {"root": root, "labels": labels, "teachers": teachers}


def _spec(d, name, out):
    e = CATALOG[name]
    teachers = [] if not e.uses_teachers else d["teachers"][:max(e.min_teachers, 1)]
    if name in ("wsld", "dkd", "sce_kd"):
        teachers = d["teachers"]  # several teachers through the per-teacher convention
    return RunSpec(kind="student", dataset="digits", labels=d["labels"], arch="mlp_16",
                   seed=0, out=d["root"] / "runs" / out, train=CFG, method=name,
                   hparams=HPARAMS.get(name, {}), teachers=teachers)


def _log(spec):
    with open(spec.out_dir / "log.csv") as f:
        return [{k: v for k, v in r.items() if k not in ("epoch_time_s", "images_per_s")}
                for r in csv.DictReader(f)]


def test_the_zoo_is_the_eleven_rules_of_issue_29():
    assert sorted(ZOO) == sorted(["wsld", "bootstrap", "proselflc", "gce_kd", "sce_kd",
                                  "camkd", "ebkd", "aekd", "dkd", "lskd", "tfkd"])


@pytest.mark.parametrize("name", ZOO)
def test_each_rule_learns_and_resumes_exactly(digits, name, monkeypatch):
    whole = run(_spec(digits, name, f"{name}-whole"))
    assert whole["test_acc_best_val"] > 0.5, whole["test_acc_best_val"]  # chance is 0.1
    cut = _spec(digits, name, f"{name}-cut")
    resumed = killed_then_resumed(monkeypatch, cut, 2)
    for key in ("test_acc_last", "test_acc_best_val", "best_epoch", "val_acc_best"):
        assert resumed[key] == whole[key], key
    assert _log(cut) == _log(_spec(digits, name, f"{name}-whole"))
