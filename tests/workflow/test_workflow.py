"""The Snakefile driven through Snakemake's CLI on tiny configs, in scratch work folders."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.helpers import TINY

TINY_RUN = {**TINY, "seeds_per_job": 2, "pack_methods": True,
            "datasets": [{**TINY["datasets"][0], "train": {"epochs": 2, "batch_size": 256,
                                                          "lr": 0.1, "schedule": "cosine"}}],
            "methods": ["ce", "kd", {"name": "almkd",
                                     "hparams": {"meta_start": 1, "meta_every": 1}}],
            "setups": ["single", "self"], "runtime": {"device": "cpu", "threads": 1}}


def snakemake(workdir, *args, **kw):
    return subprocess.run(
        ["snakemake", "-s", str(REPO_ROOT / "Snakefile"), "-d", str(workdir), "--cores", "2",
         *args], capture_output=True, text=True, **kw)


def noisykd(cwd, *args):
    """``noisykd ARGS`` in ``cwd``; it must succeed."""
    res = subprocess.run(["noisykd", *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res


def write_config(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_default_dry_run_plans_the_grid(tmp_path):
    res = snakemake(tmp_path, "-n", "--quiet", "rules")
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    for rule, count in (("labels", 20), ("prepare_data", 2), ("report", 1)):
        assert any(line.split()[:2] == [rule, str(count)] for line in text.splitlines()), rule


def _metrics(root):
    out = {}
    for p in sorted(root.glob("results/tiny/runs/**/metrics.json")):
        m = json.loads(p.read_text())
        out[str(p.relative_to(root))] = (m["test_acc_last"], m["test_acc_best_val"],
                                         m["train_loss_last"], m["config_hash"])
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    work = tmp_path_factory.mktemp("wf")
    cfg = write_config(work / "tiny.yaml", TINY_RUN)
    res = snakemake(work, "--configfile", str(cfg))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return work, cfg


def test_tiny_grid_end_to_end_and_rerun_does_nothing(finished):
    work, cfg = finished
    metrics = _metrics(work)
    assert len(metrics) == 2 * (1 + 2 * 2)  # seeds x (ce + 2 setups x (kd, almkd))
    for name in ("single_best.md", "single_best.tex", "self_last.csv", "completeness.md",
                 "ranks.md", "label_noise.md", "verdicts.md", "verdicts.csv",
                 "comparisons.csv"):
        assert (work / "results/tiny/tables" / name).stat().st_size > 0, name
    for name in ("accuracy_vs_noise.png", "alm_weights.pdf", "alm_weight_vs_teacher.png"):
        assert (work / "results/tiny/figures" / name).stat().st_size > 0, name
    # one cell per setup: no Friedman test, so no critical-difference diagram (ranks.md says so)
    assert not list((work / "results/tiny/figures").glob("cd_*"))
    completeness = (work / "results/tiny/tables/completeness.md").read_text()
    assert "None: every planned run finished." in completeness
    plan = json.loads((work / "results/tiny/expected_runs.json").read_text())
    assert plan["comparisons"] == {"alm": ["almkd"], "baselines": ["kd", "ce"], "margin": 1.0,
                                   "moderators": ["teacher_labels", "noise_type", "noise_rate"]}
    verdicts = (work / "results/tiny/tables/verdicts.csv").read_text().splitlines()
    assert verdicts[0].startswith("setup,metric,scope,alm,baseline,n_cells")
    assert len(verdicts) == 1 + 2 * 2 * 2 * 2  # setups x metrics x scopes x (vs kd, ce)
    again = snakemake(work, "--configfile", str(cfg))
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    html = snakemake(work, "--configfile", str(cfg), "--report", "results/report.html")
    assert html.returncode == 0, html.stderr[-2000:]
    assert (work / "results/report.html").stat().st_size > 100_000


def test_tables_target_trains_nothing(finished):
    work, cfg = finished
    before = _metrics(work)
    # the README's command, as written (with this test's folder and config)
    res = subprocess.run(["snakemake", "--cores", "1", "tables", "-s", str(REPO_ROOT / "Snakefile"),
                          "-d", str(work), "--configfile", str(cfg)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout + res.stderr and _metrics(work) == before


def test_configfile_replaces_the_default(tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml", TINY_RUN)
    res = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    assert "digits" in text and "synthetic" not in text  # nothing of default.yaml leaks in


@pytest.mark.parametrize(("change", "message"), [
    ({"datasets": [{"name": "svhn", "student": "mlp_8"}]}, "unknown dataset 'svhn'"),
    ({"epochz": 3}, "unknown key 'epochz' at the top level; 'epochs' is a key of "
                    "datasets[].train"),
    ({"sedes": [0]}, "unknown key 'sedes' at the top level; did you mean 'seeds'?"),
    ({"noise": [{"type": "symmetric", "rates": [1.5]}]}, "noise[0].rates[0]: 1.5"),
    ({"methods": ["almkd2"]}, "config key 'methods[0]': unknown method 'almkd2'; known: ce, kd, "
                              "fixed_alpha, almkd, amal, almkd_v1, almkd_full, ce_clean, "
                              "ce_union, kd_union, kd_finetune, l2rw, mwnet, wsld, bootstrap, "
                              "proselflc, gce_kd, sce_kd, camkd, ebkd, aekd, dkd, lskd, tfkd "
                              "(did you mean 'almkd'?)"),
    ({"methods": [{"name": "almkd", "hparams": {"meta_strat": 1}}]}, "meta_strat"),
])
def test_bad_config_fails_before_any_job_in_one_line(tmp_path, change, message):
    cfg = write_config(tmp_path / "bad.yaml", {**TINY_RUN, **change})
    res = snakemake(tmp_path, "--configfile", str(cfg))
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert message in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) <= 3, out  # the message once, no schema dump
    assert sum(message in line for line in lines) == 1
    assert not (tmp_path / "results").exists()


def test_kill_9_then_recover_gives_the_uninterrupted_metrics(finished, tmp_path):
    """kill -9 of Snakemake and its jobs mid-grid, then the README's recovery
    (`snakemake --unlock`, then the same command): finished runs are not redone and the
    metrics equal the uninterrupted run's."""
    work, cfg = finished
    proc = subprocess.Popen(
        ["snakemake", "-s", str(REPO_ROOT / "Snakefile"), "-d", str(tmp_path), "--cores", "2",
         "--configfile", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(tmp_path.glob("results/tiny/runs/**/metrics.json")):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # metrics.json records when the run finished: identical bytes mean it was not retrained
    survivors = {p: p.read_bytes() for p in tmp_path.glob("results/tiny/runs/**/metrics.json")}
    assert survivors, "no run finished before the kill"
    assert len(survivors) < len(_metrics(work)), "killed too late to test anything"
    assert subprocess.run(["snakemake", "-s", str(REPO_ROOT / "Snakefile"), "-d", str(tmp_path),
                           "--unlock", "--configfile", str(cfg)],
                          capture_output=True).returncode == 0
    res = snakemake(tmp_path, "--configfile", str(cfg))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert _metrics(tmp_path) == _metrics(work)
    for p, content in survivors.items():  # finished runs were not trained again
        assert p.read_bytes() == content, p


def test_forget_then_snakemake_retrains_exactly_that_run(finished, tmp_path):
    """The README's recipe for retraining one run: `noisykd forget <run dir>`, then the same
    snakemake command. The forgotten run is trained again (a new finished_at, the same
    numbers: seeds fix everything); every other run keeps its bytes."""
    work, cfg = finished
    copy = tmp_path / "copy"
    shutil.copytree(work, copy, symlinks=True)
    runs = sorted(copy.glob("results/tiny/runs/**/metrics.json"))
    before = {p: p.read_bytes() for p in runs}
    target = next(p for p in runs if "/almkd" in str(p)).parent
    res = subprocess.run(["noisykd", "forget", str(target.relative_to(copy))], cwd=copy,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert not target.exists()
    res = snakemake(copy, "--configfile", str(cfg))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    console = (res.stdout + res.stderr).splitlines()
    assert max(len(line) for line in console) < 300 and len(console) < 80
    assert any(line.startswith("[14/14 runs] done runs/digits/symmetric_0.20/")
               and "1 trained" in line for line in console)
    assert console[-1].startswith("study tiny: 14 of 14 runs finished (1 trained now, 13 "
                                  "reused); tables in results/tiny/tables/")
    after = {p: p.read_bytes() for p in copy.glob("results/tiny/runs/**/metrics.json")}
    assert set(after) == set(before)
    changed = [p for p in after if after[p] != before[p]]
    assert changed == [target / "metrics.json"]
    old, new = json.loads(before[changed[0]]), json.loads(after[changed[0]])
    assert old["finished_at"] <= new["finished_at"] and old["wall_time_s"] != new["wall_time_s"]
    assert old["test_acc_last"] == new["test_acc_last"]


def test_two_studies_in_one_checkout_stay_apart(finished):
    """A second config (study 'variant': three seeds, other methods) runs into the same
    checkout: its own tables, plan and completeness; the first study's files keep their
    bytes, and switching back and forth trains nothing."""
    work, cfg = finished
    tiny = work / "results/tiny"
    keep = {p: p.read_bytes() for p in [*(tiny / "tables").iterdir(),
                                        tiny / "expected_runs.json"]}
    variant = write_config(work / "variant.yaml",
                           {**TINY_RUN, "seeds": [0, 1, 2], "methods": ["ce", "kd"],
                            "setups": ["single"]})
    res = snakemake(work, "--configfile", str(variant))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    table = (work / "results/variant/tables/single_best.md").read_text()
    assert "n = 3 seeds in every cell" in table and "almkd" not in table
    assert "None: every planned run finished." in (
        work / "results/variant/tables/completeness.md").read_text()
    assert {p: p.read_bytes() for p in keep} == keep
    for config in (cfg, variant, cfg):
        again = snakemake(work, "--configfile", str(config))
        assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_a_failed_job_shows_its_cause_on_the_console(finished, tmp_path):
    work, cfg = finished
    copy = tmp_path / "copy"
    shutil.copytree(work, copy, symlinks=True)
    teacher = copy / "results/tiny/teachers/digits/symmetric_0.20/mlp_32/seed0"
    (teacher / "model_last.pt").write_bytes(b"truncated")
    run = next(copy.glob("results/tiny/runs/digits/symmetric_0.20/single-*/kd/seed0"))
    assert subprocess.run(["noisykd", "forget", str(run)], capture_output=True).returncode == 0
    res = snakemake(copy, "--configfile", str(cfg))
    err = res.stderr
    assert res.returncode != 0
    assert "job train_student_digits_symmetric_0_20_single_mlp_32" in err and "failed" in err
    assert "noisykd train-runs: error: teacher model" in err and "unreadable" in err
    lines = err.splitlines()
    assert "runs finished" in lines[-1] and "missing or failed" in lines[-1]
    assert max(map(len, lines)) <= 300  # the job's run specs stay off the console


def test_bundle_round_trip_plans_no_training_and_rebuilds_identical_tables(finished, tmp_path):
    """A finished tiny study exported with its teachers, imported into an empty folder:
    `snakemake -n` with the bundle's config plans no training (only the report), and the
    tables built from the import are byte-identical to the original's."""
    work, cfg = finished
    bundle = tmp_path / "tiny.tar.gz"
    noisykd(work, "bundle", "export", "--results", "results/tiny", "--out", bundle,
            "--with-teachers")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    noisykd(fresh, "bundle", "import", bundle, "--results", "results/tiny")
    config = fresh / "results/tiny/config.yaml"
    assert yaml.safe_load(config.read_text())["study"] == "tiny"
    dry = snakemake(fresh, "-n", "--configfile", str(config))
    assert dry.returncode == 0, dry.stderr[-3000:]
    planned = {line.split()[0] for line in (dry.stdout + dry.stderr).splitlines()
               if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert planned == {"report", "all", "total"}, planned
    noisykd(fresh, "report", "--results", "results/tiny")
    ours = work / "results/tiny/tables"
    for table in ours.iterdir():
        assert (fresh / "results/tiny/tables" / table.name).read_bytes() == table.read_bytes()
    res = noisykd(fresh, "compare", bundle, "results/tiny", "--fail-on", "differs", "--out",
                  "results/tiny/compare")
    assert "0 better, 0 worse, 10 equivalent, 0 inconclusive" in res.stdout


def test_teacher_zoo_trains_students_only(finished, tmp_path):
    """The README's teacher-zoo recipe: a teachers-only bundle imported into another study;
    its snakemake trains the students and no teacher, and the students record the zoo's
    teachers."""
    work, _ = finished
    zoo = tmp_path / "teachers.tar.gz"
    noisykd(work, "bundle", "export", "--results", "results/tiny", "--teachers-only", "--out",
            zoo)
    mine = tmp_path / "mine"
    mine.mkdir()
    noisykd(mine, "bundle", "import", zoo, "--results", "results/mystudy")
    cfg = write_config(mine / "my.yaml", {**TINY_RUN, "study": "mystudy",
                                          "methods": ["kd"], "setups": ["single"]})
    res = snakemake(mine, "--configfile", str(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "train_teacher" not in res.stdout + res.stderr  # no teacher job at all
    teacher = json.loads((work / "results/tiny/teachers/digits/symmetric_0.20/mlp_32/seed0/"
                                 "metrics.json").read_text())
    student = json.loads(next(mine.glob("results/mystudy/runs/digits/symmetric_0.20/single-*/"
                                        "kd/seed0/metrics.json")).read_text())
    assert student["spec"]["teachers"][0]["config_hash"] == teacher["config_hash"]
