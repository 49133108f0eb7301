"""The results layout: every path, glob, id and file name under ``results/<study>/``.

The project's main contract with its users, their scripts and their bundles::

    results/<study>/
      config.yaml, expected_runs.json, invocations.json     the config, the plan, the log
      data/<dataset>.json                                   prepare-data records
      labels/<dataset>/<noise_id>/seed<N>.npz               labels files
      teachers/<dataset_dir>/<noise_id>/<teacher_id>/seed<N>/   TEACHER_FILES (+ models)
      runs/<dataset_dir>/<noise_id>/<setup_id>/<method_id>/seed<N>/   RUN_FILES
      checkpoints/<runs|teachers>/.../seed<N>/              checkpoints (outside the outputs)
      tables/, figures/, logs/                              the report, the jobs' logs

Planning (ids and the folders of each run), the Snakefile's rules, the runs, collect, the
report, bundles, compare and forget read it from here; ``StudyLayout`` is the layout of one
study folder. Torch-free, pure strings and ``pathlib``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from benchmark.core.hashing import spec_hash

RESULTS = "results"
#: the study's config, its plan (the runs and the declared comparisons), its invocation log
CONFIG_FILE, PLAN_FILE, LOG_FILE = "config.yaml", "expected_runs.json", "invocations.json"
METRICS, LOG_CSV = "metrics.json", "log.csv"
MODEL_LAST, MODEL_BEST = "model_last.pt", "model_best.pt"
ALPHA_NPZ, ALPHA_SUMMARY = "alpha.npz", "alpha_summary.json"
#: what a finished teacher leaves (its models are the students' inputs)
TEACHER_RECORDS = (METRICS, LOG_CSV)  # what the tables read of a teacher
TEACHER_MODELS = (MODEL_LAST, MODEL_BEST)
TEACHER_FILES = TEACHER_RECORDS + TEACHER_MODELS
#: what a finished student run may leave (alpha.npz: an ALM run; alpha_summary.json: in a
#: bundle exported with --alpha summary, in its place)
RUN_FILES = (METRICS, LOG_CSV, ALPHA_NPZ, ALPHA_SUMMARY)
#: the folders of a study (and of the layout before studies): never a study's name
FOLDERS = ("runs", "teachers", "checkpoints", "labels", "data", "logs", "tables", "figures")
#: path depth of a run folder below the study: runs/<dataset>/<noise>/<setup>/<method>/seedN
RUN_DEPTH = {"runs": 6, "teachers": 5}
RUN_GLOB = "runs/*/*/*/*/seed*"
TEACHER_GLOB = "teachers/*/*/*/seed*"
LABELS_GLOB = "labels/*/*/seed*.npz"
LABELS_PATTERN = "{root}/labels/{dataset}/{noise_id}/seed{seed}.npz"

# The report's outputs (benchmark/analysis/report.py writes them, the workflow declares them)
REPORT_TABLES = ("label_noise.md", "completeness.md", "ranks.md", "verdicts.md", "verdicts.csv",
                 "moderators.md", "moderators.csv", "headline.md", "comparisons.csv", "alpha.md",
                 "alpha.csv")
FIGURES = ("accuracy_vs_noise",)
ALM_FIGURES = ("alm_weights", "alm_weight_by_teacher_labels", "alm_weight_vs_teacher")
FIGURE_FORMATS = ("png", "pdf")
METRICS_OF_TABLES = ("best", "last")
TABLE_FORMATS = ("md", "tex", "csv")


# ---- ids -----------------------------------------------------------------------------------

def study_root(study: str) -> str:
    """Everything a study writes lives under results/<study>/: studies never see each
    other's runs."""
    return f"{RESULTS}/{study}"


def dataset_dir(dataset: str, protocol: str) -> str:
    """The dataset's folder under runs/ and teachers/: its name, with ``-authors`` under the
    authors' protocol (labels are the same under both protocols; models are not)."""
    return dataset if protocol == "suite" else f"{dataset}-{protocol}"


def teacher_id(arch: str, teacher_labels: str | None) -> str:
    return arch + ("-cleanT" if teacher_labels == "clean" else "")


def setup_id(setup: str, archs: list[str], teacher_labels: str) -> str:
    clean = "-cleanT" if teacher_labels == "clean" else ""
    if setup == "single":
        return f"single-{archs[0]}{clean}"
    if setup == "multi":
        return f"multi-{len(archs)}t-{spec_hash(archs)[:6]}{clean}"
    return f"self{clean}"


def teacher_labels_of(sid: str) -> str:
    """What the teachers of a setup id or kind were trained on: clean (-cleanT) or noisy."""
    return "clean" if sid.endswith("-cleanT") else "noisy"


def setup_kind(sid: str) -> str:
    """The table a setup id belongs to: single, multi or self (with -cleanT), none for ce."""
    clean = "-cleanT" if sid.endswith("-cleanT") else ""
    return sid.split("-")[0] + clean


def report_kinds(setup_ids) -> list[str]:
    """The setups the report has a table for (ce alone: one table, 'none')."""
    return sorted({setup_kind(s) for s in setup_ids} - {"none"}) or ["none"]


def report_tables(setup_ids) -> list[str]:
    """The per-setup table files: ``<kind>_<metric>.<md|tex|csv>``."""
    return [f"{k}_{metric}.{ext}" for k in report_kinds(setup_ids) for metric in METRICS_OF_TABLES
            for ext in TABLE_FORMATS]


# ---- paths ---------------------------------------------------------------------------------

def labels_path(dataset: str, noise_id: str, seed: int, root: str = RESULTS) -> str:
    return LABELS_PATTERN.format(root=root, dataset=dataset, noise_id=noise_id, seed=seed)


def teacher_dir(dataset: str, noise_id: str, arch: str, teacher_labels: str, seed: int,
                root: str = RESULTS) -> str:
    return f"{root}/teachers/{dataset}/{noise_id}/{teacher_id(arch, teacher_labels)}/seed{seed}"


def run_dir(dataset: str, noise_id: str, setup: str, method_id: str, seed: int,
            root: str | None = RESULTS) -> str:
    """A student run's folder (``setup``: its setup id, ``none`` for a run without teachers;
    ``dataset``: its dataset_dir); ``root`` None: relative to its study."""
    rel = f"runs/{dataset}/{noise_id}/{setup}/{method_id}/seed{seed}"
    return rel if root is None else f"{root}/{rel}"


def run_parts(rel) -> dict | None:
    """The ids of a run folder given relative to its study (``runs/d/n/s/m/seedN``), or None
    for a path of another shape."""
    parts = Path(rel).parts
    if len(parts) != RUN_DEPTH["runs"] or parts[0] != "runs" or not parts[5].startswith("seed"):
        return None
    return {"dataset": parts[1], "noise_id": parts[2], "setup_id": parts[3],
            "method_id": parts[4], "seed": int(parts[5][4:])}


def split_run(out: str | os.PathLike) -> tuple[Path, Path] | None:
    """(study folder, run path under it) of a run folder ``<root>/runs/.../seedN`` or
    ``<root>/teachers/.../seedN``; None for a folder of another shape."""
    parts = Path(out).parts
    for kind, depth in RUN_DEPTH.items():
        if len(parts) >= depth and parts[-depth] == kind and parts[-1].startswith("seed"):
            return Path(*parts[:-depth]) if len(parts) > depth else Path("."), Path(
                *parts[-depth:])
    return None


def split_results(out: str | os.PathLike) -> tuple[Path, Path] | None:
    """``split_run``, or for a folder of another shape under a ``results`` folder (runs made
    by hand or by tests), (that results folder, the path below it); None otherwise."""
    split = split_run(out)
    if split:
        return split
    parts = Path(out).parts
    if RESULTS in parts:
        i = len(parts) - 1 - parts[::-1].index(RESULTS)
        return Path(*parts[: i + 1]), Path(*parts[i + 1:])
    return None


def default_checkpoint_dir(out: str | os.PathLike) -> Path:
    """Where a run's checkpoints live: ``<study>/checkpoints/<run>`` for a run in
    ``<study>/<run>`` (outside its declared outputs, so Snakemake never deletes them)."""
    split = split_results(out)
    if split:
        return split[0] / "checkpoints" / split[1]
    return Path(out).parent / f".{Path(out).name}.ckpt"


@dataclass(frozen=True)
class StudyLayout:
    """The layout of one study folder (``root``: ``results/<study>`` or any folder holding a
    study, such as an imported bundle)."""

    root: Path

    @classmethod
    def of(cls, root: str | os.PathLike) -> StudyLayout:
        return cls(Path(root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def plan(self) -> Path:
        return self.root / PLAN_FILE

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    def data_record(self, dataset: str) -> Path:
        return self.root / "data" / f"{dataset}.json"

    def run_dirs(self) -> list[Path]:
        """Every student run folder (finished or not), sorted."""
        return sorted(self.root.glob(RUN_GLOB))

    def teacher_dirs(self) -> list[Path]:
        return sorted(self.root.glob(TEACHER_GLOB))

    def run_metrics(self) -> list[Path]:
        """Every finished student run's metrics.json, sorted."""
        return sorted(self.root.glob(f"{RUN_GLOB}/{METRICS}"))

    def teacher_metrics(self) -> list[Path]:
        return sorted(self.root.glob(f"{TEACHER_GLOB}/{METRICS}"))

    def labels_files(self) -> list[Path]:
        return sorted(self.root.glob(LABELS_GLOB))

    def alpha_run_dirs(self) -> list[Path]:
        """The runs with ALM weights: an alpha.npz or its summary."""
        return sorted({p.parent for name in (ALPHA_NPZ, ALPHA_SUMMARY)
                       for p in self.root.glob(f"{RUN_GLOB}/{name}")})
