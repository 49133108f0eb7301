"""The method catalog: every fact about every method, in one torch-free place.

One ``MethodEntry`` per method, in the order the tables list their rows: its family and role
(an ALM method, compared with every baseline, or a baseline), whether its weights stay on the
simplex, whether it takes teachers and trains on clean labels (the meta split), its
hyper-parameters (defaults as the authors used them, and what each accepts), the grid key
that sweeps one of them and the tables then choose per seed (fixed_alpha's ``alphas``), its
place among the baselines, its marker in the tables, and what the cost model prices it as.
The planner, the cost model, the report and the method classes (``methods/base.py`` fills a
registered class's facts from its entry) read it; tests/methods/test_catalog.py checks that
they agree with it.

Adding a method: write ``methods/<name>.py`` (a ``@register_method`` class with ``name`` and
``loss``) and add one ``MethodEntry`` to ``_ENTRIES`` below; nothing else lists methods (the
schema leaves their names to the planner, which checks them here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

from benchmark.core.errors import UserError

from .hparam_types import Choice, Int, Real, shown

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

ALMKD_FULL_DEFAULTS = {**ALM_DEFAULTS, "schedule": "every_step", "full_steps": 1,
                       "full_val_batch": 128, "hypergrad": "jvp"}

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
L2RW_DEFAULTS = {"loss": "kd", "T": 4.0, "kd_weight": 0.9, "meta_batch": None,
                 "meta_decay": None, "meta_bn": "train"}
MWNET_DEFAULTS = {"loss": "kd", "T": 4.0, "kd_weight": 0.9, "meta_batch": None, "hidden": 100,
                  "meta_optimizer": "adam", "meta_lr": 1e-3, "meta_weight_decay": 1e-4,
                  "normalise": "none", "meta_bn": "train"}

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

L2RW_RULES = {**META_REWEIGHT_RULES,
              "meta_decay": Real(0, none="the run's weight decay (the authors' meta cost has it)")}
MWNET_RULES = {**META_REWEIGHT_RULES,
               "hidden": Int(1),  # the weight net's hidden units: 1 -> hidden -> 1, sigmoid
               "meta_optimizer": Choice(("adam", "sgd")),  # sgd: momentum 0.9, Nesterov
               "meta_lr": Real(0, low_open=True),  # the weight net's learning rate
               "meta_weight_decay": Real(0),  # the weight net's optimizer's weight decay
               "normalise": Choice(("none", "sum"))}  # sum: weights / their batch sum
ALMKD_FULL_RULES = {
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
}

# The trust-rule zoo (issue 29): rules that set a student's trust in its teachers without
# clean data, each ported from its authors' code (docs/reproduction-notes.md, section Z;
# defaults as the authors used them on CIFAR-100, sources in each method's docstring).

#: the families, in the order the docs describe them
FAMILIES = ("label", "constant_trust", "adaptive_mixing", "clean_budget", "meta_reweight",
            "per_instance_trust", "robust_label", "per_teacher_trust", "logit_kd", "control")
#: how the cost model prices a run (benchmark/plan/cost_model.py): as kd (teachers' and student's
#: passes), kd plus ALM refreshes (measured for the method named by ``priced_as``), a
#: look-ahead every step (measured as almkd_full's per step), or almkd_full's own schedule
COST_CLASSES = ("kd", "refresh", "lookahead", "exact_lookahead")


@dataclass(frozen=True)
class MethodEntry:
    """One method's facts (see the module docstring)."""

    name: str
    family: str
    defaults: dict
    rules: dict
    uses_teachers: bool = True
    #: hyper-parameter values with which a run takes no teacher (l2rw / mwnet with loss ce)
    teacher_free_when: dict = field(default_factory=dict)
    uses_clean_labels: bool = False
    convex: bool = False  # per-instance weights on the simplex (methods/mixing.py)
    #: the hyper-parameter a grid sweeps (key ``<name>s``) and the tables choose per seed on
    #: the selection split; the run id names it and the comparisons see one row
    selected: str | None = None
    #: the baselines' order in the comparisons (None: an ALM method, compared with them)
    baseline_rank: int | None = None
    short: str = ""  # a baseline's marker in the per-cell tables (+K: better than kd)
    cost: str = "kd"
    priced_as: str | None = None  # cost "refresh": whose measured refresh costs
    #: the fewest teachers a run needs: 2 for the per-teacher rules (with one teacher they
    #: are kd); the planner leaves them out of setups with fewer, and says so
    min_teachers: int = 1
    #: mixes the label with the teachers' probabilities into one target distribution
    #: (bootstrap, proselflc): several teachers only where their weights total the target's
    #: share (protocol suite); the planner refuses the rest in one line
    mixes_targets: bool = False
    #: whether the rule computes its trust in the teacher from the given (possibly noisy)
    #: label (wsld, dkd, camkd) or not (ebkd, aekd, proselflc, lskd); None: not a trust rule
    #: of the zoo (the tables mark the first kind)
    trust_from_label: bool | None = None

    @property
    def compared(self) -> bool:
        """A rule under test, compared with every baseline (ALM methods and the zoo)."""
        return self.baseline_rank is None

    @property
    def is_alm(self) -> bool:
        return self.family == "adaptive_mixing"

    def check(self, hparams, *, complete: bool = True) -> None:
        """Refuse, in one line naming the method, key, value and allowed values, a
        hyper-parameter the method does not have or a value outside its range. ``complete``:
        also refuse a key left at a null default that a run needs (alpha of fixed_alpha);
        the planner passes False only where it sets that key itself."""
        if not isinstance(hparams, dict):
            raise UserError(f"method {self.name!r}: hyper-parameters must be a mapping of name "
                            f"to value, got {hparams!r}")
        unknown = sorted(str(k) for k in hparams if k not in self.rules)
        if unknown:
            known = ", ".join(sorted(self.rules)) or "none"
            raise UserError(f"method {self.name!r}: unknown hyper-parameter(s) "
                            f"{', '.join(unknown)}; known: {known}")
        values = {**self.defaults, **hparams} if complete else hparams
        for key, value in values.items():
            if not self.rules[key].ok(value):
                given = "" if key in hparams else " (its default: a run must set it)"
                raise UserError(f"method {self.name!r}: needs hyper-parameter "
                                f"{self.rules[key].allowed(key)}, got {shown(value)}{given}")

    def takes_teachers(self, hparams=None) -> bool:
        """Whether a run with these hyper-parameters (over the defaults) takes teachers."""
        if not self.uses_teachers:
            return False
        hp = {**self.defaults, **dict(hparams or {})}
        return not (self.teacher_free_when
                    and all(hp.get(k) == v for k, v in self.teacher_free_when.items()))


_ENTRIES = (
    MethodEntry("ce", "label", {}, {}, uses_teachers=False, baseline_rank=2, short="C"),
    MethodEntry("kd", "constant_trust", {"T": 4.0, "kd_weight": 0.9},
                {"T": Real(0, low_open=True), "kd_weight": Real(0, 1)},
                baseline_rank=0, short="K"),
    # alpha: null by default, and every run needs one (a grid's `alphas` sets it per run)
    MethodEntry("fixed_alpha", "constant_trust", {"T": 4.0, "alpha": None},
                {"T": Real(0, low_open=True), "alpha": Real(0, 1)},
                selected="alpha", baseline_rank=1, short="F"),
    MethodEntry("almkd", "adaptive_mixing", ALM_DEFAULTS, ALM_RULES, uses_clean_labels=True,
                convex=True, cost="refresh", priced_as="almkd"),
    MethodEntry("amal", "adaptive_mixing", ALM_DEFAULTS, ALM_RULES, uses_clean_labels=True,
                cost="refresh", priced_as="amal"),
    # the same refresh (10 steps instead of 5, against the whole validation set): priced
    # with almkd's costs, an underestimate of its refreshes until perf times it
    MethodEntry("almkd_v1", "adaptive_mixing", ALMKD_V1_DEFAULTS,
                {k: v for k, v in ALM_RULES.items() if k != "kd_share"},
                uses_clean_labels=True, cost="refresh", priced_as="almkd"),
    MethodEntry("almkd_full", "adaptive_mixing", ALMKD_FULL_DEFAULTS, ALMKD_FULL_RULES,
                uses_clean_labels=True, convex=True, cost="exact_lookahead"),
    # The clean-budget baselines (issue 25): the clean data the ALM methods train on (the
    # meta split), given to ce and kd. ce_union's plain union weights a clean example as a
    # noisy one; kd_union trusts a clean example's label fully (CE weight clean_weight, no
    # teacher term), since in kd's 0.1 CE term the clean labels barely register.
    MethodEntry("ce_clean", "clean_budget", {}, {}, uses_teachers=False,
                uses_clean_labels=True, baseline_rank=3, short="Cc"),
    MethodEntry("ce_union", "clean_budget", {"clean_weight": 1.0},
                {"clean_weight": Real(0)},  # weight of a clean example's CE (noisy: 1)
                uses_teachers=False, uses_clean_labels=True, baseline_rank=4, short="Cu"),
    MethodEntry("kd_union", "clean_budget", {"T": 4.0, "kd_weight": 0.9, "clean_weight": 1.0},
                {"T": Real(0, low_open=True), "kd_weight": Real(0, 1),
                 "clean_weight": Real(0)},  # a clean example's CE weight (no KD term)
                uses_clean_labels=True, baseline_rank=5, short="Ku"),
    # kd, then a short CE fine-tune on the meta split; lr null: a tenth of the schedule's
    # initial lr
    MethodEntry("kd_finetune", "clean_budget",
                {"T": 4.0, "kd_weight": 0.9, "finetune_epochs": 3, "finetune_lr": None},
                {"T": Real(0, low_open=True), "kd_weight": Real(0, 1),
                 "finetune_epochs": Int(0),
                 "finetune_lr": Real(0, low_open=True,
                                     none="a tenth of the schedule's initial lr")},
                uses_clean_labels=True, baseline_rank=6, short="Kf"),
    MethodEntry("l2rw", "meta_reweight", L2RW_DEFAULTS, L2RW_RULES,
                teacher_free_when={"loss": "ce"}, uses_clean_labels=True, baseline_rank=7,
                short="L", cost="lookahead"),
    MethodEntry("mwnet", "meta_reweight", MWNET_DEFAULTS, MWNET_RULES,
                teacher_free_when={"loss": "ce"}, uses_clean_labels=True, baseline_rank=8,
                short="M", cost="lookahead"),
    # -- the trust-rule zoo (issue 29) ----------------------------------------------------
    MethodEntry("wsld", "per_instance_trust", {"T": 4.0, "ce_weight": 1.0, "kd_weight": 2.25},
                {"T": Real(0, low_open=True), "ce_weight": Real(0), "kd_weight": Real(0)},
                trust_from_label=True),
    MethodEntry("bootstrap", "per_instance_trust", {"mode": "soft", "beta": None},
                {"mode": Choice(("soft", "hard")),
                 "beta": Real(0, 1, none="0.95 for soft, 0.8 for hard (Reed et al.)")},
                mixes_targets=True, trust_from_label=False),
    MethodEntry("proselflc", "per_instance_trust",
                {"B": 6.0, "transit": 0.3},
                {"B": Real(0), "transit": Real(0, 1)},
                mixes_targets=True, trust_from_label=False),
    MethodEntry("gce_kd", "robust_label", {"q": 0.7, "T": 4.0, "kd_weight": 0.9},
                {"q": Real(0, 1, low_open=True), "T": Real(0, low_open=True),
                 "kd_weight": Real(0, 1)}),
    MethodEntry("sce_kd", "robust_label",
                # A: ln(1e-4), their clip of the one-hot label (the paper's -4 is log10)
                {"alpha": 6.0, "beta": 0.1, "A": math.log(1e-4), "T": 4.0, "kd_weight": 0.9},
                {"alpha": Real(0), "beta": Real(0), "A": Real(high=0, high_open=True),
                 "T": Real(0, low_open=True), "kd_weight": Real(0, 1)}),
    MethodEntry("camkd", "per_teacher_trust", {"T": 4.0, "ce_weight": 1.0, "kd_weight": 1.0},
                {"T": Real(0, low_open=True), "ce_weight": Real(0), "kd_weight": Real(0)},
                min_teachers=2, trust_from_label=True),
    MethodEntry("ebkd", "per_teacher_trust", {"T": 4.0, "ce_weight": 1.0, "kd_weight": 1.0},
                {"T": Real(0, low_open=True), "ce_weight": Real(0), "kd_weight": Real(0)},
                min_teachers=2, trust_from_label=False),
    MethodEntry("aekd", "per_teacher_trust",
                {"T": 4.0, "ce_weight": 1.0, "kd_weight": 0.9, "C": 0.6},
                {"T": Real(0, low_open=True), "ce_weight": Real(0), "kd_weight": Real(0),
                 # each teacher's weight at most clip(C, 1 / M, 1) (their one-class SVM's C)
                 "C": Real(0, low_open=True)},
                min_teachers=2, trust_from_label=False),
    MethodEntry("dkd", "logit_kd",
                {"T": 4.0, "ce_weight": 1.0, "alpha": 1.0, "beta": 8.0, "warmup": 20},
                {"T": Real(0, low_open=True), "ce_weight": Real(0), "alpha": Real(0),
                 "beta": Real(0), "warmup": Int(0)},
                trust_from_label=True),
    MethodEntry("lskd", "logit_kd", {"T": 2.0, "ce_weight": 0.1, "kd_weight": 9.0},
                {"T": Real(0, low_open=True), "ce_weight": Real(0), "kd_weight": Real(0)},
                trust_from_label=False),
    MethodEntry("tfkd", "control",
                {"T": 20.0, "kd_weight": 0.1, "multiplier": 100.0, "correct_prob": 0.99},
                {"T": Real(0, low_open=True), "kd_weight": Real(0, 1),
                 "multiplier": Real(0), "correct_prob": Real(0, 1)},
                uses_teachers=False),
)

#: name -> entry, in the tables' row order
CATALOG: MappingProxyType = MappingProxyType({e.name: e for e in _ENTRIES})
METHOD_NAMES = tuple(CATALOG)
ALM_METHODS = tuple(e.name for e in _ENTRIES if e.is_alm)
#: the rules under test (ALM methods and the zoo), each compared with every baseline
COMPARED_METHODS = tuple(e.name for e in _ENTRIES if e.compared)
#: the baselines in the comparisons' order
BASELINE_ORDER = tuple(sorted((e.name for e in _ENTRIES if not e.compared),
                              key=lambda m: CATALOG[m].baseline_rank))
#: methods that train on clean labels (the meta split): every table marks them
CLEAN_LABEL_METHODS = tuple(e.name for e in _ENTRIES if e.uses_clean_labels)
#: rules whose trust in the teacher is computed from the given label: every table marks them
TRUST_FROM_LABEL_METHODS = tuple(e.name for e in _ENTRIES if e.trust_from_label)
HPARAM_DEFAULTS = MappingProxyType({e.name: e.defaults for e in _ENTRIES})
HPARAM_RULES = MappingProxyType({e.name: e.rules for e in _ENTRIES})
SHORT = {e.name: e.short for e in _ENTRIES if e.short}


def unknown_method(method) -> str:
    """The line that refuses a method name: the known ones, and the nearest if one is close."""
    import difflib

    close = difflib.get_close_matches(str(method), list(CATALOG))  # the best first
    return (f"unknown method {method!r}; known: {', '.join(CATALOG)}"
            + (f" (did you mean {close[0]!r}?)" if close else ""))


def entry(method: str) -> MethodEntry:
    """The catalog entry of ``method``, or one line naming the known methods."""
    try:
        return CATALOG[method]
    except (KeyError, TypeError):
        raise UserError(unknown_method(method)) from None


def method_uses_teachers(method: str, hparams=None) -> bool:
    """Whether a run of ``method`` with these hyper-parameters takes teachers: never for ce,
    ce_clean, ce_union; l2rw and mwnet only with loss kd, their default (the built method
    says the same: its ``uses_teachers``). An unknown method is one line (``entry``)."""
    return entry(method).takes_teachers(hparams)


def selected_hparam(method) -> str | None:
    """The hyper-parameter the tables choose per seed for ``method`` (its entry's
    ``selected``: fixed_alpha's alpha), None for a method without one or a name the catalog
    does not hold (a results folder may hold a method this version no longer has)."""
    e = CATALOG.get(method) if isinstance(method, str) else None
    return e.selected if e is not None else None


def check_hparams(method: str, hparams, *, complete: bool = True) -> None:
    """``MethodEntry.check`` for a method named by the user: an unknown name is one line
    naming the known ones."""
    if method not in CATALOG:
        raise UserError(unknown_method(method))
    CATALOG[method].check(hparams, complete=complete)
