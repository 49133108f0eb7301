"""A config's checks and readers: each key checked with one line naming it, before any job
starts; the values the planner and the workflow's rules read (datasets, noise settings,
methods, setups, fractions, training configs). Torch-free."""

from __future__ import annotations

from benchmark.core import layout
from benchmark.core.errors import UserError
from benchmark.data import dataset_names
from benchmark.data.labels import DEFAULT_VAL_FRACTION
from benchmark.data.noise import NoiseSpec
from benchmark.plan.specs import MethodSpec
from benchmark.spec import schema
from benchmark.spec.archnames import check_arch_name
from benchmark.spec.protocol import kd_weights
from benchmark.spec.trainconfig import TrainConfig
from methods.catalog import (
    CATALOG,
    HPARAM_DEFAULTS,
    METHOD_NAMES,
    check_hparams,
    unknown_method,
)

STUDY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
#: folder names of a study's own layout (and of the layout before studies): never a study
RESERVED_STUDY_NAMES = layout.FOLDERS
SETUPS = ("single", "multi", "self")
# the keys a config and a dataset entry may have, and the runtime block's defaults: the
# schema's (workflows/config/schema.yaml)
TOP_KEYS = set(schema.properties())
DATASET_KEYS = set(schema.properties("datasets", "items"))
RUNTIME_DEFAULTS = schema.defaults("runtime")



# ---- validation helpers --------------------------------------------------------------------

def need(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise UserError(f"config key '{key}': {message}")


def as_list(value, key: str) -> list:
    if isinstance(value, (str, int, float)):
        return [value]
    need(isinstance(value, list) and len(value) > 0, key, "needs a non-empty list")
    return value


def noise_specs(config: dict) -> list[NoiseSpec]:
    """Expand the ``noise`` entries of a config into specs, in config order, without repeats."""
    entries = config.get("noise")
    need(isinstance(entries, list) and len(entries) > 0, "noise",
          "needs a non-empty list of noise entries")
    specs: list[NoiseSpec] = []
    for i, entry in enumerate(entries):
        where = f"noise[{i}]"
        need(isinstance(entry, dict) and "type" in entry, where, "needs a mapping with 'type'")
        unknown = set(entry) - {"type", "rates", "variants", "include_true", "features"}
        need(not unknown, where, f"unknown key(s) {', '.join(sorted(unknown))}")
        kind = entry["type"]
        try:
            if kind == "human":
                need(bool(entry.get("variants")), where,
                      "human noise needs 'variants' (e.g. [aggre, worst])")
                new = [NoiseSpec("human", variant=v) for v in entry["variants"]]
            else:
                need(bool(entry.get("rates")), where, f"noise {kind!r} needs a non-empty 'rates'")
                new = [NoiseSpec(kind, rate=r, include_true=bool(entry.get("include_true")),
                                 features=entry.get("features")) for r in entry["rates"]]
        except UserError as exc:
            if str(exc).startswith("config key"):
                raise
            raise UserError(f"config key '{where}': {exc}") from None
        specs += [s for s in new if s not in specs]
    return specs


def datasets_of(config: dict) -> list[dict]:
    entries = config.get("datasets")
    need(isinstance(entries, list) and len(entries) > 0, "datasets",
          "needs a non-empty list of dataset entries")
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"name": entry}
        where = f"datasets[{i}]"
        need(isinstance(entry, dict) and "name" in entry, where, "needs a mapping with 'name'")
        unknown = set(entry) - DATASET_KEYS
        need(not unknown, where, f"unknown key(s) {', '.join(sorted(unknown))}")
        if entry["name"] not in dataset_names():
            raise UserError(f"config key 'datasets': unknown dataset {entry['name']!r}; "
                            f"known: {', '.join(dataset_names())}")
        subset = entry.get("train_subset")
        need(subset is None or (isinstance(subset, int) and not isinstance(subset, bool)
                                 and subset >= 1), f"{where}.train_subset",
              f"a positive number of training examples, got {subset!r}")
        val = entry.get("val_fraction")
        need(val is None or (isinstance(val, (int, float)) and not isinstance(val, bool)
                              and 0 < val < 1), f"{where}.val_fraction", f"in (0, 1), got {val!r}")
        sel = entry.get("select_fraction")
        need(sel is None or (isinstance(sel, (int, float)) and not isinstance(sel, bool)
                              and 0 <= sel < 1), f"{where}.select_fraction",
              f"in [0, 1), got {sel!r}")
        out.append(entry)
    return out


def dataset_entry(config: dict, dataset: str) -> dict:
    for entry in config.get("datasets") or []:
        if isinstance(entry, dict) and entry.get("name") == dataset:
            return entry
    return {}


def val_fraction_of(config: dict, dataset: str) -> float:
    """A dataset's clean validation share: its own ``val_fraction``, else the top-level one
    (the planner refuses entries of one dataset that disagree)."""
    return float(dataset_entry(config, dataset).get(
        "val_fraction", config.get("val_fraction", DEFAULT_VAL_FRACTION)))


def select_fraction_of(config: dict, dataset: str, protocol: str | None = None,
                       entry: dict | None = None) -> float:
    """A dataset's selection-split share of the pool (0: none, the meta split selects too):
    its own ``select_fraction``, else the top-level one, else the protocol's default: under
    ``suite`` as large as the meta split (``val_fraction``), so the meta split the ALM
    methods train on keeps its size; under ``authors`` none (their one shared set)."""
    entry = dataset_entry(config, dataset) if entry is None else entry
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
    subset = dataset_entry(config, dataset).get("train_subset")
    return f"--train-subset {int(subset)}" if subset is not None else ""


def train_config_of(values: dict | None, key: str, runtime: dict, protocol: str) -> TrainConfig:
    values = dict(values or {})
    need("protocol" not in values, f"{key}.protocol",
          "set protocol at the top level or per dataset, not in a training block")
    values["protocol"] = protocol
    for k in ("device", "compile", "compile_mode", "checkpoint_every", "keep_checkpoint"):
        values.setdefault(k, runtime[k])
    try:
        return TrainConfig.from_dict(values)
    except UserError as exc:
        raise UserError(f"config key '{key}': {exc}") from None


def methods_of(config: dict, key: str = "methods") -> list[MethodSpec]:
    entries = as_list(config.get("methods"), key)
    out: list[MethodSpec] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"name": entry}
        where = f"{key}[{i}]"
        need(isinstance(entry, dict) and "name" in entry, where, "needs a name")
        name = entry["name"]
        need(name in METHOD_NAMES, where,
              unknown_method(name))
        selected = CATALOG[name].selected  # fixed_alpha: alpha, swept by the key alphas
        sweeps = {f"{e.selected}s" for e in CATALOG.values() if e.selected}
        unknown = set(entry) - {"name", "hparams"} - sweeps
        need(not unknown, where, f"unknown key(s) {', '.join(sorted(unknown))}")
        hp = entry.get("hparams") or {}
        need(isinstance(hp, dict) and all(isinstance(k, str) for k in hp), f"{where}.hparams",
              f"a mapping of hyper-parameter name to value, got {hp!r}")
        hp = dict(hp)
        if selected is not None:
            key = f"{selected}s"
            values = as_list(entry.get(key), f"{where}.{key}")
            rule = CATALOG[name].rules[selected]
            for a in values:
                need(rule.ok(a), f"{where}.{key}",
                      f"{selected} must be {rule.allowed(selected)[len(selected) + 1:]}, "
                      f"got {a!r}")
            variants = [{**hp, selected: float(a)} for a in values]
        else:
            for key in sweeps & set(entry):
                owner = next(e.name for e in CATALOG.values() if f"{e.selected}s" == key)
                need(False, where, f"{key} is for {owner} only")
            variants = [hp]
        for v in variants:
            spec = MethodSpec(name, tuple(sorted(v.items())))
            if spec not in out:
                out.append(spec)
    return out


def setups_of(value, key: str) -> list[str]:
    setups = as_list(value, key)
    for s in setups:
        need(s in SETUPS, key, f"unknown setup {s!r}; known: {', '.join(SETUPS)}")
    return setups


def teacher_labels_of(value, key: str) -> list[str]:
    t_labels = as_list(value, key)
    for tl in t_labels:
        need(tl in ("noisy", "clean"), key, f"noisy or clean, got {tl!r}")
    return t_labels


def check_method_hparams(methods: list[MethodSpec], key: str = "methods") -> None:
    """Unknown hyper-parameters, and values of the wrong type or out of range, fail at
    planning time, not in a job hours later (the check every run repeats: methods/catalog.py)."""
    for m in methods:
        known = set(HPARAM_DEFAULTS[m.name])
        unknown = {k for k, _ in m.hparams} - known
        need(not unknown, key,
              f"method {m.name!r}: unknown hyper-parameter(s) {', '.join(sorted(unknown))}; "
              f"known: {', '.join(sorted(known)) or 'none'}")
        try:
            check_hparams(m.name, dict(m.hparams))
        except UserError as exc:
            raise UserError(f"config key '{key}': {exc}") from None


def check_archs(d: dict, where: str) -> None:
    """Every architecture a dataset entry names exists (timm asked only for non-suite names),
    before any job starts. Whether it fits the dataset's inputs (an image model for tabular
    data) is left to the jobs: the cost model (benchmark/plan/cost_model.py) plans such configs."""
    multi = d.get("multi_teachers")
    need(multi is None or isinstance(multi, list), f"{where}.multi_teachers",
          f"a list of architectures, got {multi!r}")
    for key, arch in ([("student", d["student"])] + ([("teacher", d["teacher"])]
                      if "teacher" in d else []) + [("multi_teachers", a) for a in multi or []]):
        try:
            check_arch_name(arch)
        except UserError as exc:
            raise UserError(f"config key '{where}.{key}': {exc}") from None


def check_convex(methods: list[MethodSpec], n_teachers: list[int], protocol: str,
                  dataset: str) -> None:
    """Convex mixing cannot start where the protocol's KD convention has a total above 1."""
    for m in methods:
        if not CATALOG[m.name].convex:
            continue
        share = dict(m.hparams).get("kd_share", HPARAM_DEFAULTS[m.name]["kd_share"])
        for k in n_teachers:
            ce, each = kd_weights(protocol, share, k)
            need(ce + k * each <= 1.0 + 1e-9, f"datasets[{dataset}].protocol",
                  f"{m.id} mixes on the simplex (total weight 1), but protocol {protocol!r} "
                  f"starts each of {k} teachers at {each:g}; use protocol suite for it, or "
                  "amal / almkd_v1, or drop the multi setup")


