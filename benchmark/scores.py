"""Runs -> one score per (table cell, method row, seed), in percent, on common seeds.

A table cell is (dataset, noise, setup kind). ``ce`` runs (setup none) join every setup's
cell; ``fixed_alpha`` collapses per seed to the a with the best clean-validation accuracy
(best epoch for the primary metric, last epoch for the last-epoch one), smaller a on ties,
and only in seeds that have every a the cell has (else the choice would be made among fewer
candidates in some seeds); a method shows under its name unless a setup holds several
variants of it (then every cell of the setup shows it under its method ids, so one row means
one variant in every cell). Every statistic and the bold "best" of a column use the seeds
that all rows of the cell have, so no mean is compared with a mean over other seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = {"best": ("test_acc_best_val", "val_acc_best"), "last": ("test_acc_last", "val_acc_last")}
CELL = ["dataset", "noise_id", "setup"]
SCORE_COLUMNS = CELL + ["method", "seed", "row", "score", "alpha", "path"]


def base_method(row: str) -> str:
    """The method of a row label (``almkd`` for ``almkd-1a2b3c``)."""
    return row.split("-")[0]


def method_scores(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    test_col, val_col = METRICS[metric]
    ce = runs[runs["setup"] == "none"]
    others = runs[runs["setup"] != "none"]
    setups = sorted(set(others["setup"]))
    frame = pd.concat([others] + [ce.assign(setup=s) for s in setups], ignore_index=True)
    if "path" not in frame:
        frame = frame.assign(path="")
    if frame.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    variants = frame.groupby(["setup", "method"])["method_id"].transform("nunique")
    frame = frame.assign(row=np.where((variants > 1) & (frame["method"] != "fixed_alpha"),
                                      frame["method_id"], frame["method"]))
    fa = frame["method"] == "fixed_alpha"
    n_alphas = frame[fa].groupby(CELL)["method_id"].transform("nunique")
    has_all = frame[fa].groupby(CELL + ["seed"])["method_id"].transform("nunique") == n_alphas
    fa = fa & has_all.reindex(frame.index, fill_value=False)
    picked = (frame[fa].sort_values([val_col, "alpha"], ascending=[False, True], kind="stable")
              .drop_duplicates(CELL + ["seed"]))
    rest = frame[frame["method"] != "fixed_alpha"].assign(alpha=np.nan)
    out = pd.concat([rest, picked], ignore_index=True)
    out = out.assign(score=100.0 * out[test_col].astype(float),
                     alpha=out["alpha"].astype(float))
    return out[SCORE_COLUMNS].sort_values(CELL + ["row", "seed"], kind="stable").reset_index(
        drop=True)


def common_seeds(scores: pd.DataFrame) -> pd.DataFrame:
    """Only the seeds that every row of a cell has (per cell)."""
    if scores.empty:
        return scores
    rows_per_cell = scores.groupby(CELL)["row"].transform("nunique")
    rows_per_seed = scores.groupby(CELL + ["seed"])["row"].transform("nunique")
    return scores[rows_per_seed == rows_per_cell].reset_index(drop=True)


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """mean, std (ddof 1), n and the chosen fixed_alpha values per cell and row."""
    cols = CELL + ["row", "mean", "std", "n", "alphas"]
    if scores.empty:
        return pd.DataFrame(columns=cols)
    g = scores.groupby(CELL + ["row"])
    out = g["score"].agg(["mean", "std", "count"]).rename(columns={"count": "n"}).reset_index()
    alphas = (scores.dropna(subset=["alpha"]).sort_values("seed")
              .groupby(CELL + ["row"])["alpha"].agg(lambda a: ",".join(f"{v:g}" for v in a)))
    out = out.merge(alphas.rename("alphas").reset_index(), on=CELL + ["row"], how="left")
    out["alphas"] = out["alphas"].fillna("")
    return out[cols]
