"""Every method's hyper-parameters and defaults, importable without torch.

The planner checks a config's method hyper-parameters against this table before any job
starts; each method class takes its defaults from here, so there is one source of truth.
"""

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
}
