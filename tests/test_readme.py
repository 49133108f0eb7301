"""Every command the README and the documentation pages show is run: here, by a named test,
or by .ci/run.

The ```bash blocks of README.md and of every page under docs/ are parsed; each command must
have an entry in ``HOW`` saying where it runs, so a command added to a page without a test
fails here, and so does an entry whose command left every page. Commands cheap enough run
here as written, in a scratch folder; the rest name the test that runs them (that test must
exist and contain the command's distinctive words) or are run by ``.ci/run`` (which must
contain them). The few that cannot run on this machine say why. Shell commands live in
```bash blocks only: a block of another shell language would escape the rule, so it fails.
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


def documents() -> list:
    """The README, then every page of the documentation (docs/*.md)."""
    return [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]


def page_commands(path) -> list[str]:
    """The commands of a page's ```bash blocks: continuation lines joined, comments and runs
    of blanks dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(re.sub(r"\s+", " ", line))
    return commands


#: the info strings a fenced block may carry; shell commands go in ```bash blocks only
FENCES = {"", "bash", "python", "yaml", "json", "text", "toml"}


HERE, TEST, CI, NOT_HERE = "here", "test", "ci", "not here"
LABELS_020 = ("noisykd labels --dataset digits --noise symmetric --rate 0.2 --seed 0 "
              "--out results/manual/labels/digits/symmetric_0.20/seed0.npz")

#: the reproduction notes' checking commands: they read the authors' code at the cited
#: commits from local mirrors of their repositories (/work/.mirror), which CI does not have
MIRROR = ("reads the authors' repositories at the cited commits from local mirrors "
          "(/work/.mirror), which CI machines do not have: the reproduction notes' checking "
          "commands, run by whoever checks the notes")
MIRROR_COMMANDS = (
    "R=/work/.mirror/durgas16+AMAL/repo",
    "git -C $R show 6c4764b:KD/train_distill_noise.py | cat -n | "
    "sed -n '30,60p;216,250p;375,470p;536,590p;725,770p'",
    "git -C $R show 6c4764b:KD/LearnMultiLambdaMeta.py | cat -n",
    "git -C $R show 6c4764b:KD/utils/custom_dataset.py | cat -n | sed -n '92,160p;200,225p'",
    "git -C $R show 6c4764b:KD/utils/synthetic.py | cat -n | sed -n '33,60p;120,131p'",
    "git -C $R show 642fd9b:getLambda/LearnLambdaMeta.py | cat -n | sed -n '186,325p'",
    "git -C $R show 642fd9b:getLambda/LearnMultiLambdaMeta.py | cat -n | sed -n '80,314p'",
    "git -C $R show 642fd9b:train_distill_learn_multilam.py | cat -n | "
    "sed -n '36,46p;286,297p;455,465p;520,560p;600,620p;1175,1196p'",
    "git -C $R show 642fd9b:train_distill_learn_lam.py | cat -n | "
    "sed -n '35,46p;322,327p;431,452p;497,545p;571,630p;1090,1102p'",
    "git -C $R show 642fd9b:utils/custom_dataset.py | cat -n | sed -n '122,157p'",
    "git -C $R show 642fd9b:README.md",
    "L=/work/.mirror/uber-research+learning-to-reweight-examples/repo/.git",
    "git -C $L show 0b616c9:models/reweight_model.py | cat -n | sed -n '17,97p'",
    "git -C $L show 0b616c9:models/assigned_weights_resnet_model.py | cat -n | "
    "sed -n '72,87p;150,169p'",
    "git -C $L show 0b616c9:cifar/cifar_train.py | cat -n | "
    "sed -n '172,180p;250,290p;571,578p;608,628p;694,695p'",
    "M=/work/.mirror/xjtushujun+meta-weight-net/repo",
    "git -C $M show 3f1800f:MW-Net.py | cat -n | sed -n '104,106p;126,128p;190,241p;264,275p'",
    "git -C $M show 3f1800f:resnet.py | cat -n | sed -n '47,58p;95,107p;185,187p;275,289p'",
    "git -C $M show 3f1800f:train_WRN-28-10_Meta_PGC.py | cat -n | sed -n '94,98p;114,179p'",
    "X=/work/.mirror/xiaoboxia+Part-dependent-label-noise/repo",
    "git -C $X show b682527:tools.py | cat -n | sed -n '9,61p'",
    "git -C $X show b682527:data.py | cat -n | sed -n '8,34p;75,94p;231,247p'",
    "git -C $X show b682527:main.py | cat -n | sed -n '23,39p;56,70p;90,103p'",
)

ROUND_TRIP = ("tests/workflow/test_workflow.py::"
              "test_bundle_round_trip_plans_no_training_and_rebuilds_identical_tables")
ZOO = "tests/workflow/test_workflow.py::test_teacher_zoo_trains_students_only"

#: command -> (where it runs, the test / the reason[, what the named test's source shows])
HOW: dict[str, tuple] = {
    'pip install -e ".[dev]" && snakemake --cores all': (CI, "snakemake --cores all"),
    'pip install -e ".[dev]" && pytest': (CI, "pytest"),
    'pip install -e ".[dev]"': (CI, 'pip install -q -e ".[dev]"'),
    "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu": (
        NOT_HERE, "download.pytorch.org is not reachable from these machines (the package "
                  "mirror serves only the CUDA build); the README says the CPU install is "
                  "untested by CI"),
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
        NOT_HERE, "mutmut over methods/ rebuilds and tests every mutant (minutes per file "
                  "set on 2 cores, docs/methods.md); run on purpose, its last result is in "
                  "docs/methods.md"),
    "bash scripts/gpu_perf.sh": (
        TEST, "tests/training/test_perf.py::test_gpu_script_runs_every_phase_on_cpu",
        "gpu_perf.sh"),
    "snakemake --cores all": (CI, "snakemake --cores all"),
    "snakemake --profile profiles/workstation --configfile workflows/config/fmnist.yaml": (
        HERE, "dry run (-n) here: the run itself needs a GPU for about an hour"),
    "snakemake --cores 1 tables": (
        TEST, "tests/workflow/test_workflow.py::test_tables_target_trains_nothing",
        '"--cores", "1", "tables"'),
    "snakemake --report results/report.html": (
        TEST, "tests/workflow/test_workflow.py::test_tiny_grid_end_to_end_and_rerun_does_nothing",
        '"--report", "results/report.html"'),
    "noisykd bundle verify study.tar.gz": (
        TEST, "tests/exchange/test_bundle.py::"
              "test_export_holds_the_study_and_a_manifest_of_every_file",
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
        NOT_HERE, "the reference study itself: an hour on 2 cores, run on purpose to regenerate "
                  "the committed bundle; CI reruns its slice (reference_slice.yaml) and "
                  "tests/test_reference.py checks the slice's runs are the study's"),
    "noisykd bundle export --results results/reference --alpha summary --out "
    "reference/reference.tar.gz": (
        TEST, "tests/exchange/test_bundle.py::"
              "test_alpha_summary_bundles_replace_the_weights_and_carry_the_invocation_log",
        '"--alpha", "summary"'),
    "noisykd fingerprint --out reference/platform.json": (
        TEST, "tests/exchange/test_compare.py::test_fingerprint_cli_writes_what_it_prints",
        '["fingerprint", "--out"'),
    "noisykd forget results/default/runs/digits/symmetric_0.40/none/ce/seed3 [more run folders]": (
        TEST, "tests/workflow/test_workflow.py::"
              "test_forget_then_snakemake_retrains_exactly_that_run",
        '["noisykd", "forget"'),
    "git worktree add ../reference-issue16 83146f6": (
        NOT_HERE, "rebuilds the previous reference's tables from git history (3 min, run on "
                  "purpose: 0 blocks differ); tests/test_reference.py::"
                  "test_the_previous_reference_rebuilds_from_git_history checks the commit "
                  "holds its bundle, script and pages"),
    "cd ../reference-issue16 && python scripts/readme_reference_tables.py --check --only "
    "reference": (
        NOT_HERE, "the second half of the command above, in its worktree"),
    **{command: (NOT_HERE, MIRROR) for command in MIRROR_COMMANDS},
}


def test_every_readme_command_says_where_it_runs():
    pages = {path.relative_to(REPO_ROOT).as_posix(): page_commands(path) for path in documents()}
    commands = {c for found in pages.values() for c in found}
    missing = {page: sorted(set(found) - set(HOW)) for page, found in pages.items()
               if set(found) - set(HOW)}
    assert not missing, f"commands without an entry in HOW, by page: {missing}"
    assert set(HOW) - commands == set(), "entries in HOW that are no longer on any page"
    assert len(MIRROR_COMMANDS) == len(set(MIRROR_COMMANDS))


def test_shell_commands_are_in_bash_blocks_only():
    """A ```sh or ```console block would hold commands the rule above never sees."""
    for path in documents():
        fences = re.findall(r"^ {0,3}(?:```|~~~)(.*)$", path.read_text(), re.M)
        other = {f.strip() for f in fences} - FENCES
        assert not other, f"{path.name}: code blocks of kind {sorted(other)}"


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
    the pages' relative paths hold and nothing is written into the repository."""
    root = tmp_path_factory.mktemp("checkout")
    for name in ("Snakefile", "workflows", "profiles"):
        src = REPO_ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    return root


def test_readme_cli_examples_run_as_written(checkout):
    """The CLI examples (docs/datasets.md, docs/training.md), in their order: labels, the
    summary, a teacher, a student."""
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
