"""The planner's records: a method's variant (``MethodSpec``), one run (``RunSpec``, what
``noisykd train-runs`` receives, to and from JSON), a job (runs trained in one process) and the
plan of a study. Torch-free."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmark.core import layout
from benchmark.core.errors import UserError
from benchmark.core.hashing import spec_hash
from benchmark.core.layout import (
    labels_path,
    study_root,
)
from benchmark.data import dataset_names, get_entry
from benchmark.data.noise import NoiseSpec, format_rate
from benchmark.spec.archnames import check_arch_name
from benchmark.spec.trainconfig import TrainConfig
from methods.catalog import (
    CATALOG,
    METHOD_NAMES,
    check_hparams,
    method_uses_teachers,
)

# ---- ids -----------------------------------------------------------------------------------

def method_id(name: str, hparams: dict) -> str:
    hp = dict(hparams)
    base = name
    selected = CATALOG[name].selected if name in CATALOG else None
    if selected is not None:  # fixed_alpha-a0.50: the swept value, read in the id
        base = f"{name}-{selected[0]}{format_rate(float(hp.pop(selected)))}"
    return base + (f"-{spec_hash(hp)[:6]}" if hp else "")


# ---- specs ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class MethodSpec:
    name: str
    hparams: tuple  # sorted (key, value) pairs

    @property
    def id(self) -> str:
        return method_id(self.name, dict(self.hparams))

    @property
    def uses_teachers(self) -> bool:
        return method_uses_teachers(self.name, dict(self.hparams))


def _pairs(value) -> tuple:
    """Sorted (key, value) pairs of a mapping, a TrainConfig or pairs already."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    return tuple(sorted(dict(value).items()))


@dataclass(frozen=True)
class RunSpec:
    """One training run: what the planner plans, what ``noisykd train-runs`` receives as
    JSON (``to_json``, ``from_json``: the one record from the planner to the training
    process) and what ``benchmark.training.run.run`` trains. ``noisykd teacher|student``
    builds one from its flags. Paths are strings; ``train`` and ``hparams`` are sorted
    pairs (the record is hashable); the constructor also takes a TrainConfig, mappings and
    paths. Torch-free."""

    kind: str  # teacher or student
    dataset: str
    labels: str  # its labels file
    arch: str
    seed: int
    out: str  # the run folder
    train: tuple  # sorted (key, value) pairs of TrainConfig fields
    method: str = "ce"
    hparams: tuple = ()  # sorted (key, value) pairs, as given (a protocol fills the rest)
    teachers: tuple = ()  # teacher run folders
    teacher_labels: str = "noisy"
    teacher_checkpoint: str = "last"
    data_root: str | None = None

    def __post_init__(self):
        norm = {"labels": str(self.labels), "out": str(self.out), "train": _pairs(self.train),
                "hparams": _pairs(self.hparams), "teachers": tuple(map(str, self.teachers)),
                "data_root": None if self.data_root is None else str(self.data_root)}
        for key, value in norm.items():
            object.__setattr__(self, key, value)

    @property
    def cfg(self) -> TrainConfig:
        return TrainConfig.from_dict(dict(self.train))

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def outputs(self) -> list[str]:
        if self.kind == "teacher":
            names = layout.TEACHER_FILES
        else:
            # an ALM run's alpha.npz is written but not declared: a bundle may carry its
            # summary instead (benchmark/analysis/alpha_summary.py), and that run is finished too
            names = (layout.METRICS, layout.LOG_CSV)
        return [f"{self.out}/{n}" for n in names]

    def to_json(self) -> dict:
        """The JSON object ``noisykd train-runs`` reads (``from_json`` inverts it)."""
        return {"kind": self.kind, "dataset": self.dataset, "labels": self.labels,
                "arch": self.arch, "seed": self.seed, "out": self.out,
                "train": dict(self.train), "method": self.method, "hparams": dict(self.hparams),
                "teachers": list(self.teachers), "teacher_labels": self.teacher_labels,
                "teacher_checkpoint": self.teacher_checkpoint, "data_root": self.data_root}

    @classmethod
    def from_json(cls, obj, where: str) -> RunSpec:
        """A run from its JSON object, refused in one line naming ``where`` and the key
        (``check_request``) before anything is built."""
        check_request(obj, where)
        given = {k: obj[k] for k in REQUEST_REQUIRED}
        given.update({k: obj[k] for k in REQUEST_OPTIONAL if obj.get(k) is not None})
        return cls(**given)


# the keys of ``RunSpec.to_json``: required, then optional (with their defaults)
REQUEST_REQUIRED = ("kind", "dataset", "labels", "arch", "seed", "out", "train")
REQUEST_OPTIONAL = ("method", "hparams", "teachers", "teacher_labels", "teacher_checkpoint",
                    "data_root")


def check_request(spec, where: str) -> None:
    """Refuse, in one line naming ``where`` and the key, a run spec (``RunSpec.to_json``'s
    format, what ``noisykd train-runs`` receives) that is not an object, lacks or adds keys,
    or holds a value of the wrong type or out of range: before any run of its list trains."""
    if not isinstance(spec, dict):
        raise UserError(f"{where}: a run spec must be a JSON object with keys "
                        f"{', '.join(REQUEST_REQUIRED)}, got {json.dumps(spec)[:60]}")
    missing = [k for k in REQUEST_REQUIRED if k not in spec]
    if missing:
        raise UserError(f"{where}: missing key(s) {', '.join(missing)} (a run spec has "
                        f"{', '.join(REQUEST_REQUIRED)}; optional {', '.join(REQUEST_OPTIONAL)})")
    unknown = sorted(str(k) for k in spec if k not in REQUEST_REQUIRED + REQUEST_OPTIONAL)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: "
                        f"{', '.join(REQUEST_REQUIRED + REQUEST_OPTIONAL)}")

    def need(ok: bool, key: str, want: str) -> None:
        if not ok:
            raise UserError(f"{where}: {key!r} must be {want}, got {spec.get(key)!r}")

    def path(key: str, optional: bool = False) -> None:
        value = spec.get(key)
        need((optional and value is None) or (isinstance(value, str) and value != ""), key,
             "a path" + (" or null" if optional else ""))

    kind = spec["kind"]
    need(kind in ("teacher", "student"), "kind", "teacher or student")
    need(isinstance(spec["dataset"], str) and spec["dataset"] in dataset_names(), "dataset",
         f"one of {', '.join(dataset_names())}")
    path("labels")
    path("out")
    path("data_root", optional=True)
    seed = spec["seed"]
    need(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed",
         "an integer >= 0")
    method = spec.get("method", "ce")
    need(isinstance(method, str) and method in METHOD_NAMES, "method",
         f"one of {', '.join(METHOD_NAMES)}")
    need(kind == "student" or method == "ce", "method", "ce for a teacher (teachers train with "
         "CE)")
    hparams = spec.get("hparams") or {}
    need(isinstance(hparams, dict), "hparams", "an object of hyper-parameter name to value")
    teachers = spec.get("teachers") or []
    need(isinstance(teachers, list) and all(isinstance(t, str) and t for t in teachers),
         "teachers", "a list of teacher run folders")
    uses = kind == "student" and method_uses_teachers(method, hparams)
    need(bool(teachers) == uses, "teachers",
         f"{'a non-empty' if uses else 'an empty'} list for a {kind}"
         + (f" of method {method!r}" if kind == "student" else ""))
    need(spec.get("teacher_labels", "noisy") in ("noisy", "clean"), "teacher_labels",
         "noisy or clean")
    need(spec.get("teacher_checkpoint", "last") in ("last", "best_val"), "teacher_checkpoint",
         "last or best_val")
    try:
        check_arch_name(spec["arch"], get_entry(spec["dataset"]).kind == "tabular")
        check_hparams(method, hparams)
        TrainConfig.from_dict(spec["train"])
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


@dataclass
class Job:
    """What one Snakemake job runs: several runs when seeds_per_job > 1."""

    name: str
    kind: str
    runs: list[RunSpec]
    inputs: list[str] = field(default_factory=list)

    @property
    def outputs(self) -> list[str]:
        return [o for r in self.runs for o in r.outputs]

    def command_args(self, data_root, cifar_n_dir) -> str:
        payload = [replace(r, data_root=data_root).to_json() for r in self.runs]
        return shlex.quote(json.dumps(payload, sort_keys=True, separators=(",", ":")))


@dataclass
class Plan:
    labels: list[tuple[str, NoiseSpec, int]]
    teacher_jobs: list[Job]
    student_jobs: list[Job]
    runtime: dict
    config: dict
    study: str = "default"
    #: what the planner left out of the grid and why, one line each (the Snakefile prints them)
    notes: tuple = ()

    @property
    def root(self) -> str:
        return study_root(self.study)

    @property
    def layout(self) -> layout.StudyLayout:
        """The study folder's layout (every path under results/<study>/)."""
        return layout.StudyLayout.of(self.root)

    @property
    def labels_files(self) -> list[str]:
        return [labels_path(d, n.id, s, self.root) for d, n, s in self.labels]

    @property
    def student_runs(self) -> list[RunSpec]:
        return [r for j in self.student_jobs for r in j.runs]

    @property
    def teacher_runs(self) -> list[RunSpec]:
        return [r for j in self.teacher_jobs for r in j.runs]


