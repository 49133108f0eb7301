"""The declared schema of a run's ``metrics.json`` and of ``alpha_summary.json``.

``benchmark/training/run.py`` writes metrics.json (a student's under ``runs/``, a teacher's under
``teachers/``); ``collect.py``, ``compare.py``, ``report.py`` and ``bundle.py`` read it.
Every reader validates a parsed file with ``metrics_problems`` (``alpha_summary_problems``
for an ALM run's alpha_summary.json, benchmark/analysis/alpha_summary.py) before using a number, so
that a NaN, an infinite or missing accuracy, a string ``"0.9"`` or a boolean is refused
with one line naming the file and key, instead of being dropped, coerced or compared.

Numbers are JSON numbers: ``true``/``false`` and strings are not numbers. Accuracies are
finite and in [0, 1]. Keys the readers need are required; the others are checked only when
present (older files and hand-written test trees carry fewer). No torch, no numpy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path

from benchmark.core.atomic import write_json_atomic
from benchmark.core.errors import UserError

KINDS = ("student", "teacher")
ACCURACIES = ("test_acc_best_val", "test_acc_last", "val_acc_best", "val_acc_last")


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number(v) -> str | None:
    """Why ``v`` is not a finite number, or None."""
    if isinstance(v, bool):
        return f"{v} (a boolean), not a number"
    if isinstance(v, str):
        return f"{_shown(v)} (a string), not a number"
    if not _is_number(v):
        return f"{_shown(v)}, not a number"
    if isinstance(v, float) and not math.isfinite(v):  # an int is finite (10**400 too)
        return f"{v}, not a finite number"
    return None


def _accuracy(v) -> str | None:
    why = _number(v)
    if why:
        return why
    return None if 0 <= v <= 1 else f"{v}, not an accuracy in [0, 1]"


def _count(v) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int):
        return f"{_shown(v)}, not a whole number"
    return None if v >= 0 else f"{v}, not a count (negative)"


def _timing(v) -> str | None:
    """A duration or rate: a non-negative number, NaN (nothing timed) or null."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    why = _number(v)
    return why or (None if v >= 0 else f"{v}, negative")


def _of_type(kind: type, name: str) -> Callable:
    def check(v) -> str | None:
        return None if isinstance(v, kind) else f"{_shown(v)}, not {name}"
    return check


def _optional(check: Callable) -> Callable:
    def opt(v) -> str | None:
        return None if v is None else check(v)
    return opt


_TEXT, _DICT, _LIST = _of_type(str, "a string"), _of_type(dict, "an object"), _of_type(
    list, "a list")

#: key -> check, for both kinds; ``REQUIRED`` must be present
REQUIRED: dict[str, Callable] = {
    "kind": _TEXT, "spec": _DICT, "epochs": _count, "best_epoch": _count,
    **{k: _accuracy for k in ACCURACIES}}
OPTIONAL: dict[str, Callable] = {
    "schema_version": _count, "run_id": _TEXT, "config_hash": _TEXT,
    "train_loss_last": _number, "train_acc_last": _accuracy, "train_time_s": _timing,
    "images_per_s": _timing, "wall_time_s": _timing, "runtime": _DICT, "provenance": _DICT,
    "finished_at": _TEXT, "method_hparams": _DICT, "teacher": _DICT}
SPEC_REQUIRED: dict[str, Callable] = {"seed": _count, "labels": _DICT}
SPEC_OPTIONAL: dict[str, Callable] = {
    "dataset": _TEXT, "arch": _TEXT, "kind": _TEXT, "num_classes": _count, "train": _DICT,
    "method": _DICT, "teachers": _LIST, "teacher_labels": _optional(_TEXT)}
LABELS_OPTIONAL: dict[str, Callable] = {
    "noise": _TEXT, "seed": _count, "file_sha256": _TEXT, "dataset_fingerprint": _TEXT,
    "train_subset": _optional(_count)}
TEACHER_AGREEMENT = ("agreement_given", "agreement_noisy", "agreement_clean")


def _keys(d: Mapping, prefix: str, required: dict, optional: dict, where: str) -> list[str]:
    out = []
    for key, check in required.items():
        if key not in d:
            out.append(f"{where}: {prefix}{key} missing")
        elif (why := check(d[key])) is not None:
            out.append(f"{where}: {prefix}{key} is {why}")
    for key, check in optional.items():
        if key in d and (why := check(d[key])) is not None:
            out.append(f"{where}: {prefix}{key} is {why}")
    return out


def metrics_problems(m, where: str, kind: str | None = None) -> list[str]:
    """The problems of one parsed metrics.json (``where``: its path, for the messages), one
    line each; ``kind``: the kind its folder says it is (runs/: student, teachers/:
    teacher), None for either. Empty when every reader can use it."""
    if not isinstance(m, dict):
        return [f"{where}: not a metrics object ({type(m).__name__})"]
    out = _keys(m, "", REQUIRED, OPTIONAL, where)
    allowed = (kind,) if kind else KINDS
    if isinstance(m.get("kind"), str) and m["kind"] not in allowed:
        out.append(f"{where}: kind is {_shown(m['kind'])}, not "
                   + " or ".join(map(repr, allowed)))
    if _count(m.get("best_epoch")) is None and _count(m.get("epochs")) is None \
            and m["best_epoch"] > m["epochs"]:
        out.append(f"{where}: best_epoch {m['best_epoch']} is after the last epoch "
                   f"({m['epochs']})")
    spec = m.get("spec")
    if isinstance(spec, dict):
        out += _keys(spec, "spec.", SPEC_REQUIRED, SPEC_OPTIONAL, where)
        if isinstance(spec.get("labels"), dict):
            out += _keys(spec["labels"], "spec.labels.", {}, LABELS_OPTIONAL, where)
        method = spec.get("method")
        if isinstance(method, dict):
            out += _keys(method, "spec.method.", {}, {"name": _TEXT, "hparams": _DICT}, where)
        for i, t in enumerate(spec.get("teachers") or []):
            if not isinstance(t, dict):
                out.append(f"{where}: spec.teachers.{i} is {_shown(t)}, not an object")
            else:
                out += _keys(t, f"spec.teachers.{i}.", {"arch": _TEXT},
                             {"config_hash": _TEXT, "teacher_labels": _optional(_TEXT)}, where)
    teacher = m.get("teacher")
    if isinstance(teacher, dict):
        out += _keys(teacher, "teacher.", {},
                     {k: _optional(_accuracy) for k in TEACHER_AGREEMENT}, where)
    prov = m.get("provenance")
    if isinstance(prov, dict) and "git" in prov:
        out += _keys(prov, "provenance.", {}, {"git": _optional(_DICT)}, where)
    return out


def _field(key: str) -> property:
    """A required key of metrics.json as a read-only attribute."""
    return property(lambda self: self[key], doc=f"metrics.json's {key!r} (required)")


class RunMetrics(dict):
    """A run's metrics.json, checked against the declared schema (``metrics_problems``): the
    one record of it the suite reads and writes. A mapping of the file's keys (what a
    reader does not need stays reachable) with typed access to what readers use, so no
    reader spells a key or a default of its own."""

    @classmethod
    def checked(cls, m, where: str, kind: str | None = None) -> RunMetrics:
        """``m`` as a RunMetrics, else UserError: its first problem (and how many more)."""
        _raise_first(metrics_problems(m, where, kind))
        return m if isinstance(m, cls) else cls(m)

    kind = _field("kind")

    @property
    def config_hash(self) -> str | None:
        """The hash of its spec (None in a hand-written file without one)."""
        return self.get("config_hash")

    @property
    def run_id(self) -> str | None:
        return self.get("run_id")

    spec = _field("spec")

    @property
    def seed(self) -> int:
        return self["spec"]["seed"]

    @property
    def labels(self) -> dict:
        """The identity of its labels file (noise, seed, sha256, dataset fingerprint...)."""
        return self["spec"]["labels"]

    @property
    def method(self) -> str:
        """A student's method (a teacher's: ce, what teachers train with)."""
        return (self["spec"].get("method") or {}).get("name", "ce")

    @property
    def hparams(self) -> dict:
        """The hyper-parameters it was given (its resolved ones: ``method_hparams``)."""
        return (self["spec"].get("method") or {}).get("hparams", {})

    @property
    def teachers(self) -> list:
        return self["spec"].get("teachers") or []

    @property
    def git(self) -> dict:
        return (self.get("provenance") or {}).get("git") or {}

    # the required keys, each as it is in the file (checked: REQUIRED)
    epochs, best_epoch = _field("epochs"), _field("best_epoch")
    test_acc_best_val, test_acc_last, val_acc_best, val_acc_last = map(_field, ACCURACIES)


def check_metrics(m, where: str, kind: str | None = None) -> RunMetrics:
    """``m`` as a RunMetrics when it has no problem, else UserError: the first problem (and
    how many more)."""
    return RunMetrics.checked(m, where, kind)


def read_metrics(path, kind: str | None = None) -> RunMetrics:
    """A run's metrics.json, parsed and checked against the declared schema: the one way the
    suite reads one (UserError naming the file: unreadable, or its first problem)."""
    path = Path(path)
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"{path}: unreadable {path.name} ({exc})") from None
    return check_metrics(m, str(path), kind)


def read_metrics_or_none(path, kind: str | None = None) -> RunMetrics | None:
    """``read_metrics``, or None where the file is missing, unreadable or off the schema:
    for the readers to whom such a run is simply not there (a run's kept copy, restamp)."""
    try:
        return read_metrics(path, kind)
    except UserError:
        return None


def write_metrics(path, metrics: dict) -> None:
    """Write a run's metrics.json atomically, once it passes the schema the readers hold it
    to: the one way the suite writes one."""
    check_metrics(metrics, str(path), metrics.get("kind"))
    write_json_atomic(path, metrics)


def _raise_first(problems: list[str]) -> None:
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(problems[0] + more)


# ---- alpha_summary.json (benchmark/analysis/alpha_summary.py) --------------------------------

#: alpha_summary.py's FORMAT, VERSION and BINS (tests/exchange/test_hostile_bundle.py checks
#: they agree; this module stays free of numpy and pandas)
SUMMARY_FORMAT, SUMMARY_VERSION = "noisykd-alpha-summary", 1
SUMMARY_BINS = 10
_SHARE = _optional(_number)  # a group without instances has no mean: null


def _list_of(s: Mapping, key: str, check: Callable, n: int | None, where: str,
             prefix: str = "") -> list[str]:
    """Problems of ``s[key]``, a list of ``n`` (None: any number of) values ``check``
    accepts (the first three bad values named)."""
    v = s.get(key)
    if not isinstance(v, list):
        return [f"{where}: {prefix}{key} " + ("missing" if key not in s
                                              else f"is {_shown(v)}, not a list")]
    if n is not None and len(v) != n:
        return [f"{where}: {prefix}{key} has {len(v)} entries, not {n}"]
    return [f"{where}: {prefix}{key}.{i} is {why}" for i, x in enumerate(v)
            if (why := check(x)) is not None][:3]


def alpha_summary_problems(s, where: str) -> list[str]:
    """The problems of one parsed alpha_summary.json, one line each (empty: readable)."""
    if not isinstance(s, dict):
        return [f"{where}: not an alpha summary object ({type(s).__name__})"]
    if s.get("format") != SUMMARY_FORMAT or s.get("version") != SUMMARY_VERSION:
        return [f"{where}: format {_shown(s.get('format'))} version "
                f"{_shown(s.get('version'))}, not {SUMMARY_FORMAT} version {SUMMARY_VERSION}"]
    out = _keys(s, "", {"n_instances": _count, "n_noisy": _count,
                        "has_teacher_diagnostics": _of_type(bool, "true or false"),
                        "quantiles_last": _DICT}, {"bins_last": _DICT}, where)
    out += _list_of(s, "refresh_epoch", _count, None, where)
    if out:
        return out
    if s["n_noisy"] > s["n_instances"]:
        out.append(f"{where}: n_noisy {s['n_noisy']} is more than n_instances "
                   f"{s['n_instances']}")
    n = len(s["refresh_epoch"])
    diag = s["has_teacher_diagnostics"]
    for key, check in (("share_clean", _SHARE), ("share_noisy", _SHARE),
                       ("share_agree", _SHARE), ("share_disagree", _SHARE),
                       ("n_agree", _count), ("n_disagree", _count)):
        out += _list_of(s, key, check, n if diag or key in ("share_clean", "share_noisy")
                        else 0, where)
    q = s["quantiles_last"]
    out += _list_of(q, "q", _number, None, where, "quantiles_last.")
    for group in ("clean", "noisy"):
        if q.get(group) is not None:
            out += _list_of(q, group, _number, len(q["q"]) if isinstance(q.get("q"), list)
                            else None, where, "quantiles_last.")
    bins = s.get("bins_last")
    if diag and bins is None:
        out.append(f"{where}: bins_last missing (the summary has teacher diagnostics)")
    if isinstance(bins, dict):
        out += _list_of(bins, "edges", _number, SUMMARY_BINS + 1, where, "bins_last.")
        out += _list_of(bins, "share_sum", _number, SUMMARY_BINS, where, "bins_last.")
        out += _list_of(bins, "count", _count, SUMMARY_BINS, where, "bins_last.")
    return out


def check_alpha_summary(s, where: str):
    """``s`` when it has no problem, else UserError naming the first."""
    return _raise_first(alpha_summary_problems(s, where)) or s
