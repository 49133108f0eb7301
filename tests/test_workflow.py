"""The Snakefile driven through Snakemake's CLI on tiny configs, in a scratch work folder."""

import subprocess

import pytest
import yaml

from benchmark.errors import UserError
from benchmark.grid import labels_cli_args, labels_jobs
from tests.conftest import REPO_ROOT

TINY = {"datasets": ["digits"], "noise": [{"type": "symmetric", "rates": [0.2]}],
        "seeds": [0, 1]}


def snakemake(workdir, *args):
    return subprocess.run(
        ["snakemake", "-s", str(REPO_ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2",
         *args], capture_output=True, text=True)


def write_config(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_default_grid_plan():
    default = yaml.safe_load((REPO_ROOT / "workflows/config/default.yaml").read_text())
    jobs = labels_jobs(default)
    assert len(jobs) == 2 * 6 * 5
    assert len({j.path for j in jobs}) == len(jobs)
    assert "results/labels/digits/symmetric-incl_0.40/seed3.npz" in {j.path for j in jobs}


def test_cli_args_round_trip():
    assert labels_cli_args("symmetric-incl_0.40") == "--noise symmetric --rate 0.4 --include-true"
    assert labels_cli_args("human-worst") == "--noise human --variant worst"


@pytest.mark.parametrize(("change", "message"), [
    ({"datasets": ["mnist"]}, "config key 'datasets': unknown dataset 'mnist'"),
    ({"seeds": []}, "config key 'seeds'"),
    ({"noise": [{"type": "human", "variants": ["aggre"]}]},
     "human variant 'aggre' does not exist for dataset 'digits'"),
    ({"noise": [{"type": "symmetric", "rates": [1.2]}]}, r"config key 'noise[0]': noise rate"),
    ({"noise": [{"type": "symmetric", "rate": [0.2]}]}, "unknown key(s) rate"),
])
def test_bad_grid_names_the_key(change, message):
    with pytest.raises(UserError) as err:
        labels_jobs({**TINY, **change})
    assert message in str(err.value)


def test_configfile_replaces_default_and_rerun_does_nothing(tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml", TINY)
    plan = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert plan.returncode == 0, plan.stderr
    assert "labels" in plan.stdout and "synthetic" not in plan.stdout  # nothing of default.yaml
    run = snakemake(tmp_path, "--configfile", str(cfg))
    assert run.returncode == 0, run.stderr
    table = (tmp_path / "results/tables/label_noise.md").read_text()
    assert table.count("symmetric_0.20") == 2
    for seed in (0, 1):
        assert (tmp_path / f"results/labels/digits/symmetric_0.20/seed{seed}.npz").is_file()
    again = snakemake(tmp_path, "--configfile", str(cfg))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_bad_config_fails_before_any_job(tmp_path):
    cfg = write_config(tmp_path / "bad.yaml", {**TINY, "datasets": ["mnist"]})
    res = snakemake(tmp_path, "--configfile", str(cfg))
    assert res.returncode != 0
    assert "unknown dataset 'mnist'" in res.stdout + res.stderr
    assert not (tmp_path / "results").exists()
    cfg = write_config(tmp_path / "bad2.yaml", {**TINY, "epochz": 3})
    res = snakemake(tmp_path, "--configfile", str(cfg))
    assert res.returncode != 0 and "epochz" in res.stdout + res.stderr
