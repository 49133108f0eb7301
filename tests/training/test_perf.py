"""The cost model and the target check against hand computations, and the prepared GPU script
run end to end on CPU (tiny settings)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.core.errors import UserError
from benchmark.plan.cost_model import estimate, method_factor, n_refreshes, variant_of_runtime
from benchmark.training.perf_report import targets

ROOT = Path(__file__).resolve().parents[2]
STUDENTS = {"almkd_epoch_over_kd": 1.1, "almkd_refresh_over_kd_epoch": 2.0,
            "amal_epoch_over_kd": 1.0, "amal_refresh_over_kd_epoch": 3.0,
            "almkd_full_over_kd_per_step": 3.0, "almkd_over_kd_paper_schedule": 1.29,
            "almkd_over_kd_with_refresh": 3.1}
PERF = {"info": {"card": "test card"},
        "paths": [{"arch": "mlp_16", "engine_img_s": 1000.0, "compiled_img_s": 2000.0},
                  {"arch": "mlp_32", "engine_img_s": 500.0, "compiled_img_s": 800.0}],
        "students": STUDENTS}
CONFIG = {
    "datasets": [{"name": "synthetic", "student": "mlp_16", "teacher": "mlp_32",
                  "train": {"epochs": 10}}],
    "noise": [{"type": "symmetric", "rates": [0.2]}],
    "setups": ["single"],
    "methods": ["ce", "kd", {"name": "almkd", "hparams": {"meta_start": 1, "meta_every": 4}}],
    "seeds": [0],
}


def test_refresh_count_matches_the_schedule():
    from methods.alm_refresh import refresh_due

    for epochs, start, every in [(200, 10, 10), (10, 1, 4), (5, 5, 1), (3, 10, 10), (7, 0, 1)]:
        assert n_refreshes(epochs, start, every) == sum(
            refresh_due(e, start, every) for e in range(epochs))


def test_method_factors_by_hand():
    assert method_factor("kd", {}, 200, STUDENTS) == 1.0
    # almkd defaults: refreshes at epochs 10, 20, ..., 190
    assert method_factor("almkd", {}, 200, STUDENTS) == pytest.approx(1.1 + 2.0 * 19 / 200)
    assert method_factor("amal", {"meta_every": 50}, 200, STUDENTS) == pytest.approx(
        1.0 + 3.0 * 4 / 200)
    # almkd_full: kd-priced before meta_start (10), 3x per step after
    assert method_factor("almkd_full", {}, 200, STUDENTS) == pytest.approx(
        (10 + 190 * 3.0) / 200)
    with pytest.raises(UserError, match="no almkd cost"):
        method_factor("almkd", {}, 200, {})


def test_cost_model_by_hand():
    n = 9000 * 0.9  # synthetic pool minus the validation share
    n_eval = 900 + 1000  # validation + test, a forward pass each per epoch
    teacher = 10 * (n / 500 + n_eval / 3 / 500)
    ce = 10 * (n / 1000 + n_eval / 3 / 1000)
    kd_train = 10 * n * (1 / 1000 + (1 / 3) / 500)
    kd = kd_train + 10 * n_eval / 3 / 1000
    almkd = kd_train * (1.1 + 2.0 * 3 / 10) + 10 * n_eval / 3 / 1000  # refreshes at 1, 5, 9
    est = estimate(CONFIG, PERF)
    assert est["runs"] == 4 and est["variant"] == "engine"
    assert est["teacher_s"] == pytest.approx(teacher)
    assert est["total_s"] == pytest.approx(teacher + ce + kd + almkd)
    assert est["total_hours"] == round((teacher + ce + kd + almkd) / 3600, 1)
    # the compiled path, from the config's runtime block or asked for
    runtime = {"runtime": {"compile": True}}
    assert estimate({**CONFIG, **runtime}, PERF)["variant"] == "compiled"
    assert estimate(CONFIG, PERF, "compiled")["teacher_s"] == pytest.approx(teacher * 500 / 800)


def test_concurrency_speeds_up_cifar_resnet8_runs_only():
    config = {**CONFIG, "datasets": [{**CONFIG["datasets"][0], "student": "cifar_resnet8",
                                      "teacher": "cifar_resnet56"}], "methods": ["kd"]}
    perf = {"info": {"card": "c"}, "paths": [{"arch": "cifar_resnet8", "engine_img_s": 900.0},
                                             {"arch": "cifar_resnet56", "engine_img_s": 300.0}],
            "concurrency": {"1": {"speedup": 1.0}, "4": {"speedup": 2.5},
                            "recommended_slots": 4}}
    est = estimate(config, perf)
    n, n_eval = 9000 * 0.9, 1900
    teacher = 10 * (n + n_eval / 3) / 300
    student = 10 * (n * (1 / 900 + 1 / 3 / 300) + n_eval / 3 / 900)  # with the teacher forward
    assert est["total_s"] == pytest.approx(teacher + student)
    assert est["concurrent_slots"] == 4
    assert est["concurrent_total_s"] == pytest.approx(teacher + student / 2.5)


def test_cost_model_names_what_is_missing():
    with pytest.raises(UserError, match="no engine throughput for mlp_64"):
        estimate({**CONFIG, "datasets": [{**CONFIG["datasets"][0], "teacher": "mlp_64"}]},
                 PERF)
    with pytest.raises(UserError, match="compile_mode 'max-autotune'"):
        variant_of_runtime({"compile": True, "compile_mode": "max-autotune"})


def test_targets_read_the_measurements():
    perf = {"peak": {"dtype": "bfloat16", "tflops": 800.0},
            "paths": [{"arch": "cifar_resnet8", "engine_over_naive": 3.2,
                       "compiled_over_naive": 4.0},
                      {"arch": "cifar_resnet56", "engine_over_naive": 2.0},
                      {"arch": "small_resnet18", "fraction_of_peak": 0.31}],
            "students": STUDENTS,
            "concurrency": {"1": {"speedup": 1.0}, "2": {"speedup": 1.9}, "4": {"speedup": 2.6},
                            "recommended_slots": 4}}
    rows = {r[0]: (r[1], r[2]) for r in targets(perf, {"total_hours": 30.0,
                                                       "concurrent_total_hours": 20.0,
                                                       "concurrent_slots": 4},
                                                "paper.yaml")}
    assert rows["cifar_resnet8 CE: engine >= 3x naive"] == (
        "engine 3.2x, compiled 4.0x", "yes")
    assert rows["cifar_resnet56 CE: engine >= 3x naive"][1] == "NO"
    assert rows["small_resnet18 >= 25% of measured bfloat16 peak"] == (
        "31.0% of 800.0 TFLOP/s", "yes")
    assert rows["almkd <= 1.25x kd per epoch, averaged over a training"] == (1.29, "NO")
    assert rows["almkd_full <= 3.5x kd per step"] == (3.0, "yes")
    assert rows[">= 2x aggregate with concurrent cifar_resnet8 runs"] == (2.6, "yes")
    assert rows["paper.yaml <= 24 device-hours (estimate)"][1] == "yes"
    # a failed engine path (only the compiled one measured) does not meet the engine target
    only_compiled = {"paths": [{"arch": "cifar_resnet8", "compiled_over_naive": 4.0}]}
    assert targets(only_compiled, None, "paper.yaml")[0][1:] == ["compiled 4.0x", "NO"]
    empty = {r[0]: r[2] for r in targets({}, None, "paper.yaml")}
    assert set(empty.values()) == {"-"}


def test_gpu_script_runs_every_phase_on_cpu(tmp_path):
    """The prepared device script, with tiny CPU settings: every phase runs, the JSON and
    the log come back, the estimate and the targets are printed, and no temporary file is
    left behind."""
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({**CONFIG, "datasets": [
        {"name": "cifar100", "student": "cifar_resnet8", "teacher": "cifar_resnet8",
         "train": {"epochs": 3}}]}))
    out, scratch = tmp_path / "out", tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "OUT": str(out), "PERF_CONFIG": str(config), "PYTHON": sys.executable,
           "TMPDIR": str(scratch),
           "PERF_ARGS": "--device cpu --n 1024 --epochs 1 --no-compile --archs cifar_resnet8 "
                        "--teacher cifar_resnet8 --concurrency=1,2 --cost-model-archs"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_perf.sh")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "perf.json").read_text())
    row = result["paths"][0]
    assert row["arch"] == "cifar_resnet8" and row["naive_img_s"] > 0 and row["engine_img_s"] > 0
    assert row["train_gflop_per_image"] == pytest.approx(0.0742, rel=0.01)  # counted
    assert result["peak"]["tflops"] > 0 and 0 < row["fraction_of_peak"]
    assert result["students"]["almkd_full_over_kd_per_step"] > 1
    assert result["concurrency"]["recommended_slots"] in (1, 2) and not result["skipped"]
    log = (out / "perf.log").read_text()
    for text in ("engine img/s", "device-hours", "targets on cpu", "whole script"):
        assert text in log, text
    # every process, pool workers too, removed its scratch folder (torch keeps its caches)
    assert not list(scratch.glob("noisykd-perf-*"))


def test_perf_rejects_bad_arguments(tmp_path, capsys):
    from benchmark.cli import main

    def error(argv):
        assert main(["perf", *argv]) == 2
        return capsys.readouterr().err

    assert "--n must be at least 1024" in error(["--n", "100"])
    assert "--concurrency" in error(["--concurrency", "1,x"])
    assert "--epochs must be at least 1" in error(["--epochs", "0"])
    assert "'nosuch'" in error(["--teacher", "nosuch"])  # before any measurement
    assert "--measured" in error(["--estimate", "workflows/config/paper.yaml"])
    bad_yaml, bad_json, other_json = (tmp_path / "c.yaml", tmp_path / "p.json",
                                      tmp_path / "q.json")
    bad_yaml.write_text("a: [1\n")
    bad_json.write_text('{"info": 1')
    other_json.write_text('{"info": {}}')
    assert "c.yaml is not valid YAML" in error(["--estimate", str(bad_yaml), "--measured",
                                                str(other_json)])
    paper = "workflows/config/paper.yaml"
    assert "p.json is not valid JSON" in error(["--estimate", paper, "--measured",
                                                str(bad_json)])
    assert "q.json is not a `noisykd perf --json` result" in error(
        ["--estimate", paper, "--measured", str(other_json)])


def test_a_spent_budget_skips_the_phases_and_says_so():
    from benchmark.training.perf import run_perf

    result = run_perf(["cifar_resnet8"], 1024, 1, "cpu", False, True, [1],
                      cost_model_archs=["cifar_resnet14"], budget_s=0)
    assert result["skipped"] == ["paths cifar_resnet8", "students", "cost model cifar_resnet14",
                                 "concurrency"]
    assert result["paths"] == [] and result["peak"]["tflops"] > 0
