"""Every command the README shows is run: here, by a named test, or by .ci/run.

The README's shell blocks are parsed; each command must have an entry in ``HOW`` saying
where it runs, so a command added to the README without a test fails here, and so does an
entry whose command left the README. Commands cheap enough run here as written, in a
scratch folder; the rest name the test that runs them (that test must exist and contain the
command's distinctive words) or are run by ``.ci/run`` (which must contain them). The few
that cannot run on this machine say why.
"""

from __future__ import annotations

import importlib
import inspect
import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"


def readme_commands() -> list[str]:
    """The commands of the README's ```bash blocks: continuation lines joined, comments and
    runs of blanks dropped."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(re.sub(r"\s+", " ", line))
    return commands


HERE, TEST, CI, NOT_HERE = "here", "test", "ci", "not here"
LABELS_020 = ("noisykd labels --dataset digits --noise symmetric --rate 0.2 --seed 0 "
              "--out results/manual/labels/digits/symmetric_0.20/seed0.npz")

ROUND_TRIP = ("tests/test_workflow.py::"
              "test_bundle_round_trip_plans_no_training_and_rebuilds_identical_tables")
ZOO = "tests/test_workflow.py::test_teacher_zoo_trains_students_only"

#: command -> (where it runs, the test / the reason[, what the named test's source shows])
HOW: dict[str, tuple] = {
    'pip install -e ".[dev]" && snakemake --cores all': (CI, "snakemake --cores all"),
    'pip install -e ".[dev]" && pytest': (CI, "pytest"),
    'pip install -e ".[dev]"': (CI, 'pip install -q -e ".[dev]"'),
    "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu": (
        NOT_HERE, "download.pytorch.org is not reachable from these machines (the package "
                  "mirror serves only the CUDA build); the README says the CPU install is "
                  "unmeasured"),
    "noisykd labels --dataset digits --noise symmetric --rate 0.4 --include-true --seed 0 "
    "--out results/manual/labels/digits/symmetric-incl_0.40/seed0.npz": (HERE, ""),
    "noisykd labels --dataset cifar10 --noise human --variant worst --seed 0 --out l.npz "
    "--data-root data --cifar-n-dir data/cifar-n": (HERE, "without CIFAR: the one-line error"),
    "noisykd labels-summary results/manual/labels/*/*/*.npz": (HERE, ""),
    LABELS_020: (HERE, ""),
    "noisykd teacher --dataset digits --labels "
    "results/manual/labels/digits/symmetric_0.20/seed0.npz --arch cifar_resnet14 --seed 0 "
    "--epochs 4 --milestones 2,3 --out "
    "results/manual/teachers/digits/symmetric_0.20/cifar_resnet14/seed0": (HERE, ""),
    "noisykd student --dataset digits --labels "
    "results/manual/labels/digits/symmetric_0.20/seed0.npz --arch cifar_resnet8 --method ce "
    "--seed 0 --epochs 4 --milestones 2,3 --out "
    "results/manual/runs/digits/symmetric_0.20/none/ce/seed0": (HERE, ""),
    "snakemake --cores all --configfile workflows/config/authors_synthetic.yaml": (
        HERE, "dry run (-n) here; the tiny grids of test_workflow run the same rules"),
    "python scripts/mutation_test.py": (
        NOT_HERE, "mutmut over methods/ takes about an hour on 2 cores; run on purpose, its "
                  "last result is in the README"),
    "bash scripts/gpu_perf.sh": (
        TEST, "tests/test_perf.py::test_gpu_script_runs_every_phase_on_cpu", "gpu_perf.sh"),
    "snakemake --cores all": (CI, "snakemake --cores all"),
    "snakemake --profile profiles/workstation --configfile workflows/config/fmnist.yaml": (
        HERE, "dry run (-n) here: the run itself needs a GPU for about an hour"),
    "snakemake --cores 1 tables": (
        TEST, "tests/test_workflow.py::test_tables_target_trains_nothing",
        '"--cores", "1", "tables"'),
    "snakemake --report results/report.html": (
        TEST, "tests/test_workflow.py::test_tiny_grid_end_to_end_and_rerun_does_nothing",
        '"--report", "results/report.html"'),
    "noisykd bundle verify study.tar.gz": (
        TEST, "tests/test_bundle.py::test_export_holds_the_study_and_a_manifest_of_every_file",
        '"bundle", "verify"'),
    "noisykd bundle import study.tar.gz --results results/study": (
        TEST, ROUND_TRIP, '"bundle", "import", bundle'),
    "noisykd report --results results/study": (
        TEST, ROUND_TRIP, '"report", "--results", "results/tiny"'),
    "noisykd compare study.tar.gz results/study --margin 1.0 --out results/study/compare": (
        TEST, ROUND_TRIP, '"compare", bundle, "results/tiny"'),
    "noisykd bundle export --results results/study --teachers-only --out teachers.tar.gz": (
        TEST, ZOO, '"--teachers-only"'),
    "noisykd bundle import teachers.tar.gz --results results/mystudy": (
        TEST, ZOO, '"results/mystudy"'),
    "snakemake --cores all --configfile my.yaml": (TEST, ZOO, '"my.yaml"'),
    "noisykd bundle import reference/reference.tar.gz --results results/reference && "
    "noisykd report --results results/reference": (
        TEST, "tests/test_reference.py::"
              "test_importing_the_bundle_rebuilds_the_readme_tables_byte_for_byte",
        "bundle.import_bundle(BUNDLE, results)"),
    "snakemake --cores all --keep-going --configfile workflows/config/reference.yaml": (
        NOT_HERE, "the reference study itself: 58 min on 2 cores, run on purpose to regenerate "
                  "the committed bundle; CI reruns its slice (reference_slice.yaml) and "
                  "tests/test_reference.py checks the slice's runs are the study's"),
    "noisykd bundle export --results results/reference --alpha summary --out "
    "reference/reference.tar.gz": (
        TEST, "tests/test_bundle.py::test_alpha_summary_bundles_replace_the_weights_and_carry_"
              "the_invocation_log", '"--alpha", "summary"'),
    "noisykd fingerprint --out reference/platform.json": (
        TEST, "tests/test_compare.py::test_fingerprint_cli_writes_what_it_prints",
        '["fingerprint", "--out"'),
    "noisykd forget results/default/runs/digits/symmetric_0.40/none/ce/seed3 [more run folders]": (
        TEST, "tests/test_workflow.py::test_forget_then_snakemake_retrains_exactly_that_run",
        '["noisykd", "forget"'),
}


def test_every_readme_command_says_where_it_runs():
    commands = set(readme_commands())
    assert commands - set(HOW) == set(), "README commands without an entry in HOW"
    assert set(HOW) - commands == set(), "entries in HOW that are no longer in the README"


@pytest.mark.parametrize("command", [c for c, (how, *_) in HOW.items() if how == TEST])
def test_named_test_runs_the_command(command):
    """The named test exists and runs the command (its source shows the command's words)."""
    _, where, shows = HOW[command]
    path, name = where.split("::")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    assert shows in inspect.getsource(getattr(module, name)), f"{name} does not run {shows}"


@pytest.mark.parametrize("command", [c for c, (how, *_) in HOW.items() if how == CI])
def test_ci_runs_the_command(command):
    assert HOW[command][1] in (REPO_ROOT / ".ci/run").read_text()


def _bash(command: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A scratch checkout: the files the commands read (Snakefile, workflows, profiles), so
    the README's relative paths hold and nothing is written into the repository."""
    root = tmp_path_factory.mktemp("checkout")
    for name in ("Snakefile", "workflows", "profiles"):
        src = REPO_ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    return root


def test_readme_cli_examples_run_as_written(checkout):
    """The README's CLI section, in its order: labels, the summary, a teacher, a student."""
    cli = [c for c, (how, *_) in HOW.items() if how == HERE and c.startswith("noisykd")]
    for command in cli:
        res = _bash(command, checkout)
        if "--dataset cifar10" in command:  # no CIFAR here: the documented one-line error
            assert res.returncode == 2 and "l.npz" not in res.stdout, res.stderr
            assert res.stderr.count("\n") == 1 and "cifar10" in res.stderr, res.stderr
            assert not (checkout / "l.npz").exists()
            continue
        assert res.returncode == 0, f"{command}\n{res.stdout[-2000:]}{res.stderr[-2000:]}"
    manual = checkout / "results/manual"
    assert (manual / "labels/digits/symmetric-incl_0.40/seed0.npz").is_file()
    assert "symmetric-incl_0.40" in _bash(
        "noisykd labels-summary results/manual/labels/*/*/*.npz", checkout).stdout
    for run in ("teachers/digits/symmetric_0.20/cifar_resnet14/seed0",
                "runs/digits/symmetric_0.20/none/ce/seed0"):
        assert (manual / run / "metrics.json").is_file(), run
    # the examples live in a study folder of their own: no note about the old layout
    dry = _bash("snakemake -n --cores 1", checkout)
    assert dry.returncode == 0 and "layout before studies" not in dry.stderr, dry.stderr[-2000:]


@pytest.mark.parametrize("command", [c for c, (how, *_) in HOW.items()
                                     if how == HERE and c.startswith("snakemake")])
def test_readme_snakemake_commands_plan(checkout, command):
    """Training runs of these grids are too long here (see HOW): they are dry-run as
    written, which parses the config, validates it and builds every job."""
    res = _bash(command + " -n", checkout)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Job stats:" in res.stdout + res.stderr
