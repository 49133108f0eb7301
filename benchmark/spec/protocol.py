"""The two protocols a run can follow, and what each one changes. Plain Python (no torch):
the planner, the runs and the methods all resolve through this one module.

- ``suite`` (default): this project's corrected behaviour.
- ``authors``: the ALM-KD authors' released code (durgas16/AMAL @ 6c4764b) wherever it
  differs from the suite, except where copying it would leak test data. What it changes:
  raw (unstandardised) tabular features; the refresh chunk of their config for the setting
  (``authors_chunk``); a cosine schedule of period epochs + 1 (their ``T_max``); refresh
  validation batches drawn with the training augmentation; teachers in train mode while
  students train (a flaw of their scripts, kept only here); every teacher's KD term weighted
  like a single teacher's (``kd_weights``).

``docs/reproduction-notes.md`` lists every difference, file and commit on both sides, and
which of them this preset reproduces.
"""

from __future__ import annotations

from benchmark.core.errors import UserError
from benchmark.spec import schema

PROTOCOLS = schema.enum("protocol")  # suite, authors (the schema's words)

# grad_fit (batches per refresh chunk) in the authors' configs at 6c4764b:
# KD/config/synthetic/config_multilam_syn_gmm.py 2; KD/config/cifar100/config_amal_cifar100.py
# 3 (one teacher; also used here for datasets they had no config for);
# KD/config/cifar100/config_diff_teacher_cifar_100.py 4 (several teachers).
AUTHORS_CHUNK_ONE_TEACHER = {"synthetic": 2}
AUTHORS_CHUNK_DEFAULT = 3
AUTHORS_CHUNK_SEVERAL_TEACHERS = 4


def check_protocol(protocol: str, where: str = "protocol") -> str:
    if protocol not in PROTOCOLS:
        raise UserError(f"{where} must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return protocol


def authors_chunk(dataset: str, n_teachers: int) -> int:
    if n_teachers > 1:
        return AUTHORS_CHUNK_SEVERAL_TEACHERS
    return AUTHORS_CHUNK_ONE_TEACHER.get(dataset, AUTHORS_CHUNK_DEFAULT)


def resolve_hparams(method: str, hparams: dict, protocol: str, dataset: str,
                    n_teachers: int) -> dict:
    """A method's hyper-parameters as a run uses them: the protocol's preset under the
    user's values (which always win). Recorded in metrics.json beside the spec."""
    from methods.catalog import HPARAM_DEFAULTS

    out = dict(hparams)
    if protocol == "authors" and "meta_chunk" in HPARAM_DEFAULTS.get(method, {}):
        out.setdefault("meta_chunk", authors_chunk(dataset, n_teachers))
    return out


def kd_weights(protocol: str, kd_share: float, n_teachers: int) -> tuple[float, float]:
    """(CE weight, each teacher's KD weight) a method starts from, for a KD share a.

    One convention per protocol for every method: ``suite`` shares a among the M teachers
    (a / M each, total a: one teacher or several, the same total KD weight); ``authors``
    gives each teacher a (their released code: ``lambdas = full(lam)``, CE = 1 - max).
    """
    check_protocol(protocol)
    each = kd_share / n_teachers if protocol == "suite" else kd_share
    return 1.0 - kd_share, each


def teacher_share(protocol: str, n_teachers: int) -> float:
    """The factor on each teacher's term of a rule whose one-teacher loss has its own KD
    weight (dkd, wsld, lskd, ...): ``kd_weights``' convention for a share of 1 (suite 1 / M,
    the rule's total weight kept; authors 1, each teacher weighted like a single one)."""
    return kd_weights(protocol, 1.0, n_teachers)[1]


def cosine_period(protocol: str, epochs: int) -> int:
    """T_max of the cosine schedule: the epochs, or epochs + 1 as in every authors' config
    that uses cosine (synthetic: 101 for 100 epochs; their multi-teacher config likewise)."""
    return epochs + 1 if protocol == "authors" else epochs


def raw_features(protocol: str) -> bool:
    """Tabular inputs fed unstandardised (the authors' synthetic loader) under ``authors``."""
    return protocol == "authors"


def teachers_train_mode(protocol: str) -> bool:
    """Teachers in train mode while students train: the authors' scripts never call .eval()
    on a teacher outside the refresh (the teacher's BatchNorm then normalises with the
    statistics of each training batch and updates its running statistics). Kept only under
    ``authors``."""
    return protocol == "authors"


def refresh_val_augment(protocol: str) -> bool:
    """Refresh validation batches drawn with the training augmentation (their validation set
    is a split of the augmented training dataset)."""
    return protocol == "authors"
