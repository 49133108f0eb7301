"""Config -> jobs, runs and their paths. Plain Python: no torch, no training code.

The Snakefile and the tests plan through this module, so every path is computed in one
place. Ids follow DESIGN.md: a readable id per labels file, teacher and run, with a short
hash where the readable part alone would not tell two specs apart (multi-teacher sets,
non-default method hyper-parameters). Within one config two different specs never share a
path (a test checks it); a changed spec at the same path (say, more epochs) shows up in the
job's params, which Snakemake's rerun triggers compare.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from benchmark.core import layout
from benchmark.core.errors import UserError
from benchmark.core.layout import (
    dataset_dir,
    labels_path,
    report_tables,
    setup_id,
    setup_kind,  # noqa: F401 (read through grid)
    study_root,
    teacher_dir,
    teacher_id,
)
from benchmark.data import get_entry
from benchmark.data.noise import NoiseSpec
from benchmark.plan.config import (
    RESERVED_STUDY_NAMES,
    RUNTIME_DEFAULTS,
    SETUPS,
    STUDY_PATTERN,
    TOP_KEYS,
    check_archs,
    check_convex,
    check_method_hparams,
    datasets_of,
    labels_split_args,  # noqa: F401 (the rules read it through grid)
    methods_of,
    need,
    noise_specs,
    select_fraction_of,
    setups_of,
    teacher_labels_of,
    train_config_of,
    train_subset_arg,  # noqa: F401 (the rules read it through grid)
    val_fraction_of,
)
from benchmark.plan.specs import (
    Job,
    MethodSpec,
    Plan,
    RunSpec,
    method_id,  # noqa: F401 (read through grid)
)
from benchmark.spec.protocol import PROTOCOLS
from benchmark.spec.trainconfig import DEVICE_PATTERN, DEVICES
from methods.catalog import ALM_METHODS, CATALOG

# ---- the plan ------------------------------------------------------------------------------

def _check_analysis(analysis) -> None:
    """``analysis``: the verdicts' margin and the moderators (benchmark/spec/vocabulary.py)."""
    from benchmark.spec.vocabulary import FACTORS

    need(isinstance(analysis, dict), "analysis", "expected a mapping (margin, moderators)")
    unknown = set(analysis) - {"margin", "moderators"}
    need(not unknown, f"analysis.{min(unknown) if unknown else ''}",
          "unknown key (known: margin, moderators)")
    margin = analysis.get("margin", 1.0)
    need(isinstance(margin, (int, float)) and not isinstance(margin, bool)
          and math.isfinite(margin) and margin > 0, "analysis.margin",
          f"{margin!r}: expected a positive number of points")
    factors = analysis.get("moderators", [])
    need(isinstance(factors, list), "analysis.moderators", "expected a list of factors")
    for f in factors:
        need(f in FACTORS, "analysis.moderators", f"unknown factor {f!r} (known: "
              f"{', '.join(FACTORS)})")


@dataclass(frozen=True)
class _Study:
    """The study-wide settings of a config, checked (``_study_settings``)."""

    study: str
    root: str
    seeds: list
    chunks: list  # the seeds of one job each
    datasets: list
    noises_of: dict  # dataset name -> its noises
    setups: list
    methods: list
    teacher_labels: list
    teacher_checkpoint: str
    runtime: dict
    pack: bool
    protocol: str


@dataclass(frozen=True)
class _Dataset:
    """One dataset entry's settings, the study's overridden by its own keys, checked."""

    name: str
    ddir: str  # its folder under runs/ and teachers/ (the protocol's suffix)
    student: str
    setups: list
    teacher_labels: list
    methods: list
    uses_teachers: bool
    train: object  # TrainConfig
    teacher_train: object
    setup_archs: dict  # setup -> its teacher architectures
    #: what the planner left out and why (a per-teacher rule in a one-teacher setup)
    notes: tuple = ()
    protocol: str = "suite"

    def fits(self, method, setup: str) -> bool:
        """Whether ``setup``'s teachers suit ``method`` (``teacher_range``)."""
        return suits(method.name, len(self.setup_archs[setup]), self.protocol)


def _study_settings(config: dict) -> _Study:
    """The top-level keys, checked in one pass (the first bad key is the error)."""
    unknown = set(config) - TOP_KEYS
    need(not unknown, ", ".join(sorted(unknown)), "unknown top-level key")
    _check_analysis(config.get("analysis", {}))
    study = config.get("study", "default")
    # fullmatch: `$` alone also matches before a final newline
    need(isinstance(study, str) and re.fullmatch(STUDY_PATTERN.strip("^$"), study) is not None
          and study not in RESERVED_STUDY_NAMES, "study",
          f"a folder name (letters, digits, _ . -; not {', '.join(RESERVED_STUDY_NAMES)}), "
          f"got {study!r}")
    for key in ("data_root", "cifar_n_dir"):
        value = config.get(key)
        need(value is None or (isinstance(value, str) and value and "\x00" not in value),
              key, f"a folder path (no NUL byte), got {value!r}")
    for key, low in (("val_fraction", "(0"), ("select_fraction", "[0")):
        value = config.get(key)
        ok = (low == "[0" and value == 0) or (
            isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1)
        need(value is None or ok, key, f"in {low}, 1), got {value!r}")
    seeds = config.get("seeds")
    need(isinstance(seeds, list) and len(seeds) > 0 and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds), "seeds",
        "needs a non-empty list of non-negative integers")
    datasets = datasets_of(config)
    global_noises = noise_specs(config) if "noise" in config or not all(
        "noise" in d for d in datasets) else []
    setups = setups_of(config.get("setups", list(SETUPS)), "setups")
    methods = methods_of(config)
    check_method_hparams(methods)
    t_labels = teacher_labels_of(config.get("teacher_labels", "noisy"), "teacher_labels")
    t_ckpt = config.get("teacher_checkpoint", "last")
    need(t_ckpt in ("last", "best_val"), "teacher_checkpoint", f"last or best_val, got {t_ckpt!r}")
    need(isinstance(config.get("runtime") or {}, dict), "runtime",
          f"a mapping of runtime keys, got {config.get('runtime')!r}")
    runtime = {**RUNTIME_DEFAULTS, **(config.get("runtime") or {})}
    unknown = set(runtime) - set(RUNTIME_DEFAULTS)
    need(not unknown, "runtime", f"unknown key(s) {', '.join(sorted(unknown))}")
    need(isinstance(runtime["device"], str) and DEVICE_PATTERN.fullmatch(runtime["device"]),
          "runtime.device", f"{DEVICES}, got {runtime['device']!r}")
    need(isinstance(runtime["share_teacher_work"], bool), "runtime.share_teacher_work",
          f"true or false, got {runtime['share_teacher_work']!r}")
    per_job = config.get("seeds_per_job", 1)
    need(isinstance(per_job, int) and per_job >= 1, "seeds_per_job", "an integer >= 1")
    pack = config.get("pack_methods", False)
    need(isinstance(pack, bool), "pack_methods", "true or false")
    noises_of = {}
    for d in datasets:
        noises_of[d["name"]] = (noise_specs({"noise": d["noise"]}) if "noise" in d
                                else global_noises)
        for n in noises_of[d["name"]]:
            if n.kind == "human" and n.variant not in get_entry(d["name"]).human_variants:
                raise UserError(f"config key 'noise': human variant {n.variant!r} does not exist "
                                f"for dataset {d['name']!r} (human noise: cifar10 aggre/worst/"
                                "random1-3, cifar100 noisy)")
    protocol = config.get("protocol", "suite")
    need(protocol in PROTOCOLS, "protocol",
          f"one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return _Study(study, study_root(study), seeds,
                  [seeds[i:i + per_job] for i in range(0, len(seeds), per_job)], datasets,
                  noises_of, setups, methods, t_labels, t_ckpt, runtime, pack, protocol)


def _dataset_settings(config: dict, d: dict, st: _Study, seen_dirs: set,
                      split_of: dict) -> _Dataset:
    """One dataset entry, checked: its keys, its folder (once per protocol), its labels
    split (one per dataset: its labels files are shared), its setups' teachers."""
    name = d["name"]
    where = f"datasets[{name}]"  # a dataset's setups, teacher labels and methods override
    need("student" in d, where, "needs 'student' (an architecture)")
    check_archs(d, where)
    protocol = d.get("protocol", st.protocol)
    need(protocol in PROTOCOLS, f"{where}.protocol",
          f"one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    ddir = dataset_dir(name, protocol)
    need(ddir not in seen_dirs, where,
          f"listed twice under protocol {protocol!r} (its teachers and runs live in one "
          f"folder, runs/{ddir}); list it once, or once per protocol")
    seen_dirs.add(ddir)
    split = (val_fraction_of(config, name), d.get("train_subset"),
             select_fraction_of(config, name, protocol, d))
    need(split_of.setdefault(name, split) == split, where,
          "its entries differ in val_fraction, train_subset or select_fraction (its "
          "default differs by protocol: set it), but share its labels files (labels do "
          "not depend on the protocol)")
    d_setups = setups_of(d["setups"], f"{where}.setups") if "setups" in d else st.setups
    d_tl = (teacher_labels_of(d["teacher_labels"], f"{where}.teacher_labels")
            if "teacher_labels" in d else st.teacher_labels)
    d_methods = st.methods
    if "methods" in d:
        d_methods = methods_of(d, f"{where}.methods")
        check_method_hparams(d_methods, f"{where}.methods")
    uses_teachers = any(m.uses_teachers for m in d_methods)
    train = train_config_of(d.get("train"), f"{where}.train", st.runtime, protocol)
    t_train = train_config_of(d.get("teacher_train", d.get("train")),
                              f"{where}.teacher_train", st.runtime, protocol)
    for m in d_methods:
        if m.name in ALM_METHODS:
            start = dict(m.hparams).get("meta_start", 10)
            need(train.epochs > start, f"{where}.train.epochs",
                  f"{train.epochs} epochs do not exceed meta_start {start} of {m.id}")
    setup_archs = {"single": [d.get("teacher")], "multi": list(d.get("multi_teachers") or []),
                   "self": [d["student"]]}
    if uses_teachers:
        for s in d_setups:
            need(all(setup_archs[s]) and setup_archs[s], where,
                  f"setup {s!r} needs " + ("'teacher'" if s == "single" else
                                            "'multi_teachers'" if s == "multi" else
                                            "'student'"))
        check_convex(d_methods, [len(setup_archs[s]) for s in d_setups], protocol, name)
    notes = []
    for m in d_methods:
        if not m.uses_teachers:
            continue
        low = teacher_range(m.name, protocol)[0]
        off = [s for s in d_setups if not suits(m.name, len(setup_archs[s]), protocol)]
        why = (f"it weighs {low} or more teachers; with one it is kd" if low > 1 else
               f"it mixes the label and the teachers' probabilities into one target, and "
               f"protocol {protocol!r} gives each of several teachers the whole teacher "
               "share: the target would not sum to 1")
        need(len(off) < len(d_setups), f"{where}.methods",
             f"{m.id} cannot run in setups {', '.join(off)} ({why}): "
             + ("add setup multi" if low > 1 else "use protocol suite or a one-teacher setup")
             + f" or drop {m.id}")
        if off:
            notes.append(f"{name}: {m.id} left out of setups {', '.join(off)} ({why})")
    return _Dataset(name, ddir, d["student"], d_setups, d_tl, d_methods, uses_teachers, train,
                    t_train, setup_archs, tuple(notes), protocol)


def _teacher_jobs(ds: _Dataset, n: NoiseSpec, st: _Study) -> list[Job]:
    """The teacher jobs of one (dataset, noise): one per architecture (all of them in one
    with pack_methods) and teacher labels, per chunk of seeds."""
    archs = (sorted({a for s in ds.setups for a in ds.setup_archs[s]}) if ds.uses_teachers
             else [])
    groups = [archs] if st.pack and archs else [[a] for a in archs]
    jobs = []
    for tl in ds.teacher_labels:
        for group in groups:
            for chunk in st.chunks:
                runs = [RunSpec("teacher", ds.name,
                                labels_path(ds.name, n.id, seed, st.root), arch, seed,
                                teacher_dir(ds.ddir, n.id, arch, tl, seed, st.root),
                                ds.teacher_train, teacher_labels=tl)
                        for arch in group for seed in chunk]
                label = "+".join(teacher_id(a, tl) for a in group)
                jobs.append(Job(f"teacher.{ds.ddir}.{n.id}.{label}.s{chunk[0]}-{chunk[-1]}",
                                "teacher", runs, sorted({r.labels for r in runs})))
    return jobs


def _student_jobs(ds: _Dataset, n: NoiseSpec, st: _Study) -> list[Job]:
    """The student jobs of one (dataset, noise): one per (setup, method) (per setup with
    pack_methods), per chunk of seeds; a method without teachers in setup ``none``."""
    cells: dict[tuple, list[tuple[MethodSpec, list[str], str]]] = {}
    for m in ds.methods:
        m_cells = ([("none", [], "noisy")] if not m.uses_teachers else
                   [(setup_id(s, ds.setup_archs[s], tl), ds.setup_archs[s], tl)
                    for s in ds.setups if ds.fits(m, s)
                    for tl in ds.teacher_labels])
        for sid, archs, tl in m_cells:
            key = (sid,) if st.pack else (sid, m.id)
            cells.setdefault(key, []).append((m, archs, tl))
    jobs = []
    for key, members in cells.items():
        for chunk in st.chunks:
            runs = [RunSpec("student", ds.name, labels_path(ds.name, n.id, seed, st.root),
                            ds.student, seed,
                            layout.run_dir(ds.ddir, n.id, key[0], m.id, seed, st.root),
                            ds.train, m.name, m.hparams,
                            tuple(teacher_dir(ds.ddir, n.id, a, tl, seed, st.root)
                                  for a in archs), tl, st.teacher_checkpoint)
                    for m, archs, tl in members for seed in chunk]
            inputs = sorted({r.labels for r in runs} | {
                f"{t}/{f}" for r in runs for t in r.teachers
                for f in (layout.METRICS,) + layout.TEACHER_MODELS})
            jobs.append(Job(f"student.{ds.ddir}.{n.id}.{'.'.join(key)}.s{chunk[0]}-{chunk[-1]}",
                            "student", runs, inputs))
    return jobs


def teacher_range(method: str, protocol: str) -> tuple[int, float]:
    """How many teachers a run of ``method`` can take: per-teacher rules at least 2 (with one
    they are kd); a target mixed from the label and the teachers (bootstrap, proselflc) at
    most 1 where the protocol gives each teacher the whole teacher share (authors)."""
    e = CATALOG[method]
    return e.min_teachers, (1 if e.mixes_targets and protocol != "suite" else math.inf)


def suits(method: str, n_teachers: int, protocol: str) -> bool:
    """Whether a run of ``method`` can take ``n_teachers`` teachers (``teacher_range``)."""
    low, high = teacher_range(method, protocol)
    return low <= n_teachers <= high


def plan(config: dict) -> Plan:
    """Every labels file, teacher and student run of a config; ``UserError`` names a bad key
    (every key is checked before a run is planned)."""
    st = _study_settings(config)
    seen_dirs: set[str] = set()
    split_of: dict[str, tuple] = {}
    labels, teacher_jobs, student_jobs, notes = [], [], [], []
    for d in st.datasets:
        ds = _dataset_settings(config, d, st, seen_dirs, split_of)
        notes += ds.notes
        for n in st.noises_of[ds.name]:
            labels += [(ds.name, n, seed) for seed in st.seeds]
            teacher_jobs += _teacher_jobs(ds, n, st)
            student_jobs += _student_jobs(ds, n, st)
    if not student_jobs:
        raise UserError("config: the grid is empty")
    result = Plan(labels, teacher_jobs, student_jobs, st.runtime, config, st.study,
                  tuple(notes))
    outs = Counter(o for j in teacher_jobs + student_jobs for o in j.outputs)
    dup = sorted(o for o, k in outs.items() if k > 1)
    if dup:
        raise UserError(f"config: two runs share output paths, e.g. {dup[0]}")
    return result


def rule_name(job: Job) -> str:
    """A Snakemake rule name (an identifier) for a job."""
    return "train_" + re.sub(r"\W", "_", job.name)


def report_outputs(p: Plan) -> list[str]:
    """The files `noisykd report` writes for a plan (the `all` target)."""
    setups = {r.out.split("/")[-3] for r in p.student_runs}  # .../<setup>/<method>/seedN
    outs = [f"{p.root}/tables/{t}"
            for t in layout.REPORT_TABLES + tuple(report_tables(setups))]
    # figures/cd_<setup> is not declared: it exists only where the setup's Friedman test
    # rejected (benchmark/analysis/ranks.py), which no plan knows
    figures = layout.FIGURES + (
        layout.ALM_FIGURES if any(r.method in ALM_METHODS for r in p.student_runs) else ())
    outs += [f"{p.root}/figures/{name}.{ext}" for name in figures
             for ext in layout.FIGURE_FORMATS]
    return outs


def labels_cli_args(noise_id: str) -> str:
    """The ``noisykd labels`` arguments that reproduce a noise id."""
    spec = NoiseSpec.parse(noise_id)
    if spec.kind == "human":
        return f"--noise human --variant {spec.variant}"
    incl = " --include-true" if spec.include_true else ""
    # always named for instance noise: the raw default changed what instance_<r> means
    # (issue 30), and the changed params make Snakemake rebuild labels files made before
    feats = f" --features {spec.features}" if spec.kind == "instance" else ""
    return f"--noise {spec.kind} --rate {spec.rate!r}{incl}{feats}"
