"""Every method's hyper-parameters and defaults, importable without torch.

The planner checks a config's method hyper-parameters against this table before any job
starts; each method class takes its defaults from here, so there is one source of truth.
"""

ALM_DEFAULTS = {
    "T": 4.0,
    "kd_share": 0.9,  # initial weight of the KD terms (almkd: split among teachers)
    "meta_start": 10,
    "meta_every": 10,
    "meta_chunk": 3,
    "meta_batch": None,  # None: the training batch size
    "meta_val_batch": 1000,
    "meta_steps": 5,
    "meta_lr": 1500.0,
}

HPARAM_DEFAULTS = {
    "ce": {},
    "kd": {"T": 4.0, "kd_weight": 0.9},
    "fixed_alpha": {"T": 4.0, "alpha": None},
    "almkd": ALM_DEFAULTS,
    "amal": ALM_DEFAULTS,
    "almkd_full": {**ALM_DEFAULTS, "schedule": "every_step", "full_steps": 1,
                   "full_val_batch": 128, "hypergrad": "jvp"},
}
