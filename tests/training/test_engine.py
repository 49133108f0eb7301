"""Training runs end to end on digits (CPU, a few epochs): learning, determinism,
kill-and-resume equivalence, finished runs, locks, failures and teacher checks."""

import json

import pytest
import torch
import torch.nn.functional as F

from benchmark.core.errors import UserError
from benchmark.data.labels import LabelsRequest, write_labels
from benchmark.data.noise import NoiseSpec
from benchmark.plan.specs import RunSpec
from benchmark.spec.trainconfig import TrainConfig
from benchmark.training.checkpoint import RunLock, default_checkpoint_dir
from benchmark.training.run import run
from methods.base import Method, register_method
from methods.catalog import MethodEntry
from tests.conftest import interrupt_after


@register_method(entry=MethodEntry("test_poisoned", "label", {}, {}, uses_teachers=False))
class PoisonedCE(Method):
    """Test-only: CE times NaN, to check that divergence stops the run."""

    name = "test_poisoned"

    def loss(self, out):
        return F.cross_entropy(out.logits, out.labels) * float("nan")


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    root = tmp_path_factory.mktemp("work") / "results"
    paths = {}
    for seed in (0, 1):
        p = root / "labels" / "digits" / "symmetric_0.20" / f"seed{seed}.npz"
        write_labels(LabelsRequest("digits", NoiseSpec("symmetric", 0.2), seed), p)
        paths[seed] = p
    return paths


def request(tmp_path, labels, kind="student", seed=0, arch="mlp_64", epochs=3, **kw):
    cfg = kw.pop("cfg", TrainConfig(epochs=epochs, batch_size=64, lr=0.05, milestones=(2,)))
    out = tmp_path / "results" / ("teachers" if kind == "teacher" else "runs") / kw.pop(
        "name", f"{kind}-{arch}-{seed}")
    return RunSpec(kind=kind, dataset="digits", labels=labels[seed], arch=arch,
                      seed=seed, out=out, train=cfg, **kw)


def test_cifar_resnet_learns_digits(tmp_path, labels):
    m = run(request(tmp_path, labels, arch="cifar_resnet8", epochs=4,
                    cfg=TrainConfig(epochs=4, batch_size=64, lr=0.1, milestones=(3,))))
    assert m["test_acc_best_val"] > 0.6  # chance is 0.1
    assert m["epochs"] == 4 and 1 <= m["best_epoch"] <= 4


def test_metrics_have_every_design_field(tmp_path, labels):
    req = request(tmp_path, labels)
    m = run(req)
    on_disk = json.loads((req.out_dir / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(m))
    for key in ("schema_version", "run_id", "config_hash", "spec", "test_acc_last",
                "test_acc_best_val", "val_acc_best", "val_acc_last", "epochs", "wall_time_s",
                "images_per_s", "provenance"):
        assert key in m, key
    spec = m["spec"]
    assert spec["dataset"] == "digits" and spec["seed"] == 0 and spec["method"]["name"] == "ce"
    assert spec["labels"]["noise"] == "symmetric_0.20" and spec["arch"] == "mlp_64"
    prov = m["provenance"]
    assert {"python", "torch", "timm", "noisykd"} <= set(prov["versions"])
    assert prov["device"] == "cpu" and "slurm_job_id" in prov and "git" in prov
    assert m["run_id"] == "runs/student-mlp_64-0"
    log = (req.out_dir / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,lr,train_loss") and len(log) == 4
    ckpt = default_checkpoint_dir(req.out_dir)
    assert not (ckpt / "checkpoint.pt").exists()  # removed once finished
    kept = (ckpt / "finished" / "metrics.json").read_text()
    assert kept == (req.out_dir / "metrics.json").read_text()


def test_same_seed_same_metrics_other_seed_differs(tmp_path, labels):
    keys = ("test_acc_last", "val_acc_best", "train_loss_last")
    a = run(request(tmp_path, labels, name="a"))
    b = run(request(tmp_path, labels, name="b"))
    c = run(request(tmp_path, labels, seed=1, name="c"))
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert a["train_loss_last"] != c["train_loss_last"]


def test_self_teacher_is_not_the_ce_student(tmp_path, labels):
    t = run(request(tmp_path, labels, kind="teacher", epochs=1))
    s = run(request(tmp_path, labels, epochs=1))
    assert t["train_loss_last"] != s["train_loss_last"]


def _history(path):
    rows = [r.split(",") for r in path.read_text().splitlines()]
    head = rows[0]
    keep = [i for i, h in enumerate(head) if h not in ("epoch_time_s", "images_per_s")]
    return [[r[i] for i in keep] for r in rows]


def test_kill_and_resume_gives_the_uninterrupted_result(tmp_path, labels, monkeypatch):
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.1, milestones=(3,))
    whole = request(tmp_path, labels, arch="cifar_resnet8", cfg=cfg, name="whole")
    m_whole = run(whole)
    cut = request(tmp_path, labels, arch="cifar_resnet8", cfg=cfg, name="cut")
    interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(cut)
    assert not (cut.out_dir / "metrics.json").exists()
    assert (default_checkpoint_dir(cut.out_dir) / "checkpoint.pt").exists()
    monkeypatch.undo()
    m_cut = run(cut)
    for k in ("test_acc_last", "test_acc_best_val", "val_acc_best", "train_loss_last"):
        assert m_cut[k] == m_whole[k], k
    assert _history(cut.out_dir / "log.csv") == _history(whole.out_dir / "log.csv")


def test_resume_after_the_last_epoch_rewrites_every_output(tmp_path, labels, monkeypatch):
    """Killed after the last epoch's checkpoint but before metrics.json, with the workflow
    then deleting the run's declared outputs: the rerun trains nothing and writes them all."""
    ref = request(tmp_path, labels, name="ref2")
    whole = run(ref)
    req = request(tmp_path, labels, name="late")
    interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        run(req)
    monkeypatch.undo()
    for f in req.out_dir.iterdir():
        f.unlink()
    m = run(req)
    assert m["train_loss_last"] == whole["train_loss_last"]
    assert _history(req.out_dir / "log.csv") == _history(ref.out_dir / "log.csv")


def test_corrupted_checkpoint_is_named_and_the_run_starts_over(tmp_path, labels, monkeypatch,
                                                               capsys):
    whole = run(request(tmp_path, labels, name="ref"))
    req = request(tmp_path, labels, name="broken")
    interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(req)
    monkeypatch.undo()
    ckpt = default_checkpoint_dir(req.out_dir) / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    m = run(req)
    assert f"checkpoint {ckpt} is truncated or corrupted" in capsys.readouterr().err
    assert m["train_loss_last"] == whole["train_loss_last"]


def test_finished_run_is_never_redone(tmp_path, labels, capsys):
    req = request(tmp_path, labels)
    run(req)
    stamp = (req.out_dir / "metrics.json").stat().st_mtime_ns
    assert run(req) is None
    assert "already finished" in capsys.readouterr().err
    assert (req.out_dir / "metrics.json").stat().st_mtime_ns == stamp
    other = request(tmp_path, labels, cfg=TrainConfig(epochs=2, batch_size=64))
    with pytest.raises(UserError, match="exists for another spec"):
        run(other)


def test_outputs_deleted_by_the_workflow_come_back_without_training(tmp_path, labels, capsys):
    """Snakemake deletes all outputs of a multi-run job it reruns; finished runs are restored
    from their hard links, not trained again."""
    req = request(tmp_path, labels)
    run(req)
    before = (req.out_dir / "metrics.json").read_text()
    for f in req.out_dir.iterdir():
        f.unlink()
    assert run(req) is None
    assert "restored its finished outputs" in capsys.readouterr().err
    assert (req.out_dir / "metrics.json").read_text() == before
    assert (req.out_dir / "log.csv").exists()


def test_two_copies_never_train_at_once(tmp_path, labels):
    req = request(tmp_path, labels)
    with RunLock(default_checkpoint_dir(req.out_dir), "holder"):
        with pytest.raises(UserError, match="being trained by another process"):
            run(req)
    assert not (req.out_dir / "metrics.json").exists()


def test_divergence_stops_with_run_and_epoch(tmp_path, labels):
    req = request(tmp_path, labels, method="test_poisoned")
    with pytest.raises(UserError, match=r"run runs/student-mlp_64-0 diverged in epoch 1"):
        run(req)
    assert not (req.out_dir / "metrics.json").exists()


def test_a_diverged_run_does_not_stop_the_rest_of_its_job(tmp_path, labels, capsys):
    """train-runs (a workflow job: a packed cell's runs) trains every run it was given when
    one diverges, then fails in one line naming that run: the others' metrics are written
    (and, if Snakemake removes a failed job's outputs, restored from their finished copies
    on the rerun, not retrained)."""
    import json

    from benchmark.cli import main

    bad = request(tmp_path, labels, name="poisoned",  # an lr no network survives
                  cfg=TrainConfig(epochs=3, batch_size=64, lr=1e30, milestones=(2,)))
    good = [request(tmp_path, labels, seed=s, name=f"good{s}") for s in (0, 1)]
    code = main(["train-runs", "--runs", json.dumps([good[0].to_json(), bad.to_json(),
                                                     good[1].to_json()])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err[-1].startswith("noisykd train-runs: error: 1 of 3 run(s) diverged, the others "
                              "finished: run runs/poisoned diverged in epoch ")
    assert all((g.out_dir / "metrics.json").is_file() for g in good)
    assert not (bad.out_dir / "metrics.json").exists()
    # a run that fails otherwise (not a divergence) still stops the job at once
    broken = request(tmp_path, labels, name="after")
    code = main(["train-runs", "--runs", json.dumps([
        request(tmp_path, labels, arch="resnet9000", name="broken").to_json(),
        broken.to_json()])])
    assert code != 0 and not (broken.out_dir / "metrics.json").exists()


def test_bad_inputs_fail_before_training(tmp_path, labels):
    with pytest.raises(UserError, match="unknown architecture 'resnet9000'"):
        run(request(tmp_path, labels, arch="resnet9000"))
    with pytest.raises(UserError, match="labels file is for digits, not for --dataset synthetic"):
        run(RunSpec(kind="student", dataset="synthetic", labels=labels[0], arch="mlp_8",
                       seed=0, out=tmp_path / "x", train=TrainConfig(epochs=1)))
    with pytest.raises(UserError, match="unknown method 'almkd2'"):
        run(request(tmp_path, labels, method="almkd2"))
    with pytest.raises(UserError, match="needs --teacher"):
        run(request(tmp_path, labels, method="kd"))
    with pytest.raises(UserError, match="training key 'lr' must be > 0"):
        TrainConfig(lr=0)
    assert not (tmp_path / "results").exists()


def test_student_distils_from_teachers_and_checks_them(tmp_path, labels):
    t = request(tmp_path, labels, kind="teacher", arch="cifar_resnet8", epochs=2)
    tm = run(t)
    assert set(tm["teacher"]) == {"agreement_given", "agreement_noisy", "agreement_clean"}
    assert tm["teacher"]["agreement_given"] == tm["teacher"]["agreement_noisy"]
    assert (t.out_dir / "model_last.pt").is_file() and (t.out_dir / "model_best.pt").is_file()
    for which in ("last", "best_val"):
        m = run(request(tmp_path, labels, method="kd", teachers=[t.out],
                        teacher_checkpoint=which, name=f"kd-{which}"))
        assert m["spec"]["teachers"][0]["config_hash"] == tm["config_hash"]
        assert m["spec"]["teachers"][0]["checkpoint"] == which
    # a teacher trained on another seed's labels is refused
    t1 = request(tmp_path, labels, kind="teacher", seed=1, epochs=1)
    run(t1)
    with pytest.raises(UserError, match="not on this run's symmetric_0.20 seed 0"):
        run(request(tmp_path, labels, method="kd", teachers=[t1.out], name="bad"))
    # a model file that does not match the teacher's metrics is refused
    blob = torch.load(t.out_dir / "model_last.pt", weights_only=True)
    blob["meta"]["arch"] = "cifar_resnet14"
    torch.save(blob, t.out_dir / "model_last.pt")
    with pytest.raises(UserError, match="does not match its spec"):
        run(request(tmp_path, labels, method="kd", teachers=[t.out], name="bad2"))


def test_clean_label_teacher(tmp_path, labels):
    m = run(request(tmp_path, labels, kind="teacher", teacher_labels="clean", epochs=2))
    assert m["spec"]["teacher_labels"] == "clean"
    assert m["teacher"]["agreement_given"] == m["teacher"]["agreement_clean"]


def test_cli_training_errors_are_one_line(tmp_path, labels, capsys):
    from benchmark.cli import main

    code = main(["student", "--dataset", "digits", "--labels", str(labels[0]), "--arch", "mlp_8",
                 "--seed", "0", "--out", str(tmp_path / "o"), "--epochs", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "training key 'epochs' must be an integer >= 1" in err


def test_compiled_training_matches_eager(tmp_path, labels):
    """torch.compile (and its reduce-overhead mode, which falls back to plain compiled code
    off CUDA) trains the same model as eager code, up to floating-point reassociation."""
    eager = run(request(tmp_path, labels, epochs=2, name="eager",
                        cfg=TrainConfig(epochs=2, batch_size=64, lr=0.05, milestones=(2,))))
    compiled = run(request(tmp_path, labels, epochs=2, name="compiled",
                           cfg=TrainConfig(epochs=2, batch_size=64, lr=0.05, milestones=(2,),
                                           compile=True, compile_mode="reduce-overhead")))
    assert compiled["config_hash"] == eager["config_hash"]  # a runtime switch, not a new run
    for key in ("train_loss_last", "test_acc_last"):
        assert compiled[key] == pytest.approx(eager[key], rel=2e-3, abs=2e-3), key
    with pytest.raises(UserError, match="compile_mode"):
        TrainConfig(compile=True, compile_mode="fast")


def test_each_compiled_trainer_really_compiles(tmp_path, labels, monkeypatch):
    """Dynamo stops compiling a code object after recompile_limit graphs and falls back to
    eager silently; a process training several architectures must not hit that."""
    from torch._dynamo.utils import counters

    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 2)
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, milestones=(1,), compile=True)
    for arch in ("mlp_8", "mlp_12", "mlp_16"):
        before = counters["stats"]["unique_graphs"]
        run(request(tmp_path, labels, arch=arch, epochs=1, cfg=cfg, name=arch))
        assert counters["stats"]["unique_graphs"] > before, arch
