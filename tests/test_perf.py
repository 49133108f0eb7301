"""The cost model against a hand computation, and a smoke run of `noisykd perf` on CPU."""

import json

import pytest

from benchmark.errors import UserError
from benchmark.perf import estimate

PERF = {"info": {"card": "test card"},
        "paths": [{"arch": "mlp_16", "engine_img_s": 1000.0},
                  {"arch": "mlp_32", "engine_img_s": 500.0, "compiled_img_s": 800.0}],
        "students": {"almkd_over_kd": 1.5, "almkd_full_over_kd_per_step": 3.0}}
CONFIG = {
    "datasets": [{"name": "synthetic", "student": "mlp_16", "teacher": "mlp_32",
                  "train": {"epochs": 10}}],
    "noise": [{"type": "symmetric", "rates": [0.2]}],
    "setups": ["single"],
    "methods": ["ce", "kd", {"name": "almkd", "hparams": {"meta_start": 1}}],
    "seeds": [0],
}


def test_cost_model_by_hand():
    n = 9000 * 0.9  # synthetic pool minus the validation share
    teacher = 10 * n / 800  # the compiled throughput is the better one
    ce = 10 * n / 1000
    kd = 10 * n * (1 / 1000 + (1 / 3) / 800)
    almkd = kd * 1.5
    est = estimate(CONFIG, PERF)
    assert est["runs"] == 4
    assert est["teacher_hours"] == round(teacher / 3600, 1)
    assert est["total_hours"] == round((teacher + ce + kd + almkd) / 3600, 1)


def test_cost_model_names_unmeasured_architectures():
    with pytest.raises(UserError, match="no throughput for mlp_64"):
        estimate({**CONFIG, "datasets": [{**CONFIG["datasets"][0], "teacher": "mlp_64"}]},
                 PERF)


def test_perf_smoke_on_cpu(tmp_path, capsys):
    from benchmark.cli import main

    out = tmp_path / "perf.json"
    assert main(["perf", "--archs", "cifar_resnet8", "--n", "1024", "--epochs", "1",
                 "--no-compile", "--no-students", "--concurrency", "", "--device", "cpu",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    row = result["paths"][0]
    assert row["arch"] == "cifar_resnet8" and row["naive_img_s"] > 0 and row["engine_img_s"] > 0
    assert "engine img/s" in capsys.readouterr().out
    assert main(["perf", "--n", "100"]) == 2
