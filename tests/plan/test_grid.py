"""Planning: job counts, sharing of teachers and ce runs, unique paths, bad configs."""

import sys
from pathlib import Path

import pytest
import yaml

from benchmark.core.errors import UserError
from benchmark.core.hashing import spec_hash
from benchmark.plan import grid
from tests.conftest import REPO_ROOT
from tests.helpers import TINY

CONFIGS = REPO_ROOT / "workflows" / "config"


def load(name):
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


def test_planning_in_a_fresh_process_imports_no_torch():
    import subprocess

    code = ("import sys, yaml; from benchmark.plan import grid; "
            f"grid.plan(yaml.safe_load(open({str(CONFIGS / 'paper.yaml')!r}))); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tiny_grid_counts_and_sharing():
    p = grid.plan(TINY)
    # teachers: mlp_16 (self and multi) and mlp_32 (single and multi), shared: 2 archs x 2 seeds
    assert sorted({(r.arch, r.seed) for r in p.teacher_runs}) == [
        ("mlp_16", 0), ("mlp_16", 1), ("mlp_32", 0), ("mlp_32", 1)]
    assert len(p.teacher_jobs) == 4  # one per arch and seed (seeds_per_job defaults to 1)
    ce = [r for r in p.student_runs if r.method == "ce"]
    assert len(ce) == 2 and all("/none/ce/" in r.out for r in ce)  # once per cell and seed
    kd = [r for r in p.student_runs if r.method == "kd"]
    assert len(kd) == 3 * 2  # three setups x two seeds
    # 1 ce + 3 setups x (kd + 2 fixed_alpha + almkd) = 13 runs per seed
    assert len(p.student_runs) == 13 * 2
    outs = [o for j in p.teacher_jobs + p.student_jobs for o in j.outputs]
    assert len(outs) == len(set(outs))
    single = next(r for r in kd if "/single-" in r.out)
    assert single.teachers == ("results/default/teachers/digits/symmetric_0.20/mlp_32/seed"
                               f"{single.seed}",)
    alm = next(r for r in p.student_runs if r.method == "almkd")
    # alpha.npz is written, not declared: a bundle may carry its summary instead
    assert alm.outputs == [f"{alm.out}/metrics.json", f"{alm.out}/log.csv"]


def test_seed_chunks_and_method_packing():
    one = grid.plan({**TINY, "seeds_per_job": 1})
    both = grid.plan({**TINY, "seeds_per_job": 2})
    packed = grid.plan({**TINY, "seeds_per_job": 2, "pack_methods": True})
    assert len(one.student_jobs) == 2 * len(both.student_jobs)
    assert len(packed.student_jobs) == 4  # none, single, multi, self
    assert len(packed.teacher_jobs) == 1
    for p in (one, both, packed):  # the same runs whatever the packing
        assert sorted(r.out for r in p.student_runs) == sorted(r.out for r in one.student_runs)


def test_ids():
    assert grid.method_id("fixed_alpha", {"alpha": 0.3}) == "fixed_alpha-a0.30"
    assert grid.method_id("kd", {}) == "kd"
    assert grid.method_id("almkd", {"meta_lr": 100}).startswith("almkd-")
    assert grid.setup_id("single", ["cifar_resnet56"], "clean") == "single-cifar_resnet56-cleanT"
    assert grid.setup_id("multi", ["a", "b"], "noisy").startswith("multi-2t-")
    assert grid.setup_id("multi", ["a", "b"], "noisy") != grid.setup_id("multi", ["a", "c"],
                                                                          "noisy")
    assert grid.setup_kind("multi-4t-abcdef-cleanT") == "multi-cleanT"


@pytest.mark.parametrize(("name", "labels", "teacher_runs", "student_runs"), [
    ("default", 20, 40, 235),
    ("paper", 55, 550, 5060),
    ("fmnist", 9, 27, 117),
    ("authors_synthetic", 3, 3, 12),
    ("reference", 42, 237, 4434),
])
def test_shipped_configs_plan(name, labels, teacher_runs, student_runs):
    p = grid.plan(load(name))
    assert (len(p.labels), len(p.teacher_runs), len(p.student_runs)) == (
        labels, teacher_runs, student_runs)


def test_paper_grid_is_the_authors_protocol():
    p = grid.plan(load("paper"))
    run = next(r for r in p.student_runs if r.dataset == "cifar100" and r.method == "almkd")
    train = dict(run.train)
    assert (train["epochs"], train["lr"], train["batch_size"], train["milestones"]) == (
        200, 0.1, 128, [150, 180])
    assert train["nesterov"] and train["weight_decay"] == 5e-4
    assert run.arch == "cifar_resnet8"
    assert {Path(r.labels).parent.name for r in p.student_runs if r.dataset == "cifar100"} == {
        "symmetric-incl_0.20", "symmetric-incl_0.40", "asymmetric_0.40", "instance_0.40",
        "human-noisy"}
    clean = [r for r in p.student_runs if "single-cifar_resnet56-cleanT" in r.out]
    assert clean and all(r.teacher_labels == "clean" for r in clean)


BAD = [
    ({"datasets": [{"name": "svhn", "student": "mlp_8"}]},
     "config key 'datasets': unknown dataset"),
    ({"seeds": []}, "config key 'seeds'"),
    ({"noise": [{"type": "human", "variants": ["aggre"]}]},
     "human variant 'aggre' does not exist for dataset 'digits'"),
    ({"noise": [{"type": "symmetric", "rates": [1.2]}]}, "config key 'noise[0]': noise rate"),
    ({"noise": [{"type": "symmetric", "rate": [0.2]}]}, "unknown key(s) rate"),
    ({"methods": ["almkd2"]}, "unknown method 'almkd2'"),
    ({"methods": [{"name": "almkd"}]}, "3 epochs do not exceed meta_start 10"),
    ({"methods": [{"name": "kd", "hparams": {"temp": 2}}]}, "unknown hyper-parameter(s) temp"),
    ({"methods": [{"name": "fixed_alpha", "alphas": [1.5]}]}, "alpha must be in [0, 1]"),
    ({"setups": ["triple"]}, "unknown setup 'triple'"),
    ({"epochz": 3}, "config key 'epochz'"),
    ({"datasets": [{"name": "digits", "student": "mlp_16"}]}, "setup 'single' needs 'teacher'"),
    ({"datasets": [{"name": "digits", "student": "mlp_16", "teacher": "mlp_8",
                    "multi_teachers": ["mlp_8"], "train": {"epochs": 0}}]},
     "training key 'epochs' must be an integer >= 1"),
    ({"protocol": "paper"}, "config key 'protocol': one of suite, authors"),
    ({"datasets": [{**TINY["datasets"][0], "protocol": "author"}]},
     "config key 'datasets[digits].protocol': one of suite, authors"),
    ({"datasets": [{**TINY["datasets"][0], "train": {"epochs": 3, "protocol": "authors"}}]},
     "config key 'datasets[digits].train.protocol': set protocol at the top level"),
    ({"protocol": "authors"}, "mixes on the simplex (total weight 1), but protocol 'authors' "
                              "starts each of 2 teachers at 0.9"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_configs_name_the_key(change, message):
    with pytest.raises(UserError) as err:
        grid.plan({**TINY, **change})
    assert message in str(err.value)


def test_protocol_is_in_every_spec_and_keeps_studies_apart():
    suite = grid.plan(TINY)
    amal = {"name": "amal", "hparams": {"meta_start": 1, "meta_every": 1}}
    two = [TINY["datasets"][0], {**TINY["datasets"][0], "protocol": "authors"}]
    # one labels file per seed serves both protocols, whose selection-split defaults differ
    # (suite: disjoint, authors: shared): the config must say which
    with pytest.raises(UserError, match="select_fraction"):
        grid.plan({**TINY, "methods": ["ce", "kd", amal], "datasets": two})
    both = grid.plan({**TINY, "methods": ["ce", "kd", amal], "select_fraction": 0,
                      "datasets": two})
    assert all(dict(r.train)["protocol"] == "suite" for r in suite.student_runs)
    authors = [r for r in both.student_runs + both.teacher_runs
               if dict(r.train)["protocol"] == "authors"]
    assert authors and all(r.out.split("/")[3] == "digits-authors" for r in authors)
    assert all(t.startswith("results/default/teachers/digits-authors/") for r in authors
               for t in r.teachers)
    # the labels are the same files under both protocols
    assert {r.labels for r in authors} <= set(both.labels_files)
    assert len({r.out for r in both.student_runs}) == len(both.student_runs)
    # convex almkd is fine under authors with one teacher only
    grid.plan({**TINY, "protocol": "authors", "setups": ["single", "self"]})


def test_labels_cli_args_round_trip():
    assert (grid.labels_cli_args("symmetric-incl_0.40")
            == "--noise symmetric --rate 0.4 --include-true")
    assert grid.labels_cli_args("human-worst") == "--noise human --variant worst"


def test_a_study_is_a_folder():
    p = grid.plan({**TINY, "study": "ablation-1"})
    paths = (p.labels_files + [o for j in p.teacher_jobs + p.student_jobs for o in j.outputs]
             + [i for j in p.student_jobs for i in j.inputs] + grid.report_outputs(p))
    assert paths and all(x.startswith("results/ablation-1/") for x in paths)
    assert grid.plan(TINY).root == "results/default"
    for bad in ("", "../x", "a/b", 3):
        with pytest.raises(UserError, match="study"):
            grid.plan({**TINY, "study": bad})


def test_checkpoints_and_run_ids_stay_inside_the_study():
    from benchmark.core.layout import default_checkpoint_dir, split_run
    from benchmark.training.run import default_run_id

    run = "results/s1/runs/digits/symmetric_0.20/none/ce/seed0"
    teacher = "results/s1/teachers/digits/symmetric_0.20/mlp_32/seed0"
    assert str(default_checkpoint_dir(run)) == (
        "results/s1/checkpoints/runs/digits/symmetric_0.20/none/ce/seed0")
    assert str(default_checkpoint_dir(teacher)).startswith("results/s1/checkpoints/teachers/")
    assert default_run_id(run) == "runs/digits/symmetric_0.20/none/ce/seed0"
    assert split_run("results/s1/runs/digits") is None
    # the layout before studies keeps its checkpoint folder
    assert str(default_checkpoint_dir("results/runs/d/n/none/ce/seed0")) == (
        "results/checkpoints/runs/d/n/none/ce/seed0")


def test_a_dataset_overrides_setups_teacher_labels_methods_and_split():
    """One dataset's own setups, teacher labels, methods and validation share replace the
    top-level ones for it alone; the other dataset keeps the top level."""
    syn = {"name": "synthetic", "student": "mlp_8", "teacher": "mlp_16", "setups": ["single"],
           "teacher_labels": "clean", "methods": ["ce", "kd"], "val_fraction": 0.2,
           "train_subset": 500, "train": {"epochs": 3}}
    config = {**TINY, "datasets": [TINY["datasets"][0], syn], "teacher_labels": ["noisy"]}
    p = grid.plan(config)
    by = {}
    for r in p.student_runs:
        by.setdefault(r.dataset, set()).add((r.method, r.out.split("/")[5]))
    assert by["synthetic"] == {("ce", "none"), ("kd", "single-mlp_16-cleanT")}
    digits = {m for m, _ in by["digits"]}
    assert digits == {"ce", "kd", "fixed_alpha", "almkd"}
    assert {s for _, s in by["digits"]} == {"none", "single-mlp_32", "multi-2t-"
                                            + spec_hash(["mlp_16", "mlp_32"])[:6], "self"}
    assert {(r.arch, r.teacher_labels) for r in p.teacher_runs if r.dataset == "synthetic"} == {
        ("mlp_16", "clean")}
    assert grid.val_fraction_of(config, "synthetic") == 0.2
    assert grid.val_fraction_of(config, "digits") == 0.1
    assert grid.train_subset_arg(config, "synthetic") == "--train-subset 500"
    assert grid.train_subset_arg(config, "digits") == ""


DATASET_BAD = [
    ({"setups": ["pair"]}, "config key 'datasets[digits].setups': unknown setup 'pair'"),
    ({"teacher_labels": "dirty"}, "config key 'datasets[digits].teacher_labels': noisy or clean"),
    ({"methods": ["kd", {"name": "kd", "hparams": {"temp": 2}}]},
     "config key 'datasets[digits].methods': method 'kd': unknown hyper-parameter(s) temp"),
    ({"methods": [{"name": "almkd"}]}, "3 epochs do not exceed meta_start 10"),
    ({"train_subset": 0}, "config key 'datasets[0].train_subset': a positive number"),
    ({"train_subset": 1.5}, "config key 'datasets[0].train_subset'"),
    ({"val_fraction": 1.0}, "config key 'datasets[0].val_fraction': in (0, 1)"),
]


@pytest.mark.parametrize(("change", "message"), DATASET_BAD, ids=[m for _, m in DATASET_BAD])
def test_bad_dataset_overrides_name_the_key(change, message):
    with pytest.raises(UserError) as err:
        grid.plan({**TINY, "datasets": [{**TINY["datasets"][0], **change}]})
    assert message in str(err.value)


def test_a_dataset_listed_twice_is_refused_unless_per_protocol_with_one_split():
    digits = TINY["datasets"][0]
    with pytest.raises(UserError, match=r"datasets\[digits\].*listed twice under protocol "
                                        r"'suite'.*runs/digits\)"):
        grid.plan({**TINY, "datasets": [digits, digits]})
    authors = {**digits, "protocol": "authors", "methods": ["ce", "kd"], "select_fraction": 0.1}
    assert grid.plan({**TINY, "datasets": [digits, authors]})
    with pytest.raises(UserError, match=r"datasets\[digits\].*differ in val_fraction, "
                                        "train_subset or select_fraction"):
        grid.plan({**TINY, "datasets": [digits, {**authors, "train_subset": 100}]})
    with pytest.raises(UserError, match="select_fraction"):  # the protocols' defaults differ
        grid.plan({**TINY, "datasets": [digits, {**authors, "select_fraction": None}]})


@pytest.mark.parametrize(("analysis", "message"), [
    ({"margin": 0}, "analysis.margin"), ({"margin": True}, "analysis.margin"),
    ({"moderators": ["teacher"]}, "unknown factor 'teacher'"),
    ({"moderators": "noise_type"}, "expected a list"), ({"alpha": 0.1}, "analysis.alpha"),
])
def test_analysis_block_is_checked_before_work(analysis, message):
    with pytest.raises(UserError, match=message):
        grid.plan({**load("default"), "analysis": analysis})
    grid.plan({**load("default"), "analysis": {"margin": 0.5, "moderators": ["setup"]}})


def test_per_teacher_rules_leave_one_teacher_setups_and_say_so():
    """camkd, ebkd and aekd weigh teachers against each other: with one teacher they are kd.
    The planner leaves them out of the single and self setups (a note says so) and refuses
    a dataset where no setup gives them two teachers."""
    config = {**TINY, "methods": ["kd", "camkd", "aekd"], "setups": ["single", "multi", "self"]}
    p = grid.plan(config)
    by = {}
    for r in p.student_runs:
        by.setdefault(r.method, set()).add(Path(r.out).parts[-3].split("-")[0])
    assert by == {"kd": {"single", "multi", "self"}, "camkd": {"multi"}, "aekd": {"multi"}}
    assert all(len(r.teachers) == 2 for r in p.student_runs if r.method != "kd")
    assert p.notes == ("digits: camkd left out of setups single, self (it weighs 2 or more "
                       "teachers; with one it is kd)",
                       "digits: aekd left out of setups single, self (it weighs 2 or more "
                       "teachers; with one it is kd)")
    assert grid.plan({**TINY, "setups": ["multi"]}).notes == ()
    with pytest.raises(UserError, match=r"'datasets\[digits\].methods': ebkd cannot run in "
                                        r"setups single, self \(it weighs 2 or more teachers; "
                                        r"with one it is kd\): add setup multi or drop ebkd"):
        grid.plan({**config, "methods": ["ebkd"], "setups": ["single", "self"]})


def test_a_target_mixed_from_several_teachers_is_suite_only():
    """bootstrap and proselflc mix the label with the teachers' probabilities: under protocol
    authors each of several teachers would get the whole teacher share, so the planner
    leaves them out of the multi setup there (and says so), and refuses a dataset with no
    other setup; one teacher is fine under both protocols."""
    config = {**TINY, "methods": ["kd", "bootstrap"], "setups": ["single", "multi"]}
    suite = grid.plan(config)
    assert {len(r.teachers) for r in suite.student_runs if r.method == "bootstrap"} == {1, 2}
    assert suite.notes == ()
    authors = grid.plan({**config, "protocol": "authors"})
    assert {len(r.teachers) for r in authors.student_runs if r.method == "bootstrap"} == {1}
    assert {len(r.teachers) for r in authors.student_runs if r.method == "kd"} == {1, 2}
    assert authors.notes == ("digits: bootstrap left out of setups multi (it mixes the label "
                             "and the teachers' probabilities into one target, and protocol "
                             "'authors' gives each of several teachers the whole teacher "
                             "share: the target would not sum to 1)",)
    with pytest.raises(UserError, match="proselflc cannot run in setups multi .* use protocol "
                                        "suite or a one-teacher setup or drop proselflc"):
        grid.plan({**config, "protocol": "authors", "setups": ["multi"],
                   "methods": ["proselflc"]})
