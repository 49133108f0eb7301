"""Runs -> one score per (table cell, method row, seed), in percent, on common seeds.

A table cell is (dataset, noise, setup kind). ``ce`` runs (setup none) join the cells of the
setup kinds their own (dataset, noise) has (as completeness.py judges the cells), never a
setup kind that only another dataset or noise has (a column holding only ``ce``);
``fixed_alpha`` collapses per seed to the a with the best clean-validation accuracy (best
epoch for the primary metric, last epoch for the last-epoch one), smaller a on ties, and only
in seeds that have every a the cell has (else the choice would be made among fewer
candidates in some seeds). A method shows under its name unless the runs given (the whole
study) hold several variants of it (distinct resolved hyper-parameters, collect.py's
``hparams``; fixed_alpha's alphas are one row): then every row of it, in every setup, is
named by the hyper-parameters that differ among its variants, ``almkd (meta_every=5,
meta_start=5)``, so one row name means one variant everywhere. Every statistic and the bold
"best" of a column use the seeds that all rows of the cell have, so no mean is compared
with a mean over other seeds.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from benchmark.core.layout import teacher_labels_of
from methods.catalog import ALM_METHODS, selected_hparam

METRICS = {"best": ("test_acc_best_val", "val_acc_best"), "last": ("test_acc_last", "val_acc_last")}
CELL = ["dataset", "noise_id", "setup"]
SCORE_COLUMNS = CELL + ["method", "seed", "row", "score", "alpha", "path", "method_id",
                        "method_ids", "hparams"]
SUMMARY_COLUMNS = CELL + ["row", "mean", "std", "n", "alphas", "method_id", "hparams"]


def base_method(row: str) -> str:
    """The method of a row label or method id: ``almkd`` for ``almkd-1a2b3c`` and for
    ``almkd (meta_every=5, meta_start=5)``."""
    return row.split(" (")[0].split("-")[0]


def only_alm(rules) -> bool:
    """Whether every rule under test named (rows or method ids) is an ALM method."""
    return all(base_method(str(r)) in ALM_METHODS for r in rules)


def for_rules(text: str, rules) -> str:
    """A legend written for the ALM methods, as it stands when every rule under test is one;
    reworded for rules under test when others (the trust-rule zoo) are among them."""
    if only_alm(rules):
        return text
    for old, new in (("Each ALM method", "Each rule under test"),
                     ("each ALM method", "each rule under test"),
                     ("the ALM methods", "the rules under test"),
                     ("an ALM method", "a rule under test"),
                     ("the ALM method", "the rule"), ("ALM - baseline", "rule - baseline")):
        text = text.replace(old, new)
    return text


def table_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of every table cell (dataset, noise, setup kind): ``ce``'s (setup none) are
    repeated into each setup kind of their own (dataset, noise), and into no other."""
    others = runs[runs["setup"] != "none"]
    ce = runs[runs["setup"] == "none"].drop(columns="setup")
    kinds = others[CELL].drop_duplicates()
    return pd.concat([others, ce.merge(kinds, on=CELL[:2])], ignore_index=True)


def _variant(method: str, hparams: str) -> str:
    """What makes a run's variant of its method: its resolved hyper-parameters (compact
    sorted JSON), less fixed_alpha's alpha (its alphas are one row)."""
    hp = json.loads(hparams) if isinstance(hparams, str) and hparams else {}  # NaN: none
    key = selected_hparam(method)
    if key:
        hp.pop(key, None)
    return json.dumps(hp, sort_keys=True, separators=(",", ":"))


def _value(v, exact: bool = False) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int | float):
        return repr(v) if exact else f"{v:g}"
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def variant_names(runs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(method, variant) -> row name: the method's name when it has one variant in
    ``runs``, else the name with the hyper-parameters that differ among its variants, keys
    sorted, numbers formatted with ``:g`` (exactly where ``:g`` would merge two variants)."""
    hp = runs["hparams"] if "hparams" in runs else pd.Series("{}", index=runs.index)
    variants: dict[str, set] = {}
    for method, h in zip(runs["method"], hp, strict=True):
        variants.setdefault(method, set()).add(_variant(method, h))
    out = {}
    missing = object()
    for method, keys in variants.items():
        keys = sorted(keys)
        dicts = [json.loads(k) for k in keys]
        differ = sorted(k for k in set().union(*dicts)
                        if len({json.dumps(d.get(k, "<unset>"), sort_keys=True)
                                for d in dicts}) > 1)
        for exact in (False, True):
            names = [method if not differ else method + " (" + ", ".join(
                f"{k}={'unset' if d.get(k, missing) is missing else _value(d[k], exact)}"
                for k in differ) + ")" for d in dicts]
            if len(set(names)) == len(names):
                break
        out.update({(method, k): n for k, n in zip(keys, names, strict=True)})
    return out


def method_scores(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One score per (cell, row, seed): ``row`` the variant's name (variant_names, over all
    of ``runs``), ``method_id`` the run's, ``method_ids`` the row's candidates in the cell
    (fixed_alpha: every alpha's, ';'-joined), ``hparams`` the variant's."""
    test_col, val_col = METRICS[metric]
    if "hparams" not in runs:  # a frame without it: one variant per method
        runs = runs.assign(hparams="{}")
    names = variant_names(runs)
    frame = table_cells(runs)
    if "path" not in frame:
        frame = frame.assign(path="")
    if frame.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    variant = [_variant(m, h) for m, h in zip(frame["method"], frame["hparams"], strict=True)]
    frame = frame.assign(row=[names[(m, v)] for m, v in zip(frame["method"], variant,
                                                             strict=True)],
                         hparams=variant, method_ids=frame["method_id"])
    # the methods whose selected hyper-parameter's values are one row (fixed_alpha's alpha):
    # each seed keeps the value with the best validation accuracy; collect.py put it in
    # the ``alpha`` column
    fa = frame["method"].map(lambda m: selected_hparam(m) is not None).astype(bool)
    key = CELL + ["row"]
    candidates = (frame[fa].groupby(key)["method_id"]
                  .agg(lambda ids: ";".join(sorted(set(ids)))))
    n_alphas = frame[fa].groupby(key)["method_id"].transform("nunique")
    has_all = frame[fa].groupby(key + ["seed"])["method_id"].transform("nunique") == n_alphas
    fa = fa & has_all.reindex(frame.index, fill_value=False)
    picked = (frame[fa].sort_values([val_col, "alpha"], ascending=[False, True], kind="stable")
              .drop_duplicates(key + ["seed"]))
    picked = picked.drop(columns="method_ids").merge(
        candidates.rename("method_ids").reset_index(), on=key, how="left")
    rest = frame[~frame["method"].map(lambda m: selected_hparam(m) is not None)
                 .astype(bool)].assign(alpha=np.nan)
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
    """mean, std (ddof 1), n and the chosen fixed_alpha values per cell and row; the row's
    method ids in the cell (';'-joined; fixed_alpha: every alpha's) and its hyper-parameters
    (resolved, compact JSON; fixed_alpha's without the alpha)."""
    if scores.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    key = CELL + ["row"]
    g = scores.groupby(key)
    out = g["score"].agg(["mean", "std", "count"]).rename(columns={"count": "n"}).reset_index()
    alphas = (scores.dropna(subset=["alpha"]).sort_values("seed")
              .groupby(key)["alpha"].agg(lambda a: ",".join(f"{v:g}" for v in a)))
    out = out.merge(alphas.rename("alphas").reset_index(), on=key, how="left")
    out["alphas"] = out["alphas"].astype(object).fillna("")
    for col, source in (("method_id", "method_ids"), ("hparams", "hparams")):
        if source in scores:
            joined = g[source].agg(lambda v: ";".join(sorted({i for x in v
                                                              for i in str(x).split(";")})))
            out = out.merge(joined.rename(col).reset_index(), on=key, how="left")
        else:
            out[col] = ""
    return out[SUMMARY_COLUMNS]


GAIN_COLUMNS = CELL + ["teacher_labels", "row", "gain", "ci_half", "n", "baseline",
                       "baseline_mean"]


def gains_over_clean_budget(scores: pd.DataFrame) -> pd.DataFrame:
    """Per cell and rule under test (ALM methods and the zoo): its mean gain in points over
    the cell's strongest clean-budget baseline (a baseline that trains on the meta split's
    clean labels: ce_clean, ce_union, kd_union, kd_finetune, l2rw, mwnet), paired by seed,
    with the 95% t interval's half-width over seeds. The strongest is the one with the highest mean
    test score in the cell: chosen on the test numbers, it is the rules' hardest bar (the
    gain is a lower estimate), and it is named. ``teacher_labels``: noisy, or clean for the
    ``-cleanT`` setups. ``scores``: common-seed scores (common_seeds)."""
    from scipy import stats

    from methods.catalog import CATALOG, COMPARED_METHODS

    if scores.empty:
        return pd.DataFrame(columns=GAIN_COLUMNS)
    rows = []
    for cell, g in scores.groupby(CELL, sort=True):
        wide = g.pivot_table(index="seed", columns="row", values="score")
        budget = [r for r in wide if (e := CATALOG.get(base_method(r))) is not None
                  and e.uses_clean_labels and not e.compared]
        rules = [r for r in wide if base_method(r) in COMPARED_METHODS]
        if not budget or not rules:
            continue
        best = max(budget, key=lambda r: (wide[r].mean(), r))
        for r in rules:
            d = (wide[r] - wide[best]).dropna().to_numpy(float)
            half = (float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
                    if len(d) >= 2 else np.nan)
            rows.append({**dict(zip(CELL, cell, strict=True)),
                         "teacher_labels": teacher_labels_of(cell[2]),
                         "row": r, "gain": float(d.mean()) if len(d) else np.nan,
                         "ci_half": half, "n": len(d), "baseline": best,
                         "baseline_mean": float(wide[best].mean())})
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)
