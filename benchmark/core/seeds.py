"""Seeds per role: every random choice in the suite draws from a generator seeded by
``derive_seed(run_seed, role, ...)``. Deriving seeds by a stable hash (not by ``seed + k``)
keeps roles independent: the noise of seed 1 is not the split of seed 0, and a ``self``
teacher does not start from the ``ce`` student's initial weights even though both have the
same architecture."""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, role: str, *parts: object) -> int:
    """A 63-bit seed for one role of one run, stable across Python versions and machines."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    key = "\x1f".join([str(int(seed)), role, *map(str, parts)])
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def rng_for(seed: int, role: str, *parts: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, role, *parts))
