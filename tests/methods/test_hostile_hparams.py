"""Hostile input (issue 24, parts 6 and 7): hyper-parameters, training keys, architectures,
devices and ``train-runs`` specs are refused in one line naming the key and the value,
with a non-zero exit, before any training (no run folder, no metrics.json)."""

import json
import math

import pytest

from benchmark.cli import main
from benchmark.core.errors import UserError
from benchmark.data.labels import LabelsRequest, write_labels
from benchmark.data.noise import NoiseSpec
from benchmark.plan import grid
from benchmark.spec.trainconfig import TrainConfig
from methods import build_method
from methods.catalog import HPARAM_DEFAULTS, HPARAM_RULES, check_hparams
from tests.helpers import TINY


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    path = tmp_path_factory.mktemp("labels") / "digits.npz"
    write_labels(LabelsRequest("digits", NoiseSpec("symmetric", 0.2), 0), path)
    return path


def one_line_error(capsys, code, *names):
    """The CLI's refusal: status 2 and one line on stderr naming every one of ``names``."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.count("\n") == 0 and err.startswith("noisykd ") and ": error: " in err, err
    for name in names:
        assert name in err, (name, err)
    return err


def nothing_written(work):
    assert not work.exists() or list(work.rglob("*")) == [], sorted(work.rglob("*"))


def student(labels, out, *extra):
    return ["student", "--dataset", "digits", "--labels", str(labels), "--arch", "mlp_8",
            "--seed", "0", "--out", str(out), "--epochs", "1", *extra]


# ---- the table: one rule per hyper-parameter, next to its default ------------------------

def test_every_hyper_parameter_has_a_rule_its_default_meets():
    assert set(HPARAM_RULES) == set(HPARAM_DEFAULTS)
    for method, defaults in HPARAM_DEFAULTS.items():
        assert set(HPARAM_RULES[method]) == set(defaults), method
        for key, value in defaults.items():
            if (method, key) == ("fixed_alpha", "alpha"):  # null: every run must set it
                assert not HPARAM_RULES[method][key].ok(value)
                continue
            assert HPARAM_RULES[method][key].ok(value), (method, key, value)
        check_hparams(method, dict(defaults) if method != "fixed_alpha" else
                      {**defaults, "alpha": 0.5})


def test_a_bool_is_no_number_and_a_number_is_finite():
    for method, rules in HPARAM_RULES.items():
        for key, rule in rules.items():
            for bad in (True, False, "abc", float("nan"), float("inf"), [1], {"a": 1}):
                assert not rule.ok(bad), (method, key, bad)


HPARAM_BAD = [  # method, hparams, what the one line names
    ("kd", {"T": "abc"}, ["'kd'", "T > 0", "'abc'"]),
    ("kd", {"T": -4}, ["T > 0", "-4"]),
    ("kd", {"T": 0}, ["T > 0", "got 0"]),
    ("kd", {"T": True}, ["T > 0", "True"]),
    ("kd", {"kd_weight": 1.5}, ["kd_weight in [0, 1]", "1.5"]),
    ("fixed_alpha", {"alpha": -0.1}, ["alpha in [0, 1]", "-0.1"]),
    ("fixed_alpha", {}, ["alpha in [0, 1]", "None", "a run must set it"]),
    ("fixed_alpha", {"T": -1}, ["T > 0", "-1"]),
    ("almkd", {"T": 0.0}, ["T > 0", "0.0"]),
    ("almkd", {"kd_share": 2}, ["kd_share in [0, 1]", "2"]),
    ("almkd", {"meta_chunk": 0}, ["meta_chunk >= 1 (an integer)", "0"]),
    ("almkd_v1", {"meta_val_batch": 0}, ["meta_val_batch >= 1", "or null", "0"]),
    ("almkd_full", {"full_val_batch": 1.5}, ["full_val_batch >= 1 (an integer)", "1.5"]),
    ("almkd", {"meta_every": 0}, ["meta_every >= 1 (an integer)", "0"]),
    ("almkd", {"meta_every": 2.0}, ["meta_every >= 1 (an integer)", "2.0"]),
    ("almkd", {"meta_start": -1}, ["meta_start >= 0", "-1"]),
    ("almkd", {"meta_batch": 0}, ["meta_batch >= 1", "or null", "0"]),
    ("amal", {"meta_steps": "5"}, ["meta_steps >= 1", "'5' (text, not a number)"]),
    ("amal", {"meta_lr": 0}, ["meta_lr > 0", "0"]),
    ("amal", {"meta_lr": "1e3"}, ["meta_lr > 0", "write 1.0e3"]),
    ("almkd_v1", {"meta_train_share": 1.5}, ["meta_train_share in [0, 1]", "1.5"]),
    ("almkd_v1", {"refresh_mode": "test"}, ["refresh_mode one of eval, train", "'test'"]),
    ("almkd_v1", {"kd_share": 0.5}, ["unknown hyper-parameter(s) kd_share"]),
    ("almkd_full", {"schedule": "daily"}, ["schedule one of every_step, almkd", "'daily'"]),
    ("almkd_full", {"hypergrad": "fd"}, ["hypergrad one of double_backward, jvp", "'fd'"]),
    ("almkd_full", {"meta_train_share": 0.25}, ["meta_train_share = 0", "0.25"]),
    ("almkd_full", {"refresh_mode": "train"}, ["refresh_mode one of eval", "'train'"]),
    ("almkd_full", {"meta_val_batch": None}, ["meta_val_batch >= 1", "None"]),
    ("almkd_full", {"full_steps": 0}, ["full_steps >= 1", "0"]),
    ("ce", {"T": 4}, ["unknown hyper-parameter(s) T", "known: none"]),
    ("nope", {}, ["unknown method 'nope'", "almkd"]),
]


@pytest.mark.parametrize(("method", "hp", "names"), HPARAM_BAD,
                         ids=[f"{m}-{h}" for m, h, _ in HPARAM_BAD])
def test_check_hparams_refuses_in_one_line(method, hp, names):
    with pytest.raises(UserError) as err:
        check_hparams(method, hp)
    text = str(err.value)
    assert "\n" not in text and all(n in text for n in names), text
    if method != "nope":
        assert f"method {method!r}" in text
        with pytest.raises(UserError):  # a method built from Python refuses them too
            build_method(method, **hp)


def test_valid_values_pass_at_their_edges():
    for method, hp in [("kd", {"T": 1, "kd_weight": 0}), ("kd", {"kd_weight": 1.0}),
                       ("fixed_alpha", {"alpha": 0}), ("fixed_alpha", {"alpha": 1.0}),
                       ("almkd", {"meta_start": 0, "meta_batch": None, "meta_val_batch": None,
                                  "meta_train_share": 1, "refresh_mode": "train",
                                  "meta_lr": 1e-9}),
                       ("almkd_full", {"schedule": "almkd", "hypergrad": "double_backward",
                                       "meta_train_share": 0.0})]:
        check_hparams(method, hp)
        build_method(method, **hp)


# ---- the CLI: --hparam, --device, training keys ------------------------------------------

CLI_BAD = [  # --method, --hparam values, what the line names
    ("kd", ["T=abc"], ["'kd'", "'abc'", "T > 0"]),
    ("kd", ["T=-4"], ["T > 0", "-4"]),
    ("kd", ["T=true"], ["T > 0", "True"]),
    ("kd", ["T=.nan"], ["T > 0", "nan"]),
    ("kd", ["T=["], ["--hparam 'T=['"]),
    ("kd", ["T"], ["--hparam expects KEY=VALUE", "'T'"]),
    ("kd", ["temp=2"], ["unknown hyper-parameter(s) temp"]),
    ("fixed_alpha", [], ["alpha in [0, 1]", "None"]),
    ("fixed_alpha", ["alpha=2"], ["alpha in [0, 1]", "got 2"]),
    ("almkd", ["meta_every=0"], ["meta_every >= 1", "0"]),
    ("almkd", ["refresh_mode=test"], ["refresh_mode one of eval, train", "'test'"]),
    ("almkd", ["meta_steps=1e1"], ["meta_steps >= 1 (an integer)", "10.0"]),
    ("almkd_full", ["schedule=daily"], ["schedule one of every_step, almkd", "'daily'"]),
    ("nope", [], ["unknown method 'nope'"]),
]


@pytest.mark.parametrize(("method", "hparams", "names"), CLI_BAD,
                         ids=[f"{m}-{'-'.join(h)}" for m, h, _ in CLI_BAD])
def test_student_hparams_are_refused_before_training(tmp_path, labels, capsys, method,
                                                     hparams, names):
    work = tmp_path / "w"
    teacher = work / "teacher"  # never read: the refusal comes first
    code = main(student(labels, work / "run", "--method", method, "--teacher", str(teacher),
                        *[a for h in hparams for a in ("--hparam", h)]))
    one_line_error(capsys, code, *names)
    nothing_written(work)


def test_hparam_1e3_is_the_number_yaml_reads_as_text():
    from benchmark.cli.train_commands import parse_hparams

    assert parse_hparams(["meta_lr=1e3", "T=4", "meta_batch=null", "refresh_mode=eval"]) == {
        "meta_lr": 1000.0, "T": 4, "meta_batch": None, "refresh_mode": "eval"}


@pytest.mark.parametrize("device", ["banana", "cuda:x", "gpu", "cuda:", ""])
@pytest.mark.parametrize("command", ["student", "teacher"])
def test_a_bad_device_is_one_line_naming_the_allowed_forms(tmp_path, labels, capsys, device,
                                                           command):
    work = tmp_path / "w"
    argv = student(labels, work / "run", "--device", device)
    argv[0] = command
    one_line_error(capsys, main(argv), "'device'", repr(device), "auto, cpu, cuda, cuda:N")
    nothing_written(work)


def _missing_device() -> str:
    import torch

    return "mps" if not torch.backends.mps.is_available() else "cuda:999"


def test_a_device_that_is_not_there_is_one_line(tmp_path, labels, capsys):
    work = tmp_path / "w"
    device = _missing_device()
    one_line_error(capsys, main(student(labels, work / "run", "--device", device)),
                   repr(device), "requested but")
    nothing_written(work)


def test_hparams_are_checked_before_the_machine_is_asked(tmp_path, labels, capsys):
    """Every argument is checked before the device is looked for (and before run() builds
    the method, which checks them again)."""
    work = tmp_path / "w"
    code = main(student(labels, work / "run", "--device", _missing_device(), "--method", "kd",
                        "--hparam", "T=-4"))
    one_line_error(capsys, code, "T > 0", "-4")
    nothing_written(work)


def test_train_runs_looks_for_every_device_before_the_first_run(tmp_path, labels, capsys):
    work = tmp_path / "w"
    device = _missing_device()
    specs = [spec(labels, work / "first"),
             spec(labels, work / "second", train={"epochs": 1, "device": device})]
    one_line_error(capsys, main(["train-runs", "--runs", json.dumps(specs)]), repr(device),
                   "requested but")
    nothing_written(work)


@pytest.mark.parametrize(("key", "value", "want"), [
    ("epochs", True, "an integer >= 1"), ("epochs", 2.0, "an integer >= 1"),
    ("batch_size", False, "an integer >= 1"), ("lr", True, "> 0 (a number)"),
    ("lr", "0.1", "> 0 (a number)"), ("lr", math.inf, "> 0 (a number)"),
    ("momentum", "x", "in [0, 1) (a number)"), ("nesterov", "yes", "true or false"),
    ("compile", 1, "true or false"), ("keep_checkpoint", "no", "true or false"),
    ("milestones", [True], "a list of integers"), ("milestones", "150", "a list of integers"),
    ("milestones", [1.5], "a list of integers"), ("gamma", None, "in (0, 1] (a number)"),
    ("device", "banana", "auto, cpu, cuda, cuda:N or mps"),
    ("device", 0, "auto, cpu, cuda, cuda:N or mps"),
    ("eval_batch_size", True, ">= 1 (an integer)"), ("checkpoint_every", "1", ">= 1 (an integer)"),
])
def test_training_keys_refuse_wrong_types(key, value, want):
    with pytest.raises(UserError) as err:
        TrainConfig.from_dict({key: value})
    assert str(err.value) == f"training key {key!r} must be {want}, got {value!r}"


def test_training_keys_keep_what_valid_configs_give():
    cfg = TrainConfig.from_dict({"lr": 1, "milestones": [150.0, 180], "device": "cuda:1"})
    assert cfg.lr == 1 and isinstance(cfg.lr, int)  # checked, never converted (spec hashes)
    assert cfg.milestones == (150, 180) and cfg.device == "cuda:1"
    for device in ("auto", "cpu", "cuda", "cuda:0", "mps"):
        TrainConfig(device=device)
    with pytest.raises(UserError, match="training keys must be a mapping"):
        TrainConfig.from_dict([["epochs", 3]])


# ---- planning ----------------------------------------------------------------------------

def _methods(*entries):
    return {"methods": ["ce", *entries]}


def _dataset(**change):
    return {"datasets": [{**TINY["datasets"][0], **change}]}


PLAN_BAD = [  # change to TINY, what the line names
    (_methods({"name": "kd", "hparams": {"T": -4}}), ["config key 'methods'", "T > 0", "-4"]),
    (_methods({"name": "kd", "hparams": {"T": "abc"}}), ["'kd'", "T > 0", "'abc'"]),
    (_methods({"name": "kd", "hparams": {"T": True}}), ["T > 0", "True"]),
    (_methods({"name": "kd", "hparams": {"kd_weight": 1.2}}), ["kd_weight in [0, 1]", "1.2"]),
    (_methods({"name": "fixed_alpha", "alphas": [0.3, True]}),
     ["config key 'methods[1].alphas'", "alpha must be in [0, 1] (a number), got True"]),
    (_methods({"name": "kd", "hparams": [["T", 2]]}),
     ["config key 'methods[1].hparams'", "a mapping"]),
    (_methods({"name": "almkd", "hparams": {"meta_start": 1, "meta_every": 0}}),
     ["'almkd'", "meta_every >= 1 (an integer)", "got 0"]),
    (_methods({"name": "almkd", "hparams": {"meta_start": 1, "kd_share": "0.9"}}),
     ["kd_share in [0, 1]", "'0.9'"]),
    (_methods({"name": "amal", "hparams": {"meta_start": 1, "meta_lr": -1}}),
     ["meta_lr > 0", "-1"]),
    (_methods({"name": "amal", "hparams": {"meta_start": 1, "meta_lr": "1e3"}}),
     ["meta_lr > 0", "write 1.0e3"]),
    (_methods({"name": "almkd_v1", "hparams": {"meta_start": 1, "refresh_mode": "x"}}),
     ["refresh_mode one of eval, train", "'x'"]),
    (_methods({"name": "almkd_full", "hparams": {"meta_start": 1, "schedule": "x"}}),
     ["schedule one of every_step, almkd", "'x'"]),
    ({**_dataset(methods=["ce", {"name": "kd", "hparams": {"T": 0}}])},
     ["config key 'datasets[digits].methods'", "T > 0", "got 0"]),
    (_dataset(train={"epochs": True}),
     ["config key 'datasets[digits].train'", "'epochs' must be an integer >= 1", "True"]),
    (_dataset(train={"epochs": 3, "lr": True}), ["'lr' must be > 0 (a number)", "True"]),
    (_dataset(teacher_train={"epochs": "3"}),
     ["config key 'datasets[digits].teacher_train'", "'epochs'", "'3'"]),
    (_dataset(student="mlp_large"),
     ["config key 'datasets[digits].student'", "unknown architecture 'mlp_large'"]),
    (_dataset(teacher="cifar_resnet9"),
     ["config key 'datasets[digits].teacher'", "unknown architecture 'cifar_resnet9'"]),
    (_dataset(multi_teachers=["mlp_16", "wrn_16_3"]),
     ["config key 'datasets[digits].multi_teachers'", "'wrn_16_3'"]),
    (_dataset(multi_teachers="mlp_16"),
     ["config key 'datasets[digits].multi_teachers'", "a list of architectures"]),
    (_dataset(student=7), ["config key 'datasets[digits].student'", "a model name, got 7"]),
    ({"runtime": {"device": "banana"}},
     ["config key 'runtime.device'", "auto, cpu, cuda, cuda:N or mps", "'banana'"]),
    ({"runtime": "cpu"}, ["config key 'runtime'", "a mapping"]),
]


@pytest.mark.parametrize(("change", "names"), PLAN_BAD, ids=[n[-1] for _, n in PLAN_BAD])
def test_planning_refuses_in_one_line(change, names):
    with pytest.raises(UserError) as err:
        grid.plan({**TINY, **change})
    text = str(err.value)
    assert "\n" not in text and all(n in text for n in names), text


def test_planning_asks_timm_only_for_a_name_that_is_not_the_suites():
    # a timm model plans (timm asked); a misspelt one is refused naming it
    p = grid.plan({**TINY, **_dataset(teacher="resnet18")})
    assert "resnet18" in {r.arch for r in p.teacher_runs}
    with pytest.raises(UserError, match="unknown architecture 'resnet18x'"):
        grid.plan({**TINY, **_dataset(teacher="resnet18x")})
    with pytest.raises(UserError, match="unknown architecture 'small_resnet18x'"):
        grid.plan({**TINY, **_dataset(teacher="small_resnet18x")})


def test_the_snakefile_check_refuses_epochs_true_in_one_line():
    from benchmark.plan.config_check import explain_file
    from tests.conftest import REPO_ROOT

    line = explain_file({**TINY, **_dataset(train={"epochs": True})},
                        REPO_ROOT / "workflows" / "config" / "schema.yaml")
    assert line is not None and "\n" not in line and "epochs" in line and "True" in line


# ---- train-runs ---------------------------------------------------------------------------

def spec(labels, out, /, **change):
    """A valid one-epoch teacher run (what the workflow sends), with ``change`` applied."""
    s = {"kind": "teacher", "dataset": "digits", "labels": str(labels), "arch": "mlp_8",
         "seed": 0, "out": str(out), "train": {"epochs": 1, "batch_size": 256},
         "method": "ce", "hparams": {}, "teachers": [], "teacher_labels": "noisy",
         "teacher_checkpoint": "last", "data_root": None}
    s.update(change)
    return {k: v for k, v in s.items() if v != "DROP"}


def test_a_valid_spec_trains(tmp_path, labels, capsys):
    """The control of the tests below: the same spec, unchanged, trains."""
    out = tmp_path / "w" / "run"
    assert main(["train-runs", "--runs", json.dumps([spec(labels, out)])]) == 0
    assert (out / "metrics.json").is_file()
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("done ")


def test_an_empty_list_trains_nothing_and_says_so(capsys):
    """Documented in --runs's help: an empty job (nothing to train) exits 0."""
    assert main(["train-runs", "--runs", "[]"]) == 0
    assert capsys.readouterr().out.strip() == "done: no runs"


RUNS_BAD = [  # the --runs text (a function of the valid spec), what the line names
    (lambda s: "{}", ["--runs must be a JSON list of run specs", "got an object"]),
    (lambda s: json.dumps(s), ["--runs must be a JSON list", "got an object"]),
    (lambda s: '"x"', ["--runs must be a JSON list", "got a string"]),
    (lambda s: "3", ["--runs must be a JSON list", "got a number"]),
    (lambda s: "null", ["--runs must be a JSON list", "got null"]),
    (lambda s: "[1]", ["--runs: run 0", "must be a JSON object", "got 1"]),
    (lambda s: "[[]]", ["--runs: run 0", "must be a JSON object", "got []"]),
    (lambda s: "[{", ["--runs is not valid JSON"]),
    (lambda s: "", ["--runs is not valid JSON"]),
]


@pytest.mark.parametrize(("text", "names"), RUNS_BAD, ids=[n[-1] for _, n in RUNS_BAD])
def test_runs_that_are_no_list_of_specs_are_one_line(tmp_path, labels, capsys, text, names):
    work = tmp_path / "w"
    code = main(["train-runs", "--runs", text(spec(labels, work / "run"))])
    one_line_error(capsys, code, *names)
    nothing_written(work)


SPEC_BAD = [  # change to the valid spec, what the line names
    ({"seed": "DROP"}, ["run 1", "missing key(s) seed"]),
    ({"train": "DROP", "out": "DROP"}, ["missing key(s) out, train"]),
    ({"epochs": 3}, ["run 1", "unknown key(s) epochs", "allowed: kind"]),
    ({"kind": "pupil"}, ["'kind' must be teacher or student", "'pupil'"]),
    ({"dataset": "svhn"}, ["'dataset' must be one of", "'svhn'"]),
    ({"seed": "0"}, ["'seed' must be an integer >= 0", "'0'"]),
    ({"seed": True}, ["'seed' must be an integer >= 0", "True"]),
    ({"seed": -1}, ["'seed' must be an integer >= 0", "-1"]),
    ({"labels": 3}, ["'labels' must be a path", "3"]),
    ({"out": ""}, ["'out' must be a path", "''"]),
    ({"data_root": ["x"]}, ["'data_root' must be a path or null"]),
    ({"arch": "resnett18"}, ["unknown architecture 'resnett18'"]),
    ({"arch": None}, ["architecture must be a model name", "None"]),
    ({"dataset": "synthetic", "arch": "cifar_resnet8"},
     ["'cifar_resnet8' needs image inputs; tabular data need mlp_<hidden>"]),
    ({"train": {"epochs": True}}, ["training key 'epochs' must be an integer >= 1", "True"]),
    ({"train": {"epochs": 1, "lr": "fast"}}, ["training key 'lr'", "'fast'"]),
    ({"train": {"epochz": 1}}, ["unknown training key(s): epochz"]),
    ({"train": [1]}, ["training keys must be a mapping", "[1]"]),
    ({"train": {"epochs": 1, "device": "banana"}}, ["'device'", "'banana'", "cuda:N"]),
    ({"method": "kd"}, ["'method' must be ce for a teacher", "'kd'"]),
    ({"method": 3}, ["'method' must be one of", "3"]),
    ({"kind": "student", "method": "kd"}, ["'teachers' must be a non-empty list",
                                           "method 'kd'"]),
    ({"kind": "student", "teachers": ["t"]}, ["'teachers' must be an empty list",
                                              "method 'ce'"]),
    ({"teachers": "t"}, ["'teachers' must be a list of teacher run folders", "'t'"]),
    ({"kind": "student", "method": "kd", "teachers": ["t"], "hparams": {"T": -4}},
     ["method 'kd'", "T > 0", "-4"]),
    ({"kind": "student", "method": "kd", "teachers": ["t"], "hparams": {"T": "abc"}},
     ["T > 0", "'abc'"]),
    ({"kind": "student", "method": "fixed_alpha", "teachers": ["t"]},
     ["alpha in [0, 1]", "None"]),
    ({"hparams": [1]}, ["'hparams' must be an object", "[1]"]),
    ({"hparams": {"T": 2}}, ["method 'ce': unknown hyper-parameter(s) T"]),
    ({"teacher_labels": "dirty"}, ["'teacher_labels' must be noisy or clean", "'dirty'"]),
    ({"teacher_checkpoint": "best"}, ["'teacher_checkpoint' must be last or best_val"]),
]


@pytest.mark.parametrize(("change", "names"), SPEC_BAD, ids=[n[-1] for _, n in SPEC_BAD])
def test_a_bad_spec_is_one_line_and_no_run_of_its_list_trains(tmp_path, labels, capsys,
                                                              change, names):
    """The bad spec is the second: the first, valid one must not train either."""
    work = tmp_path / "w"
    specs = [spec(labels, work / "first"), spec(labels, work / "second", **change)]
    code = main(["train-runs", "--runs", json.dumps(specs)])
    one_line_error(capsys, code, "--runs: run 1: ", *names)
    nothing_written(work)


def test_runs_file_errors_name_the_file(tmp_path, labels, capsys):
    work = tmp_path / "w"
    bad = tmp_path / "specs.json"
    bad.write_text("[{'kind': 'teacher'}]")  # Python, not JSON
    one_line_error(capsys, main(["train-runs", "--runs-file", str(bad)]),
                   f"--runs-file {bad} is not valid JSON")
    bad.write_text(json.dumps({"runs": [spec(labels, work / "run")]}))
    one_line_error(capsys, main(["train-runs", "--runs-file", str(bad)]),
                   f"--runs-file {bad} must be a JSON list", "got an object")
    bad.write_text(json.dumps([spec(labels, work / "run", seed=1.5)]))
    one_line_error(capsys, main(["train-runs", "--runs-file", str(bad)]),
                   f"--runs-file {bad}: run 0: 'seed' must be an integer >= 0", "1.5")
    nothing_written(work)


def test_the_workflow_specs_pass_the_check():
    """What the planner sends is what train-runs accepts, and reads back as the same run:
    every run of a grid's jobs, through the job's own command line (JSON, quoted)."""
    import shlex

    p = grid.plan(TINY)
    for job in p.teacher_jobs + p.student_jobs:
        sent = json.loads(shlex.split(job.command_args("data", None))[0])
        for i, (run, obj) in enumerate(zip(job.runs, sent, strict=True)):
            back = grid.RunSpec.from_json(obj, f"run {i}")
            assert back == grid.RunSpec(**{**run.__dict__, "data_root": "data"})
            assert back.to_json() == obj and obj["data_root"] == "data"
