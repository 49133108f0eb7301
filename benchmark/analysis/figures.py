"""Figures from results/ (matplotlib, PNG and PDF).

- accuracy against noise per method: one panel per dataset and setup, error bars = std over
  seeds;
- ALM-KD's learned teacher share of the weight for instances with clean versus noisy labels
  and with the teacher's top class agreeing or disagreeing with the given label (the
  authors' analysis), after the last refresh and across refreshes;
- the same shares on clean-label and noisy-label instances by what the teachers were trained
  on (noisy or clean labels), per method with 95% intervals over seeds;
- the weight against the teacher's probability of the given label (binned means);
  all three from per-run summaries (benchmark/analysis/alpha_summary.py), so that bundles
  without the per-instance weights draw them too;
- a critical-difference diagram per setup whose Friedman test rejected (average ranks over
  the setup's cells, bars join methods the Nemenyi post-hoc does not separate;
  scikit-posthocs draws it); none for a setup without a test or whose test did not reject.

The teacher share is sum_m w_m / sum_k w_k: a_i itself for almkd (weights sum to 1), and the
comparable number for amal, whose weights are independent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.analysis.tables import row_key
from benchmark.core.atomic import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, stem: Path, tight: bool = True) -> list[Path]:
    """PNG and PDF; ``tight=False`` for figures already laid out by ``tight_layout``
    (a tight bounding box draws the whole figure once more per format)."""
    out = []
    for ext in ("png", "pdf"):
        path = stem.with_suffix(f".{ext}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight" if tight else None)
        out.append(path)
    _plt().close(fig)
    return out


def _empty(plt, text: str):
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return fig


def accuracy_vs_noise(summary: pd.DataFrame, stem: Path, metric: str = "best") -> list[Path]:
    """x: noise rate; one line per method (colour) and noise type (marker and line style);
    ``summary`` in percent (scores.summarise)."""
    from benchmark.data.noise import NoiseSpec

    plt = _plt()
    panels = sorted({(d, s) for d, s in zip(summary["dataset"], summary["setup"], strict=True)})
    if not panels:
        return save(_empty(plt, "no finished runs"), stem)
    frame = summary.copy()
    specs = {n: NoiseSpec.parse(n) for n in set(frame["noise_id"])}
    frame["kind"] = [specs[n].id.split("_")[0] for n in frame["noise_id"]]
    frame["x"] = [specs[n].rate if specs[n].rate is not None else np.nan
                  for n in frame["noise_id"]]
    human = frame["x"].isna()  # human noise has no rate: placed by its realised rate elsewhere
    frame.loc[human, "x"] = 1.0
    methods = sorted(set(frame["row"]), key=row_key)
    kinds = sorted(set(frame["kind"]))
    markers, styles = "osD^v<>", ["-", "--", ":", "-."]
    cols = min(3, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (dataset, setup) in zip(axes.flat, panels, strict=False):
        g = frame[(frame["dataset"] == dataset) & (frame["setup"] == setup)]
        for i, method in enumerate(methods):
            for k, kind in enumerate(kinds):
                r = g[(g["row"] == method) & (g["kind"] == kind)].sort_values("x")
                if r.empty:
                    continue
                ax.errorbar(r["x"] + (i - len(methods) / 2) * 0.004, r["mean"],
                            yerr=r["std"].fillna(0), color=f"C{i}",
                            marker=markers[k % len(markers)], ls=styles[k % len(styles)],
                            capsize=3, ms=4)
        ax.set_xlim(g["x"].min() - 0.05, g["x"].max() + 0.05)
        ax.set_title(f"{dataset}, {setup}", fontsize=10)
        ax.set_xlabel("noise rate (human noise at 1.0)" if human.any() else "noise rate")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=f"C{i}", label=m) for i, m in enumerate(methods)]
    handles += [Line2D([], [], color="grey", marker=markers[k % len(markers)],
                       ls=styles[k % len(styles)], label=kind) for k, kind in enumerate(kinds)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"Test accuracy ({'best-validation' if metric == 'best' else 'last'} epoch), "
                 "mean ± std over seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return save(fig, stem, tight=False)


def _seed_ci(values: np.ndarray) -> float:
    """Half-width of a 95% t interval over seeds (0 for one seed: no bar)."""
    from scipy import stats

    n = len(values)
    return 0.0 if n < 2 else float(stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))


def alm_weights(refreshes: pd.DataFrame, stem: Path) -> list[Path]:
    """Top: per dataset and ALM method, each run's mean teacher share over its clean-label,
    noisy-label, teacher-agrees and teacher-disagrees instances after the last refresh
    (boxes over runs: noise settings, setups and seeds). Bottom: the same means across
    refreshes."""
    plt = _plt()
    if refreshes.empty:
        return save(_empty(plt, "no ALM runs with refreshes"), stem)
    groups = sorted({(d, m) for d, m in zip(refreshes["dataset"], refreshes["method"],
                                            strict=True)})
    fig, axes = plt.subplots(2, len(groups), figsize=(4.2 * len(groups), 6.4), squeeze=False)
    for j, (dataset, method) in enumerate(groups):
        g = refreshes[(refreshes["dataset"] == dataset) & (refreshes["method"] == method)]
        last = g[g["last"]]
        ax = axes[0, j]
        groups_ = {"clean label": last["share_clean"], "noisy label": last["share_noisy"],
                   "teacher agrees": last["share_agree"],
                   "teacher disagrees": last["share_disagree"]}
        groups_ = {k: v.dropna().to_numpy(dtype=float) for k, v in groups_.items()}
        names = [k for k, v in groups_.items() if len(v)]
        ax.boxplot([groups_[k] for k in names], showfliers=False, showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
        ax.set_title(f"{dataset}, {method}: after the last refresh\n(boxes over runs of each "
                     "run's mean; triangles: means)", fontsize=8)
        ax.set_ylabel("teacher share of the weight")
        ax = axes[1, j]
        if g["epoch"].nunique() < 2:  # one refresh: no evolution to draw
            ax.axis("off")
            ax.text(0.5, 0.5, f"one refresh (epoch {int(g['epoch'].iloc[0])}):\nno evolution "
                    "across refreshes", ha="center", va="center", fontsize=8)
            continue
        evo = g.groupby("epoch")[["share_clean", "share_noisy"]].mean()
        for col, label, color in (("share_clean", "clean label", "C0"),
                                  ("share_noisy", "noisy label", "C3")):
            ax.plot(evo.index, evo[col], marker="o", label=label, color=color)
        ax.set_xlabel("epoch of refresh")
        ax.set_ylabel("mean teacher share")
        ax.set_title(f"{dataset}, {method}: across refreshes (mean over runs)", fontsize=8)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save(fig, stem)


def alm_weight_by_teacher_labels(refreshes: pd.DataFrame, stem: Path) -> list[Path]:
    """The mechanism: per dataset (rows) and what the teachers were trained on (columns),
    each ALM method's teacher share on clean-label and on noisy-label instances after the
    last refresh; bars are means over seeds (each seed: its runs' mean over noise settings
    and setups), error bars 95% t intervals over seeds."""
    plt = _plt()
    last = refreshes[refreshes["last"]] if not refreshes.empty else refreshes
    if last.empty:
        return save(_empty(plt, "no ALM runs with refreshes"), stem)
    datasets = sorted(set(last["dataset"]))
    conditions = [c for c in ("noisy", "clean") if c in set(last["teacher_labels"])]
    methods = sorted(set(last["method"]), key=row_key)
    fig, axes = plt.subplots(len(datasets), len(conditions), squeeze=False,
                             figsize=(1.0 + 1.3 * len(methods) * len(conditions),
                                     3.2 * len(datasets)))
    for i, dataset in enumerate(datasets):
        for j, cond in enumerate(conditions):
            ax = axes[i, j]
            g = last[(last["dataset"] == dataset) & (last["teacher_labels"] == cond)]
            if g.empty:
                ax.axis("off")
                continue
            x = np.arange(len(methods))
            for k, (col, label, color) in enumerate((("share_clean", "clean label", "C0"),
                                                     ("share_noisy", "noisy label", "C3"))):
                per_seed = g.groupby(["method", "seed"])[col].mean()
                means = [per_seed[m].mean() if m in per_seed else np.nan for m in methods]
                errs = [_seed_ci(per_seed[m].to_numpy()) if m in per_seed else 0
                        for m in methods]
                ax.bar(x + (k - 0.5) * 0.38, means, 0.38, yerr=errs, capsize=3, label=label,
                       color=color)
            ax.set_xticks(x, methods, fontsize=8)
            ax.set_ylim(0, 1)
            ax.set_ylabel("teacher share of the weight")
            ax.set_title(f"{dataset}: teachers trained on {cond} labels", fontsize=9)
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save(fig, stem)


def alm_weight_vs_teacher(bins: pd.DataFrame, stem: Path) -> list[Path]:
    """The teacher share after the last refresh against the teacher's probability of the
    given label: per dataset and method, the mean over all instances in each probability
    bin (runs pooled exactly from their bin sums and counts)."""
    plt = _plt()
    if bins.empty or not bins["count"].sum():
        return save(_empty(plt, "no ALM runs with teacher diagnostics"), stem)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (dataset, method), g in bins.groupby(["dataset", "method"]):
        pooled = g.groupby("centre")[["share_sum", "count"]].sum()
        means = pooled["share_sum"] / pooled["count"].where(pooled["count"] > 0)
        ax.plot(pooled.index, means.values, marker="o", label=f"{dataset}, {method}")
    ax.set_title("ALM teacher share against the teacher's probability of the given label\n"
                 "(after the last refresh; binned means over instances, noise settings, "
                 "setups and seeds)", fontsize=8)
    ax.set_xlabel("teacher's probability of the given label")
    ax.set_ylabel("teacher share of the weight (binned mean)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, stem)


def critical_difference(avg_ranks: pd.DataFrame, nemenyi: pd.DataFrame | None, test: dict,
                        stem: Path, title: str) -> list[Path]:
    """Average ranks (1 = best) with bars joining methods the Nemenyi post-hoc does not
    separate at 0.05. Drawn only after a Friedman test that rejected (ranks.py: the post-hoc
    exists only then, Demšar 2006); otherwise no figure at all (an empty list)."""
    if nemenyi is None or not test:
        return []
    plt = _plt()
    import scikit_posthocs as sp

    ranks = avg_ranks.set_index("row")["avg_rank"]
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.3 * len(ranks)))
    sp.critical_difference_diagram(ranks, nemenyi, ax=ax)
    ax.set_title(f"{title}\nFriedman over {test['blocks']} cells: chi2 = "
                 f"{test['statistic']:.2f}, p = {test['p']:.3g} ({test['p_method']}); "
                 "bars: Nemenyi p >= 0.05", fontsize=9)
    return save(fig, stem)


def gain_over_clean_budget(gains: pd.DataFrame, stem: Path) -> list[Path]:
    """The figure a reader looks at first: each rule's gain in points over the strongest
    clean-budget baseline of each cell (scores.gains_over_clean_budget), one heatmap panel
    per teacher condition (columns: the cells, rows: the rules; the colour saturates at the
    95th percentile of the absolute gains, so one far-off cell does not wash out the rest),
    and beside them each rule's mean over the cells of a condition with a 95% t interval
    over cells (the across-task view; cells of one dataset are not independent tasks)."""
    plt = _plt()
    if gains.empty:
        return save(_empty(plt, "no cell has a rule under test and a clean-budget baseline"),
                    stem)
    rules = sorted(set(gains["row"]), key=row_key)
    conditions = [c for c in ("noisy", "clean") if (gains["teacher_labels"] == c).any()]
    absolute = np.abs(gains["gain"].to_numpy(float))
    lim = float(np.nanpercentile(absolute, 95)) if np.isfinite(absolute).any() else 1.0
    lim = lim if lim > 0 else 1.0
    cells_of = {c: sorted({(d, n, s) for d, n, s in zip(
        *(gains.loc[gains["teacher_labels"] == c, k] for k in ("dataset", "noise_id", "setup")),
        strict=True)}) for c in conditions}
    widths = [max(2, len(cells_of[c])) for c in conditions] + [8]
    fig, axes = plt.subplots(1, len(conditions) + 1, squeeze=False, layout="constrained",
                             figsize=(0.3 * sum(widths) + 3, 0.3 * len(rules) + 3.2),
                             gridspec_kw={"width_ratios": widths})
    image = None
    for k, (ax, cond) in enumerate(zip(axes[0], conditions, strict=False)):
        g = gains[gains["teacher_labels"] == cond].set_index(["dataset", "noise_id", "setup",
                                                               "row"])["gain"]
        cells = cells_of[cond]
        grid = np.array([[g.get((*c, r), np.nan) for c in cells] for r in rules], float)
        image = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xticks(range(len(cells)), [f"{d} {n} {s.removesuffix('-cleanT')}"
                                          for d, n, s in cells], rotation=90, fontsize=6)
        ax.set_yticks(range(len(rules)), rules if k == 0 else [], fontsize=7)
        ax.set_title(f"{cond}-label teachers", fontsize=9)
    fig.colorbar(image, ax=list(axes[0, :-1]), location="bottom", shrink=0.5, extend="both",
                 label=f"gain over the cell's strongest clean-budget baseline (points; "
                       f"saturates at +-{lim:.1f})")
    ax = axes[0, -1]
    for k, cond in enumerate(conditions):
        g = gains[gains["teacher_labels"] == cond]
        labelled = False
        for i, r in enumerate(rules):
            v = g[g["row"] == r]["gain"].dropna().to_numpy(float)
            if not len(v):
                continue
            ax.errorbar(v.mean(), i + (k - 0.5) * 0.3, xerr=_seed_ci(v), fmt="o",
                        color="C3" if cond == "noisy" else "C0", ms=4, capsize=2,
                        label=None if labelled else f"{cond}-label teachers")
            labelled = True
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(rules)), rules, fontsize=7)
    ax.set_ylim(len(rules) - 0.5, -0.5)
    ax.set_xlabel("mean gain over the cells (points), 95% t interval over cells", fontsize=8)
    ax.set_title("across the cells", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.suptitle("Test-accuracy gain of each rule over the strongest clean-budget baseline "
                 "of each cell\n(the baseline with the best mean test score: the hardest bar)",
                 fontsize=10)
    return save(fig, stem)
