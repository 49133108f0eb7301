"""Every method's hyper-parameters, their defaults and allowed values, importable without torch.

The planner checks a config's method hyper-parameters against these tables before any job
starts (``benchmark/grid.py``), the CLI checks ``--hparam`` values and ``train-runs`` specs
before any training, and every method checks its own when it is built: all through
``check_hparams``. Each method class takes its defaults from here, so there is one source of
truth. ``HPARAM_DEFAULTS`` holds the defaults, ``HPARAM_RULES`` what each key accepts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# The refresh shared by every ALM method (methods/alm_refresh.py). Defaults: the authors'
# released code (durgas16/AMAL @ 6c4764b, KD/LearnMultiLambdaMeta.py).
ALM_DEFAULTS = {
    "T": 4.0,
    "kd_share": 0.9,  # initial KD share a: CE 1 - a; each teacher a / M (suite) or a (authors)
    "meta_start": 10,
    "meta_every": 10,
    "meta_chunk": 3,  # batches per chunk (protocol authors: their config's, see protocol.py)
    "meta_batch": None,  # None: the training batch size
    "meta_val_batch": 1000,  # None: the whole validation set, once per refresh
    "meta_steps": 5,
    "meta_lr": 1500.0,
    "meta_train_share": 0.0,  # share of the chunk's own training CE in the meta objective
    "refresh_mode": "eval",  # the student's mode in the refresh: eval or train
}

# The seed paper's own code (arXiv 2202.03250 v1; durgas16/AMAL @ 642fd9b,
# getLambda/LearnLambdaMeta.py get_lambdas and train_distill_learn_lam.py): meta objective
# 0.75 x validation CE + 0.25 x the chunk's training CE, 10 steps of 2000 (x lr: their
# `2000*eta*alpha_grads`), the whole validation set once per refresh, the live student in
# train mode, uniform random initial weights (no kd_share), chunk 2 for synthetic and 3 for
# CIFAR in their configs (grad_fit; 3 is the shared default, protocol authors sets 2).
ALMKD_V1_DEFAULTS = {k: v for k, v in ALM_DEFAULTS.items() if k != "kd_share"} | {
    "meta_val_batch": None,
    "meta_steps": 10,
    "meta_lr": 2000.0,
    "meta_train_share": 0.25,
    "refresh_mode": "train",
}

HPARAM_DEFAULTS = {
    "ce": {},
    "kd": {"T": 4.0, "kd_weight": 0.9},
    "fixed_alpha": {"T": 4.0, "alpha": None},
    "almkd": ALM_DEFAULTS,
    "amal": ALM_DEFAULTS,
    "almkd_v1": ALMKD_V1_DEFAULTS,
    "almkd_full": {**ALM_DEFAULTS, "schedule": "every_step", "full_steps": 1,
                   "full_val_batch": 128, "hypergrad": "jvp"},
    # The clean-budget baselines (issue 25): the clean data the ALM methods train on (the
    # meta split), given to ce and kd. ce_union's plain union weights a clean example as a
    # noisy one; kd_union trusts a clean example's label fully (CE weight clean_weight, no
    # teacher term), since in kd's 0.1 CE term the clean labels barely register.
    "ce_clean": {},
    "ce_union": {"clean_weight": 1.0},
    "kd_union": {"T": 4.0, "kd_weight": 0.9, "clean_weight": 1.0},
    # kd, then a short CE fine-tune on the meta split; lr null: a tenth of the schedule's
    # initial lr
    "kd_finetune": {"T": 4.0, "kd_weight": 0.9, "finetune_epochs": 3, "finetune_lr": None},
    # The meta-reweighting rivals at the same clean budget (issue 25; methods/lookahead.py):
    # per-example weights of kd's per-example mix (loss kd, teachers) or of CE (loss ce, no
    # teacher) from a look-ahead on the meta split; meta_batch null: the training batch size
    # (both authors' meta batch = their training batch, 100). l2rw: Ren et al. 2018,
    # uber-research/learning-to-reweight-examples @ 0b616c9 (no step size: lr cancels in the
    # normalisation); meta_decay null: the run's weight decay, in their meta cost
    # (models/assigned_weights_resnet_model.py:166). mwnet: Shu et al. 2019,
    # xjtushujun/meta-weight-net @ 3f1800f, MW-Net.py (the README's stable version): VNet(1,
    # 100, 1) (:264), Adam lr 1e-3, weight decay 1e-4 (:274-275), weights unnormalised (:237);
    # meta_optimizer sgd and normalise sum: their first script, train_WRN-28-10_Meta_PGC.py.
    "l2rw": {"loss": "kd", "T": 4.0, "kd_weight": 0.9, "meta_batch": None, "meta_decay": None,
             "meta_bn": "train"},
    "mwnet": {"loss": "kd", "T": 4.0, "kd_weight": 0.9, "meta_batch": None, "hidden": 100,
              "meta_optimizer": "adam", "meta_lr": 1e-3, "meta_weight_decay": 1e-4,
              "normalise": "none", "meta_bn": "train"},
}

#: methods that train on clean labels (the meta split): every table marks them
CLEAN_LABEL_METHODS = ("almkd", "amal", "almkd_v1", "almkd_full", "ce_clean", "ce_union",
                       "kd_union", "kd_finetune", "l2rw", "mwnet")
#: methods that take no teacher (they run once per cell and seed, setup "none")
NO_TEACHER_METHODS = ("ce", "ce_clean", "ce_union")
#: the clean-budget baselines: what every ALM method is also compared with
CLEAN_BUDGET_BASELINES = ("ce_clean", "ce_union", "kd_union", "kd_finetune")


def method_uses_teachers(method: str, hparams=None) -> bool:
    """Whether a run of ``method`` with these hyper-parameters takes teachers: never for
    NO_TEACHER_METHODS; for a method with a ``loss`` key (l2rw, mwnet) only with loss kd, its
    default (the built method says the same: its ``uses_teachers``)."""
    if method in NO_TEACHER_METHODS:
        return False
    hp = {**HPARAM_DEFAULTS.get(method, {}), **dict(hparams or {})}
    return hp.get("loss", "kd") != "ce"


# ---- allowed values ------------------------------------------------------------------------
# A bool is never a number here (YAML's true / false are no temperature), and a number is
# finite. Values are checked, never converted: a run's spec keeps what the user gave.


def _number(v) -> bool:  # an int is finite (math.isfinite(10**400) would overflow)
    return isinstance(v, int) and not isinstance(v, bool) or (
        isinstance(v, float) and math.isfinite(v))


@dataclass(frozen=True)
class Real:
    """A finite number in an interval (int or float); ``none``: what null means, if allowed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none: str | None = None
    text: str | None = None  # the allowed values in words, when the interval says too little

    def ok(self, v) -> bool:
        if v is None:
            return self.none is not None
        if not _number(v):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or (v < self.high if self.high_open else v <= self.high)

    def allowed(self, key: str) -> str:
        if self.text:
            return f"{key} {self.text}"
        if self.low is not None and self.high is not None:
            rng = (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                   f"{')' if self.high_open else ']'}")
        elif self.low is not None:
            rng = f"{'>' if self.low_open else '>='} {self.low:g}"
        else:
            rng = f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"{key} {rng} (a number)" + (f" or null ({self.none})" if self.none else "")


@dataclass(frozen=True)
class Int:
    """An integer >= ``low`` (not a bool, not a float); ``none``: what null means, if allowed."""

    low: int = 1
    none: str | None = None

    def ok(self, v) -> bool:
        if v is None:
            return self.none is not None
        return isinstance(v, int) and not isinstance(v, bool) and v >= self.low

    def allowed(self, key: str) -> str:
        return (f"{key} >= {self.low} (an integer)"
                + (f" or null ({self.none})" if self.none else ""))


@dataclass(frozen=True)
class Choice:
    values: tuple

    def ok(self, v) -> bool:
        return isinstance(v, str) and v in self.values

    def allowed(self, key: str) -> str:
        return f"{key} one of {', '.join(self.values)}"


# What each key means and accepts (read with methods/alm_base.py, alm_refresh.py, almkd_full.py)
ALM_RULES = {
    "T": Real(0, low_open=True),  # distillation temperature
    "kd_share": Real(0, 1),  # initial KD share a (CE weight 1 - a)
    "meta_start": Int(0),  # first refresh epoch (epochs count from 0)
    "meta_every": Int(1),  # epochs between refreshes
    "meta_chunk": Int(1),  # training batches per refresh chunk
    "meta_batch": Int(1, none="the training batch size"),
    "meta_val_batch": Int(1, none="the whole validation set, once per refresh"),
    "meta_steps": Int(1),  # meta gradient steps per chunk
    "meta_lr": Real(0, low_open=True),  # meta step size
    "meta_train_share": Real(0, 1),  # share of the chunk's training CE in the meta objective
    "refresh_mode": Choice(("eval", "train")),  # the student's mode in the refresh
}

# l2rw and mwnet (methods/lookahead.py MetaReweight)
META_REWEIGHT_RULES = {
    "loss": Choice(("kd", "ce")),  # kd: kd's per-example mix (teachers); ce: CE (no teacher)
    "T": Real(0, low_open=True),
    "kd_weight": Real(0, 1),
    "meta_batch": Int(1, none="the training batch size"),  # clean examples per look-ahead
    "meta_bn": Choice(("train", "eval")),  # BatchNorm of the meta loss: batch or running stats
}

HPARAM_RULES = {
    "ce": {},
    "kd": {"T": Real(0, low_open=True), "kd_weight": Real(0, 1)},
    # alpha: null by default, and every run needs one (a grid's `alphas` sets it per run)
    "fixed_alpha": {"T": Real(0, low_open=True), "alpha": Real(0, 1)},
    "almkd": ALM_RULES,
    "amal": ALM_RULES,
    "almkd_v1": {k: v for k, v in ALM_RULES.items() if k != "kd_share"},
    "ce_clean": {},
    "ce_union": {"clean_weight": Real(0)},  # weight of a clean example's CE (noisy: 1)
    "kd_union": {"T": Real(0, low_open=True), "kd_weight": Real(0, 1),
                 "clean_weight": Real(0)},  # a clean example's CE weight (no KD term)
    "kd_finetune": {"T": Real(0, low_open=True), "kd_weight": Real(0, 1),
                    "finetune_epochs": Int(0),
                    "finetune_lr": Real(0, low_open=True,
                                        none="a tenth of the schedule's initial lr")},
    "l2rw": {**META_REWEIGHT_RULES,
             "meta_decay": Real(0, none="the run's weight decay (the authors' meta cost has it)")},
    "mwnet": {**META_REWEIGHT_RULES,
              "hidden": Int(1),  # the weight net's hidden units: 1 -> hidden -> 1, sigmoid
              "meta_optimizer": Choice(("adam", "sgd")),  # sgd: momentum 0.9, Nesterov
              "meta_lr": Real(0, low_open=True),  # the weight net's learning rate
              "meta_weight_decay": Real(0),  # the weight net's optimizer's weight decay
              "normalise": Choice(("none", "sum"))},  # sum: weights / their batch sum
    "almkd_full": {
        **ALM_RULES,
        # its exact look-ahead draws validation batches of meta_val_batch (schedule almkd):
        # no whole-set option; the last-layer refresh's training share and mode do not exist
        "meta_val_batch": Int(1),
        "meta_train_share": Real(0, 0, text="= 0 (the exact look-ahead has no training share)"),
        "refresh_mode": Choice(("eval",)),
        "schedule": Choice(("every_step", "almkd")),
        "full_steps": Int(1),  # meta steps per training batch (schedule every_step)
        "full_val_batch": Int(1),  # validation batch of each meta step (every_step)
        "hypergrad": Choice(("double_backward", "jvp")),
    },
}


NUMBER_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _got(value) -> str:
    """The value as the message shows it, with why a number written as text is text."""
    if isinstance(value, str) and NUMBER_TEXT.fullmatch(value.strip()):
        why = ("YAML reads 1e3 as text: write 1.0e3" if re.search("[eE]", value)
               else "text, not a number")
        return f"{value!r} ({why})"
    return repr(value)


def check_hparams(method: str, hparams, *, complete: bool = True) -> None:
    """Refuse, in one line naming the method, key, value and allowed values, a method name
    that does not exist, a hyper-parameter the method does not have, or a value outside its
    range. ``complete``: also refuse a key left at a null default that a run needs (alpha of
    fixed_alpha); the planner passes False only where it sets that key itself."""
    from benchmark.errors import UserError

    if method not in HPARAM_RULES:
        raise UserError(f"unknown method {method!r}; known: {', '.join(HPARAM_RULES)}")
    if not isinstance(hparams, dict):
        raise UserError(f"method {method!r}: hyper-parameters must be a mapping of name to "
                        f"value, got {hparams!r}")
    rules = HPARAM_RULES[method]
    unknown = sorted(str(k) for k in hparams if k not in rules)
    if unknown:
        raise UserError(f"method {method!r}: unknown hyper-parameter(s) {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(rules)) or 'none'}")
    values = {**HPARAM_DEFAULTS[method], **hparams} if complete else hparams
    for key, value in values.items():
        if not rules[key].ok(value):
            given = "" if key in hparams else " (its default: a run must set it)"
            raise UserError(f"method {method!r}: needs hyper-parameter "
                            f"{rules[key].allowed(key)}, got {_got(value)}{given}")
