"""Every method trained end to end, and exact resumption of a run whose method keeps state
(ALM-KD's mechanism on the authors' synthetic task: tests/methods/test_mechanism.py)."""

import numpy as np
import pytest

from benchmark.core.errors import UserError
from benchmark.data.labels import LabelsRequest, write_labels
from benchmark.data.noise import NoiseSpec
from benchmark.plan.specs import RunSpec
from benchmark.spec.trainconfig import TrainConfig
from benchmark.training.run import run
from tests.conftest import killed_then_resumed

FAST_META = {"meta_start": 1, "meta_every": 1}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("w") / "results"
    labels = root / "labels" / "digits.npz"
    write_labels(LabelsRequest("digits", NoiseSpec("symmetric", 0.3), 0), labels)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.1, milestones=(2,))
    teacher = RunSpec(kind="teacher", dataset="digits", labels=labels,
                         arch="cifar_resnet8", seed=0, out=root / "teachers" / "t", train=cfg)
    run(teacher)
    return {"root": root, "labels": labels, "teacher": teacher.out, "cfg": cfg}


def student(d, method, hparams=None, name=None, cfg=None, teachers=None):
    return RunSpec(kind="student", dataset="digits", labels=d["labels"],
                      arch="cifar_resnet8", seed=0, out=d["root"] / "runs" / (name or method),
                      train=cfg or d["cfg"], method=method, hparams=hparams or {},
                      teachers=[d["teacher"]] if teachers is None else teachers)


@pytest.mark.parametrize(("method", "hparams"), [
    ("ce", {}), ("kd", {}), ("fixed_alpha", {"alpha": 0.5}), ("almkd", FAST_META),
    ("amal", FAST_META), ("almkd_v1", FAST_META), ("almkd_full", FAST_META),
    ("almkd_full", {**FAST_META, "schedule": "almkd"}),
])
def test_each_method_learns_digits(digits, method, hparams):
    name = f"{method}-{hparams.get('schedule', '')}"
    m = run(student(digits, method, hparams, name=name,
                    teachers=[] if method == "ce" else None))
    assert m["test_acc_best_val"] > 0.5, m["test_acc_best_val"]  # chance is 0.1
    if method.startswith(("almkd", "amal")):
        alpha = np.load(digits["root"] / "runs" / name / "alpha.npz")
        assert alpha["weights"].shape == (2, 1293, 2)  # refreshes at epochs 1 and 2
        assert list(alpha["refresh_epoch"]) == [1, 2]
        assert alpha["teacher_agrees_noisy"].shape == (2, 1293, 1)
        assert np.mean(alpha["clean_labels"] != alpha["noisy_labels"]) > 0.2
        # real diagnostics (also for almkd_full's every-step schedule): a trained teacher
        # agrees with most given labels, and its probabilities are numbers
        assert 0.3 < alpha["teacher_agrees_noisy"].mean() < 1.0
        assert np.isfinite(alpha["teacher_prob_noisy"]).all()
        agree = alpha["teacher_agrees_noisy"][-1, :, 0]
        prob = alpha["teacher_prob_noisy"][-1, :, 0]
        assert prob[agree].mean() > prob[~agree].mean()


def test_alm_needs_more_epochs_than_meta_start(digits):
    with pytest.raises(UserError, match=r"epochs \(3\) must exceed meta_start \(10\)"):
        run(student(digits, "almkd", name="short"))
    with pytest.raises(UserError, match="alpha in \\[0, 1\\]"):
        run(student(digits, "fixed_alpha", name="noalpha"))
    with pytest.raises(UserError, match="unknown hyper-parameter"):
        run(student(digits, "kd", {"temperature": 2}, name="badhp"))


def test_alm_run_resumes_exactly(digits, monkeypatch):
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.1, milestones=(3,))
    whole = run(student(digits, "almkd", FAST_META, name="alm-whole", cfg=cfg))
    cut = student(digits, "almkd", FAST_META, name="alm-cut", cfg=cfg)
    resumed = killed_then_resumed(monkeypatch, cut, 2)
    assert resumed["test_acc_last"] == whole["test_acc_last"]
    a = np.load(digits["root"] / "runs" / "alm-whole" / "alpha.npz")
    b = np.load(cut.out_dir / "alpha.npz")
    np.testing.assert_array_equal(a["weights"], b["weights"])
