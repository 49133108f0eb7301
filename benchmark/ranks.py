"""Average ranks, the Friedman test and the Nemenyi post-hoc, per setup.

The blocks are the setup's (dataset, noise) cells only. Pooling setups into one test would
copy ``ce``'s numbers into every setup's block, making blocks dependent (a simulation of the
old pooled test rejected a true null 15% of the time at alpha 0.05). Each block ranks the
rows' common-seed means (1 = best); rows missing from a block drop the block. The Nemenyi
post-hoc (scikit-posthocs) gives the pairwise p-values a critical-difference diagram draws.
"""

from __future__ import annotations

import warnings

import pandas as pd
from scipy import stats

from .scores import CELL


def setup_ranks(summary: pd.DataFrame) -> tuple[pd.DataFrame, dict, pd.DataFrame | None]:
    """(average ranks, Friedman result, Nemenyi p-value matrix) for one setup's summary."""
    wide = summary.pivot_table(index=CELL[:2], columns="row", values="mean").dropna(axis=0)
    if wide.empty:
        return pd.DataFrame(columns=["row", "avg_rank", "blocks"]), {}, None
    avg = wide.rank(axis=1, ascending=False).mean().sort_values()
    avg = avg.rename("avg_rank").rename_axis("row").reset_index()
    avg["blocks"] = len(wide)
    if wide.shape[1] < 3 or wide.shape[0] < 2:
        return avg, {}, None
    res = stats.friedmanchisquare(*[wide[c].to_numpy() for c in wide.columns])
    test = {"statistic": float(res.statistic), "p": float(res.pvalue),
            "blocks": int(wide.shape[0]), "methods": int(wide.shape[1])}
    import scikit_posthocs as sp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nemenyi = sp.posthoc_nemenyi_friedman(wide.reset_index(drop=True))
    return avg, test, nemenyi
