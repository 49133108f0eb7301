"""Config -> jobs, runs and their paths. Plain Python: no torch, no training code.

The Snakefile and the tests plan through this module, so every path is computed in one
place. Ids follow DESIGN.md: a readable id per labels file, teacher and run, with a short
hash where the readable part alone would not tell two specs apart (multi-teacher sets,
non-default method hyper-parameters). Within one config two different specs never share a
path (a test checks it); a changed spec at the same path (say, more epochs) shows up in the
job's params, which Snakemake's rerun triggers compare.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field

from methods.catalog import (
    ALM_METHODS,
    CATALOG,
    HPARAM_DEFAULTS,
    METHOD_NAMES,
    check_hparams,
    method_uses_teachers,
)

from .archnames import check_arch_name
from .data import dataset_names, get_entry
from .errors import UserError
from .labels import DEFAULT_VAL_FRACTION
from .noise import NoiseSpec, format_rate
from .protocol import PROTOCOLS, kd_weights
from .runinfo import spec_hash
from .trainconfig import DEVICE_PATTERN, DEVICES, TrainConfig

LABELS_PATTERN = "{root}/labels/{dataset}/{noise_id}/seed{seed}.npz"
STUDY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: folder names of a study's own layout (and of the layout before studies): never a study
RESERVED_STUDY_NAMES = ("runs", "teachers", "checkpoints", "labels", "data", "logs", "tables",
                        "figures")
SETUPS = ("single", "multi", "self")
TEACHER_FILES = ("metrics.json", "log.csv", "model_last.pt", "model_best.pt")
TOP_KEYS = {"study", "datasets", "noise", "setups", "methods", "seeds", "teacher_labels",
            "teacher_checkpoint", "val_fraction", "select_fraction", "data_root", "cifar_n_dir",
            "download", "seeds_per_job", "pack_methods", "runtime", "protocol", "analysis"}
DATASET_KEYS = {"name", "student", "teacher", "multi_teachers", "train", "teacher_train",
                "noise", "protocol", "train_subset", "val_fraction", "select_fraction", "setups",
                "teacher_labels", "methods"}
RUNTIME_DEFAULTS = {"device": "auto", "threads": 1, "gpu": 0, "mem_mb": 4000,
                    "runtime_min": 120, "compile": False, "compile_mode": "default",
                    "checkpoint_every": 1, "keep_checkpoint": False}


# ---- ids -----------------------------------------------------------------------------------

def labels_path(dataset: str, noise_id: str, seed: int, root: str = "results") -> str:
    return LABELS_PATTERN.format(root=root, dataset=dataset, noise_id=noise_id, seed=seed)


def study_root(study: str) -> str:
    """Everything a study writes lives under results/<study>/: studies never see each
    other's runs."""
    return f"results/{study}"


def dataset_dir(dataset: str, protocol: str) -> str:
    """The dataset's folder under runs/ and teachers/: its name, with ``-authors`` under the
    authors' protocol (labels are the same under both protocols; models are not)."""
    return dataset if protocol == "suite" else f"{dataset}-{protocol}"


def teacher_id(arch: str, teacher_labels: str) -> str:
    return arch + ("-cleanT" if teacher_labels == "clean" else "")


def setup_id(setup: str, archs: list[str], teacher_labels: str) -> str:
    clean = "-cleanT" if teacher_labels == "clean" else ""
    if setup == "single":
        return f"single-{archs[0]}{clean}"
    if setup == "multi":
        return f"multi-{len(archs)}t-{spec_hash(archs)[:6]}{clean}"
    return f"self{clean}"


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


@dataclass(frozen=True)
class RunSpec:
    """One training run, as `noisykd train-runs` receives it."""

    kind: str
    dataset: str
    noise: NoiseSpec
    seed: int
    arch: str
    out: str
    train: tuple  # sorted (key, value) pairs of TrainConfig fields
    method: str = "ce"
    hparams: tuple = ()
    teachers: tuple = ()  # teacher run folders
    teacher_labels: str = "noisy"
    teacher_checkpoint: str = "last"
    root: str = "results"  # the study folder

    @property
    def labels(self) -> str:
        return labels_path(self.dataset, self.noise.id, self.seed, self.root)

    @property
    def outputs(self) -> list[str]:
        if self.kind == "teacher":
            names = TEACHER_FILES
        else:
            # an ALM run's alpha.npz is written but not declared: a bundle may carry its
            # summary instead (benchmark/alpha_summary.py), and that run is finished too
            names = ("metrics.json", "log.csv")
        return [f"{self.out}/{n}" for n in names]

    def request(self, data_root, cifar_n_dir) -> dict:
        return {"kind": self.kind, "dataset": self.dataset, "labels": self.labels,
                "arch": self.arch, "seed": self.seed, "out": self.out,
                "train": dict(self.train), "method": self.method, "hparams": dict(self.hparams),
                "teachers": list(self.teachers), "teacher_labels": self.teacher_labels,
                "teacher_checkpoint": self.teacher_checkpoint, "data_root": data_root}


# the keys of ``RunSpec.request``: required, then optional (with their defaults)
REQUEST_REQUIRED = ("kind", "dataset", "labels", "arch", "seed", "out", "train")
REQUEST_OPTIONAL = ("method", "hparams", "teachers", "teacher_labels", "teacher_checkpoint",
                    "data_root")


def check_request(spec, where: str) -> None:
    """Refuse, in one line naming ``where`` and the key, a run spec (``RunSpec.request``'s
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
        payload = [r.request(data_root, cifar_n_dir) for r in self.runs]
        return shlex.quote(json.dumps(payload, sort_keys=True, separators=(",", ":")))


@dataclass
class Plan:
    labels: list[tuple[str, NoiseSpec, int]]
    teacher_jobs: list[Job]
    student_jobs: list[Job]
    runtime: dict
    config: dict
    study: str = "default"

    @property
    def root(self) -> str:
        return study_root(self.study)

    @property
    def labels_files(self) -> list[str]:
        return [labels_path(d, n.id, s, self.root) for d, n, s in self.labels]

    @property
    def student_runs(self) -> list[RunSpec]:
        return [r for j in self.student_jobs for r in j.runs]

    @property
    def teacher_runs(self) -> list[RunSpec]:
        return [r for j in self.teacher_jobs for r in j.runs]


# ---- validation helpers --------------------------------------------------------------------

def _need(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise UserError(f"config key '{key}': {message}")


def _as_list(value, key: str) -> list:
    if isinstance(value, (str, int, float)):
        return [value]
    _need(isinstance(value, list) and len(value) > 0, key, "needs a non-empty list")
    return value


def noise_specs(config: dict) -> list[NoiseSpec]:
    """Expand the ``noise`` entries of a config into specs, in config order, without repeats."""
    entries = config.get("noise")
    _need(isinstance(entries, list) and len(entries) > 0, "noise",
          "needs a non-empty list of noise entries")
    specs: list[NoiseSpec] = []
    for i, entry in enumerate(entries):
        where = f"noise[{i}]"
        _need(isinstance(entry, dict) and "type" in entry, where, "needs a mapping with 'type'")
        unknown = set(entry) - {"type", "rates", "variants", "include_true"}
        _need(not unknown, where, f"unknown key(s) {', '.join(sorted(unknown))}")
        kind = entry["type"]
        try:
            if kind == "human":
                _need(bool(entry.get("variants")), where,
                      "human noise needs 'variants' (e.g. [aggre, worst])")
                new = [NoiseSpec("human", variant=v) for v in entry["variants"]]
            else:
                _need(bool(entry.get("rates")), where, f"noise {kind!r} needs a non-empty 'rates'")
                new = [NoiseSpec(kind, rate=r, include_true=bool(entry.get("include_true")))
                       for r in entry["rates"]]
        except UserError as exc:
            if str(exc).startswith("config key"):
                raise
            raise UserError(f"config key '{where}': {exc}") from None
        specs += [s for s in new if s not in specs]
    return specs


def _datasets(config: dict) -> list[dict]:
    entries = config.get("datasets")
    _need(isinstance(entries, list) and len(entries) > 0, "datasets",
          "needs a non-empty list of dataset entries")
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"name": entry}
        where = f"datasets[{i}]"
        _need(isinstance(entry, dict) and "name" in entry, where, "needs a mapping with 'name'")
        unknown = set(entry) - DATASET_KEYS
        _need(not unknown, where, f"unknown key(s) {', '.join(sorted(unknown))}")
        if entry["name"] not in dataset_names():
            raise UserError(f"config key 'datasets': unknown dataset {entry['name']!r}; "
                            f"known: {', '.join(dataset_names())}")
        subset = entry.get("train_subset")
        _need(subset is None or (isinstance(subset, int) and not isinstance(subset, bool)
                                 and subset >= 1), f"{where}.train_subset",
              f"a positive number of training examples, got {subset!r}")
        val = entry.get("val_fraction")
        _need(val is None or (isinstance(val, (int, float)) and not isinstance(val, bool)
                              and 0 < val < 1), f"{where}.val_fraction", f"in (0, 1), got {val!r}")
        sel = entry.get("select_fraction")
        _need(sel is None or (isinstance(sel, (int, float)) and not isinstance(sel, bool)
                              and 0 <= sel < 1), f"{where}.select_fraction",
              f"in [0, 1), got {sel!r}")
        out.append(entry)
    return out


def _dataset_entry(config: dict, dataset: str) -> dict:
    for entry in config.get("datasets") or []:
        if isinstance(entry, dict) and entry.get("name") == dataset:
            return entry
    return {}


def val_fraction_of(config: dict, dataset: str) -> float:
    """A dataset's clean validation share: its own ``val_fraction``, else the top-level one
    (the planner refuses entries of one dataset that disagree)."""
    return float(_dataset_entry(config, dataset).get(
        "val_fraction", config.get("val_fraction", DEFAULT_VAL_FRACTION)))


def select_fraction_of(config: dict, dataset: str, protocol: str | None = None,
                       entry: dict | None = None) -> float:
    """A dataset's selection-split share of the pool (0: none, the meta split selects too):
    its own ``select_fraction``, else the top-level one, else the protocol's default: under
    ``suite`` as large as the meta split (``val_fraction``), so the meta split the ALM
    methods train on keeps its size; under ``authors`` none (their one shared set)."""
    entry = _dataset_entry(config, dataset) if entry is None else entry
    value = entry.get("select_fraction")
    value = config.get("select_fraction") if value is None else value
    if value is not None:
        return float(value)
    protocol = protocol or entry.get("protocol", config.get("protocol", "suite"))
    return 0.0 if protocol == "authors" else val_fraction_of(config, dataset)


def labels_split_args(config: dict, dataset: str) -> str:
    """The ``noisykd labels`` options of a dataset's training subset and selection split
    ('' for the whole training split and no selection split)."""
    sel = select_fraction_of(config, dataset)
    return " ".join(filter(None, [train_subset_arg(config, dataset),
                                  f"--select-fraction {sel!r}" if sel else ""]))


def train_subset_arg(config: dict, dataset: str) -> str:
    """The ``noisykd labels`` option of a dataset's training subset ('' for the whole split)."""
    subset = _dataset_entry(config, dataset).get("train_subset")
    return f"--train-subset {int(subset)}" if subset is not None else ""


def _train_config(values: dict | None, key: str, runtime: dict, protocol: str) -> TrainConfig:
    values = dict(values or {})
    _need("protocol" not in values, f"{key}.protocol",
          "set protocol at the top level or per dataset, not in a training block")
    values["protocol"] = protocol
    for k in ("device", "compile", "compile_mode", "checkpoint_every", "keep_checkpoint"):
        values.setdefault(k, runtime[k])
    try:
        return TrainConfig.from_dict(values)
    except UserError as exc:
        raise UserError(f"config key '{key}': {exc}") from None


def _methods(config: dict, key: str = "methods") -> list[MethodSpec]:
    entries = _as_list(config.get("methods"), key)
    out: list[MethodSpec] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"name": entry}
        where = f"{key}[{i}]"
        _need(isinstance(entry, dict) and "name" in entry, where, "needs a name")
        name = entry["name"]
        _need(name in METHOD_NAMES, where,
              f"unknown method {name!r}; known: {', '.join(METHOD_NAMES)}")
        selected = CATALOG[name].selected  # fixed_alpha: alpha, swept by the key alphas
        sweeps = {f"{e.selected}s" for e in CATALOG.values() if e.selected}
        unknown = set(entry) - {"name", "hparams"} - sweeps
        _need(not unknown, where, f"unknown key(s) {', '.join(sorted(unknown))}")
        hp = entry.get("hparams") or {}
        _need(isinstance(hp, dict) and all(isinstance(k, str) for k in hp), f"{where}.hparams",
              f"a mapping of hyper-parameter name to value, got {hp!r}")
        hp = dict(hp)
        if selected is not None:
            key = f"{selected}s"
            values = _as_list(entry.get(key), f"{where}.{key}")
            rule = CATALOG[name].rules[selected]
            for a in values:
                _need(rule.ok(a), f"{where}.{key}",
                      f"{selected} must be {rule.allowed(selected)[len(selected) + 1:]}, "
                      f"got {a!r}")
            variants = [{**hp, selected: float(a)} for a in values]
        else:
            for key in sweeps & set(entry):
                owner = next(e.name for e in CATALOG.values() if f"{e.selected}s" == key)
                _need(False, where, f"{key} is for {owner} only")
            variants = [hp]
        for v in variants:
            spec = MethodSpec(name, tuple(sorted(v.items())))
            if spec not in out:
                out.append(spec)
    return out


def _setups(value, key: str) -> list[str]:
    setups = _as_list(value, key)
    for s in setups:
        _need(s in SETUPS, key, f"unknown setup {s!r}; known: {', '.join(SETUPS)}")
    return setups


def _teacher_labels(value, key: str) -> list[str]:
    t_labels = _as_list(value, key)
    for tl in t_labels:
        _need(tl in ("noisy", "clean"), key, f"noisy or clean, got {tl!r}")
    return t_labels


def _check_method_hparams(methods: list[MethodSpec], key: str = "methods") -> None:
    """Unknown hyper-parameters, and values of the wrong type or out of range, fail at
    planning time, not in a job hours later (the check every run repeats: hparams.py)."""
    for m in methods:
        known = set(HPARAM_DEFAULTS[m.name])
        unknown = {k for k, _ in m.hparams} - known
        _need(not unknown, key,
              f"method {m.name!r}: unknown hyper-parameter(s) {', '.join(sorted(unknown))}; "
              f"known: {', '.join(sorted(known)) or 'none'}")
        try:
            check_hparams(m.name, dict(m.hparams))
        except UserError as exc:
            raise UserError(f"config key '{key}': {exc}") from None


def _check_archs(d: dict, where: str) -> None:
    """Every architecture a dataset entry names exists (timm asked only for non-suite names),
    before any job starts. Whether it fits the dataset's inputs (an image model for tabular
    data) is left to the jobs: the cost model (benchmark/cost_model.py) plans such configs."""
    multi = d.get("multi_teachers")
    _need(multi is None or isinstance(multi, list), f"{where}.multi_teachers",
          f"a list of architectures, got {multi!r}")
    for key, arch in ([("student", d["student"])] + ([("teacher", d["teacher"])]
                      if "teacher" in d else []) + [("multi_teachers", a) for a in multi or []]):
        try:
            check_arch_name(arch)
        except UserError as exc:
            raise UserError(f"config key '{where}.{key}': {exc}") from None


def _check_convex(methods: list[MethodSpec], n_teachers: list[int], protocol: str,
                  dataset: str) -> None:
    """Convex mixing cannot start where the protocol's KD convention has a total above 1."""
    for m in methods:
        if not CATALOG[m.name].convex:
            continue
        share = dict(m.hparams).get("kd_share", HPARAM_DEFAULTS[m.name]["kd_share"])
        for k in n_teachers:
            ce, each = kd_weights(protocol, share, k)
            _need(ce + k * each <= 1.0 + 1e-9, f"datasets[{dataset}].protocol",
                  f"{m.id} mixes on the simplex (total weight 1), but protocol {protocol!r} "
                  f"starts each of {k} teachers at {each:g}; use protocol suite for it, or "
                  "amal / almkd_v1, or drop the multi setup")


# ---- the plan ------------------------------------------------------------------------------

def _check_analysis(analysis) -> None:
    """``analysis``: the verdicts' margin and the moderators (benchmark/vocabulary.py)."""
    from .vocabulary import FACTORS

    _need(isinstance(analysis, dict), "analysis", "expected a mapping (margin, moderators)")
    unknown = set(analysis) - {"margin", "moderators"}
    _need(not unknown, f"analysis.{min(unknown) if unknown else ''}",
          "unknown key (known: margin, moderators)")
    margin = analysis.get("margin", 1.0)
    _need(isinstance(margin, (int, float)) and not isinstance(margin, bool)
          and math.isfinite(margin) and margin > 0, "analysis.margin",
          f"{margin!r}: expected a positive number of points")
    factors = analysis.get("moderators", [])
    _need(isinstance(factors, list), "analysis.moderators", "expected a list of factors")
    for f in factors:
        _need(f in FACTORS, "analysis.moderators", f"unknown factor {f!r} (known: "
              f"{', '.join(FACTORS)})")


def plan(config: dict) -> Plan:
    """Every labels file, teacher and student run of a config; ``UserError`` names a bad key."""
    unknown = set(config) - TOP_KEYS
    _need(not unknown, ", ".join(sorted(unknown)), "unknown top-level key")
    _check_analysis(config.get("analysis", {}))
    study = config.get("study", "default")
    # fullmatch: `$` alone also matches before a final newline
    _need(isinstance(study, str) and re.fullmatch(STUDY_PATTERN.strip("^$"), study) is not None
          and study not in RESERVED_STUDY_NAMES, "study",
          f"a folder name (letters, digits, _ . -; not {', '.join(RESERVED_STUDY_NAMES)}), "
          f"got {study!r}")
    root = study_root(study)
    for key in ("data_root", "cifar_n_dir"):
        value = config.get(key)
        _need(value is None or (isinstance(value, str) and value and "\x00" not in value),
              key, f"a folder path (no NUL byte), got {value!r}")
    for key, low in (("val_fraction", "(0"), ("select_fraction", "[0")):
        value = config.get(key)
        ok = (low == "[0" and value == 0) or (
            isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1)
        _need(value is None or ok, key, f"in {low}, 1), got {value!r}")
    seeds = config.get("seeds")
    _need(isinstance(seeds, list) and len(seeds) > 0 and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds), "seeds",
        "needs a non-empty list of non-negative integers")
    datasets = _datasets(config)
    global_noises = noise_specs(config) if "noise" in config or not all(
        "noise" in d for d in datasets) else []
    setups = _setups(config.get("setups", list(SETUPS)), "setups")
    methods = _methods(config)
    _check_method_hparams(methods)
    t_labels = _teacher_labels(config.get("teacher_labels", "noisy"), "teacher_labels")
    t_ckpt = config.get("teacher_checkpoint", "last")
    _need(t_ckpt in ("last", "best_val"), "teacher_checkpoint", f"last or best_val, got {t_ckpt!r}")
    _need(isinstance(config.get("runtime") or {}, dict), "runtime",
          f"a mapping of runtime keys, got {config.get('runtime')!r}")
    runtime = {**RUNTIME_DEFAULTS, **(config.get("runtime") or {})}
    unknown = set(runtime) - set(RUNTIME_DEFAULTS)
    _need(not unknown, "runtime", f"unknown key(s) {', '.join(sorted(unknown))}")
    _need(isinstance(runtime["device"], str) and DEVICE_PATTERN.fullmatch(runtime["device"]),
          "runtime.device", f"{DEVICES}, got {runtime['device']!r}")
    per_job = config.get("seeds_per_job", 1)
    _need(isinstance(per_job, int) and per_job >= 1, "seeds_per_job", "an integer >= 1")
    pack = config.get("pack_methods", False)
    _need(isinstance(pack, bool), "pack_methods", "true or false")

    noises_of = {}
    for d in datasets:
        noises_of[d["name"]] = (noise_specs({"noise": d["noise"]}) if "noise" in d
                                else global_noises)
        for n in noises_of[d["name"]]:
            if n.kind == "human" and n.variant not in get_entry(d["name"]).human_variants:
                raise UserError(f"config key 'noise': human variant {n.variant!r} does not exist "
                                f"for dataset {d['name']!r} (human noise: cifar10 aggre/worst/"
                                "random1-3, cifar100 noisy)")
    labels, teacher_jobs, student_jobs = [], [], []
    seen_dirs: set[str] = set()
    split_of: dict[str, tuple] = {}
    chunks = [seeds[i:i + per_job] for i in range(0, len(seeds), per_job)]
    top_protocol = config.get("protocol", "suite")
    _need(top_protocol in PROTOCOLS, "protocol",
          f"one of {', '.join(PROTOCOLS)}, got {top_protocol!r}")
    for d in datasets:
        name = d["name"]
        _need("student" in d, f"datasets[{name}]", "needs 'student' (an architecture)")
        _check_archs(d, f"datasets[{name}]")
        protocol = d.get("protocol", top_protocol)
        _need(protocol in PROTOCOLS, f"datasets[{name}].protocol",
              f"one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        ddir = dataset_dir(name, protocol)
        _need(ddir not in seen_dirs, f"datasets[{name}]",
              f"listed twice under protocol {protocol!r} (its teachers and runs live in one "
              f"folder, runs/{ddir}); list it once, or once per protocol")
        seen_dirs.add(ddir)
        split = (val_fraction_of(config, name), d.get("train_subset"),
                 select_fraction_of(config, name, protocol, d))
        _need(split_of.setdefault(name, split) == split, f"datasets[{name}]",
              "its entries differ in val_fraction, train_subset or select_fraction (its "
              "default differs by protocol: set it), but share its labels files (labels do "
              "not depend on the protocol)")
        where = f"datasets[{name}]"  # a dataset's setups, teacher labels and methods override
        d_setups = _setups(d["setups"], f"{where}.setups") if "setups" in d else setups
        d_tl = (_teacher_labels(d["teacher_labels"], f"{where}.teacher_labels")
                if "teacher_labels" in d else t_labels)
        d_methods = methods
        if "methods" in d:
            d_methods = _methods(d, f"{where}.methods")
            _check_method_hparams(d_methods, f"{where}.methods")
        uses_teachers = any(m.uses_teachers for m in d_methods)
        train = _train_config(d.get("train"), f"datasets[{name}].train", runtime, protocol)
        t_train = _train_config(d.get("teacher_train", d.get("train")),
                                f"datasets[{name}].teacher_train", runtime, protocol)
        for m in d_methods:
            if m.name in ALM_METHODS:
                start = dict(m.hparams).get("meta_start", 10)
                _need(train.epochs > start, f"datasets[{name}].train.epochs",
                      f"{train.epochs} epochs do not exceed meta_start {start} of {m.id}")
        setup_archs = {"single": [d.get("teacher")], "multi": list(d.get("multi_teachers") or []),
                       "self": [d["student"]]}
        if uses_teachers:
            for s in d_setups:
                _need(all(setup_archs[s]) and setup_archs[s], f"datasets[{name}]",
                      f"setup {s!r} needs " + ("'teacher'" if s == "single" else
                                                "'multi_teachers'" if s == "multi" else
                                                "'student'"))
            _check_convex(d_methods, [len(setup_archs[s]) for s in d_setups], protocol, name)
        for n in noises_of[name]:
            for seed in seeds:
                labels.append((name, n, seed))
            for tl in d_tl:
                archs = (sorted({a for s in d_setups for a in setup_archs[s]}) if uses_teachers
                         else [])
                groups = [archs] if pack and archs else [[a] for a in archs]
                for group in groups:
                    for chunk in chunks:
                        runs = [RunSpec("teacher", name, n, seed, arch,
                                        teacher_dir(ddir, n.id, arch, tl, seed, root),
                                        tuple(sorted(t_train.to_dict().items())),
                                        teacher_labels=tl, root=root)
                                for arch in group for seed in chunk]
                        label = "+".join(teacher_id(a, tl) for a in group)
                        teacher_jobs.append(Job(
                            f"teacher.{ddir}.{n.id}.{label}.s{chunk[0]}-{chunk[-1]}",
                            "teacher", runs, sorted({r.labels for r in runs})))
            cells: dict[tuple, list[tuple[MethodSpec, list[str], str]]] = {}
            for m in d_methods:
                m_cells = ([("none", [], "noisy")] if not m.uses_teachers else
                           [(setup_id(s, setup_archs[s], tl), setup_archs[s], tl)
                            for s in d_setups for tl in d_tl])
                for sid, archs, tl in m_cells:
                    key = (sid,) if pack else (sid, m.id)
                    cells.setdefault(key, []).append((m, archs, tl))
            for key, members in cells.items():
                for chunk in chunks:
                    runs = []
                    for m, archs, tl in members:
                        for seed in chunk:
                            tdirs = tuple(teacher_dir(ddir, n.id, a, tl, seed, root)
                                          for a in archs)
                            runs.append(RunSpec(
                                "student", name, n, seed, d["student"],
                                f"{root}/runs/{ddir}/{n.id}/{key[0]}/{m.id}/seed{seed}",
                                tuple(sorted(train.to_dict().items())), m.name, m.hparams,
                                tdirs, tl, t_ckpt, root))
                    inputs = sorted({r.labels for r in runs} | {
                        f"{t}/{f}" for r in runs for t in r.teachers
                        for f in ("metrics.json", "model_last.pt", "model_best.pt")})
                    student_jobs.append(Job(
                        f"student.{ddir}.{n.id}.{'.'.join(key)}.s{chunk[0]}-{chunk[-1]}",
                        "student", runs, inputs))
    if not student_jobs:
        raise UserError("config: the grid is empty")
    result = Plan(labels, teacher_jobs, student_jobs, runtime, config, study)
    outs = Counter(o for j in teacher_jobs + student_jobs for o in j.outputs)
    dup = sorted(o for o, k in outs.items() if k > 1)
    if dup:
        raise UserError(f"config: two runs share output paths, e.g. {dup[0]}")
    return result


def rule_name(job: Job) -> str:
    """A Snakemake rule name (an identifier) for a job."""
    return "train_" + re.sub(r"\W", "_", job.name)


REPORT_TABLES = ("label_noise.md", "completeness.md", "ranks.md", "verdicts.md", "verdicts.csv",
                 "moderators.md", "moderators.csv", "headline.md", "comparisons.csv", "alpha.md",
                 "alpha.csv")
FIGURES = ("accuracy_vs_noise",)
ALM_FIGURES = ("alm_weights", "alm_weight_by_teacher_labels", "alm_weight_vs_teacher")


def setup_kind(sid: str) -> str:
    """The table a setup id belongs to: single, multi or self (with -cleanT), none for ce."""
    clean = "-cleanT" if sid.endswith("-cleanT") else ""
    return sid.split("-")[0] + clean


def report_kinds(setup_ids) -> list[str]:
    """The setups the report has a table for (ce alone: one table, 'none')."""
    return sorted({setup_kind(s) for s in setup_ids} - {"none"}) or ["none"]


def report_tables(setup_ids) -> list[str]:
    return [f"{k}_{metric}.{ext}" for k in report_kinds(setup_ids) for metric in ("best", "last")
            for ext in ("md", "tex", "csv")]


def report_outputs(p: Plan) -> list[str]:
    """The files `noisykd report` writes for a plan (the `all` target)."""
    setups = {r.out.split("/")[-3] for r in p.student_runs}  # .../<setup>/<method>/seedN
    outs = [f"{p.root}/tables/{t}" for t in REPORT_TABLES + tuple(report_tables(setups))]
    # figures/cd_<setup> is not declared: it exists only where the setup's Friedman test
    # rejected (benchmark/ranks.py), which no plan knows
    figures = FIGURES + (
        ALM_FIGURES if any(r.method in ALM_METHODS for r in p.student_runs) else ())
    outs += [f"{p.root}/figures/{name}.{ext}" for name in figures for ext in ("png", "pdf")]
    return outs


def teacher_dir(dataset: str, noise_id: str, arch: str, teacher_labels: str, seed: int,
                root: str = "results") -> str:
    return f"{root}/teachers/{dataset}/{noise_id}/{teacher_id(arch, teacher_labels)}/seed{seed}"


def labels_cli_args(noise_id: str) -> str:
    """The ``noisykd labels`` arguments that reproduce a noise id."""
    spec = NoiseSpec.parse(noise_id)
    if spec.kind == "human":
        return f"--noise human --variant {spec.variant}"
    incl = " --include-true" if spec.include_true else ""
    return f"--noise {spec.kind} --rate {spec.rate!r}{incl}"
