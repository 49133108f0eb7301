"""Average ranks, the Friedman test and the Nemenyi post-hoc, per setup.

The blocks are the setup's (dataset, noise) cells only. Pooling setups into one test would
copy ``ce``'s numbers into every setup's block, making blocks dependent (a simulation of the
old pooled test rejected a true null 15% of the time at alpha 0.05). Each block ranks the
rows' common-seed means (1 = best); rows missing from a block drop the block.

The Friedman test is a permutation test (scipy.stats.permutation_test, ``samples``: the k
methods' means are permuted within each block, Friedman's null) of Friedman's chi-square
from within-block ranks (ties: average ranks, scipy's tie correction), never the chi-square
approximation, which is far off with few blocks (2 blocks, 6 methods ranked alike: 0.075
where the exact p is 1/720). Exact over all (k!)^b within-block permutations when there are
at most ``EXACT_MAX``; else Monte Carlo with ``MONTE_CARLO`` resamples from a generator
seeded from the setup's name, so a report is reproducible. No test below 2 blocks or 3
methods. As Demšar (2006) has it, the Nemenyi post-hoc (scikit-posthocs), and with it the
critical-difference diagram, follows only a Friedman test that rejected at ``ALPHA``.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.analysis.scores import CELL

ALPHA = 0.05
EXACT_MAX = 100_000  # within-block permutations up to which the p is exact
MONTE_CARLO = 9999
MIN_BLOCKS, MIN_METHODS = 2, 3
# scipy >= 1.15 names the generator ``rng``; earlier versions (pyproject allows 1.10)
# ``random_state``
_RNG = "rng" if "rng" in inspect.signature(stats.permutation_test).parameters else (
    "random_state")


def friedman_chi2(values: np.ndarray) -> np.ndarray:
    """Friedman's chi-square of ``values`` [..., b blocks, k methods] (vectorised over the
    leading axes): ranks within each block (average ranks for ties), the tie-corrected
    statistic scipy.stats.friedmanchisquare computes; 0 where every block is all ties."""
    values = np.asarray(values, dtype=float)
    b, k = values.shape[-2:]
    r = stats.rankdata(values, axis=-1)
    rank_sums = r.sum(-2)
    chi2 = 12.0 / (b * k * (k + 1)) * (rank_sums ** 2).sum(-1) - 3.0 * b * (k + 1)
    # ties: sum over tie groups of t^3 - t = sum over elements of (its group's size)^2 - 1
    group = (values[..., :, None] == values[..., None, :]).sum(-1)
    c = 1.0 - (group ** 2 - 1).sum((-2, -1)) / (b * k * (k * k - 1))
    return np.where(c > 0, chi2 / np.where(c > 0, c, 1.0), 0.0)


def _seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"friedman:{name}".encode()).digest()[:8], "little")


def friedman_test(wide: pd.DataFrame, name: str, exact_max: int = EXACT_MAX) -> dict:
    """The permutation Friedman test of ``wide`` (blocks x methods, no NaN): statistic, p,
    p_method ('exact' or 'Monte Carlo, 9999 resamples'), blocks, methods."""
    x = wide.to_numpy(dtype=float)
    b, k = x.shape
    n_perm = math.factorial(k) ** b
    exact = n_perm <= exact_max

    def statistic(*samples, axis=-1):
        return friedman_chi2(np.stack([np.moveaxis(s, axis, -1) for s in samples], -1))

    res = stats.permutation_test(
        tuple(x.T), statistic, permutation_type="samples", vectorized=True,
        n_resamples=n_perm if exact else MONTE_CARLO, alternative="greater",
        **{_RNG: np.random.default_rng(_seed(name))})
    return {"statistic": float(res.statistic), "p": float(res.pvalue),
            "p_method": "exact" if exact else f"Monte Carlo, {MONTE_CARLO} resamples",
            "blocks": int(b), "methods": int(k)}


def setup_ranks(summary: pd.DataFrame, name: str | None = None,
                ) -> tuple[pd.DataFrame, dict, pd.DataFrame | None]:
    """(average ranks, Friedman result, Nemenyi p-value matrix) for one setup's summary;
    the result is {} when no test was made (fewer than 2 blocks or 3 methods), the matrix
    None unless the test rejected at ALPHA. ``name`` seeds a Monte Carlo test (default:
    the summary's setup)."""
    if name is None:
        name = ",".join(sorted(set(summary["setup"]))) if "setup" in summary else ""
    wide = summary.pivot_table(index=CELL[:2], columns="row", values="mean").dropna(axis=0)
    if wide.empty:
        return pd.DataFrame(columns=["row", "avg_rank", "blocks"]), {}, None
    avg = wide.rank(axis=1, ascending=False).mean().sort_values()
    avg = avg.rename("avg_rank").rename_axis("row").reset_index()
    avg["blocks"] = len(wide)
    if wide.shape[1] < MIN_METHODS or wide.shape[0] < MIN_BLOCKS:
        return avg, {}, None
    test = friedman_test(wide, name)
    if not test["p"] < ALPHA:
        return avg, test, None
    import scikit_posthocs as sp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nemenyi = sp.posthoc_nemenyi_friedman(wide.reset_index(drop=True))
    return avg, test, nemenyi
