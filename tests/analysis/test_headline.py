"""The headline table (benchmark/analysis/headline.py) and the method-id columns of verdicts.csv and
moderators.csv: a written results tree with both teacher conditions goes through
`noisykd report`; every headline cell must be the verdict row (or the teacher-labels
moderator row) of the CSVs, number for number and label for label, and every CSV row must
name the method ids of the runs it pools."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from benchmark.analysis import headline
from benchmark.cli import main
from benchmark.core.layout import setup_kind
from tests.simulate import run_row, write_plan, write_tree

NOISES = ("symmetric_0.20", "symmetric_0.40", "pairflip_0.20", "pairflip_0.40")
SETUPS = ("single-mlp_8", "single-mlp_8-cleanT")
# (method, method id, the ALM gain over kd with noisy- and with clean-label teachers)
METHODS = (("ce", "ce"), ("kd", "kd"), ("almkd", "almkd-abc123"), ("ce_clean", "ce_clean"))
GAIN = {"single-mlp_8": 3.0, "single-mlp_8-cleanT": 0.0}


def _tree(tmp_path, seeds=5):
    rng = np.random.default_rng(7)
    rows = []
    for noise in NOISES:
        for s in range(seeds):
            shared = rng.normal(0, 2)
            for sid in SETUPS:
                for method, mid in METHODS:
                    if method in ("ce", "ce_clean") and sid != SETUPS[0]:
                        continue  # teacher-free: one run per (cell, seed)
                    setup_id = "none" if method in ("ce", "ce_clean") else sid
                    gain = {"almkd": GAIN[sid], "ce_clean": 1.0}.get(method, 0.0)
                    acc = (70 + shared + gain + rng.normal(0, 0.5)) / 100
                    rows.append(run_row("synthetic", noise, setup_id, method, mid, None, s, acc,
                                        acc, setup=setup_kind(setup_id),
                                        hparams=json.dumps({"meta_lr": 7.0}
                                                           if method == "almkd" else {})))
    runs = pd.DataFrame(rows)
    results = tmp_path / "results"
    write_tree(results, runs, plan=False)
    write_plan(results, list(runs["path"]), alm=("almkd",), baselines=("kd", "ce", "ce_clean"))
    assert main(["report", "--results", str(results), "--no-figures"]) == 0
    return results / "tables"


CELL = re.compile(r"([+-]\d+\.\d\d) \[([+-]\d+\.\d\d), ([+-]\d+\.\d\d)\] (.+)")


def _parse(md: str) -> dict:
    """{(alm, baseline, column): (estimate, low, high, label)} of headline.md."""
    out, alm, header = {}, None, None
    for line in md.splitlines():
        if line.startswith("## "):
            alm, header = line[3:], None
        elif line.startswith("|") and not set(line) <= set("|-: "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:
                header = cells
                continue
            for col, text in zip(header[1:], cells[1:], strict=True):
                m = CELL.fullmatch(text)
                assert m, text
                out[(alm, cells[0], col)] = (float(m[1]), float(m[2]), float(m[3]), m[4])
    return out


def test_every_headline_cell_is_its_verdict_or_moderator_row(tmp_path):
    tdir = _tree(tmp_path)
    got = _parse((tdir / "headline.md").read_text())
    v = pd.read_csv(tdir / "verdicts.csv")
    v = v[(v["metric"] == "best") & (v["scope"] == "in_these_cells")]
    mod = pd.read_csv(tdir / "moderators.csv")
    mod = mod[(mod["metric"] == "best") & (mod["scope"] == "in_these_cells")
              & (mod["factor"] == "teacher_labels")]
    want = {}
    for r in v.itertuples():
        want[("almkd", r.baseline, r.setup)] = r
    for r in mod.itertuples():
        want[("almkd", r.baseline, headline.MODERATOR_COLUMN)] = r
    assert set(got) == set(want) and len(got) == 3 * 3  # 3 baselines x (2 setups + moderator)
    for key, (est, lo, hi, lab) in got.items():
        r = want[key]
        assert (est, lo, hi) == pytest.approx((r.mean_diff, r.ci_low, r.ci_high), abs=0.006)
        assert lab == r.verdict, key
    # the truth: almkd +3 over kd with noisy-label teachers, 0 with clean ones
    assert got[("almkd", "kd", "single")][3] == "better"
    assert got[("almkd", "kd", "single-cleanT")][3] == "equivalent"
    assert got[("almkd", "kd", headline.MODERATOR_COLUMN)][3] == "better"
    # rows in the declared order of the baselines
    md = (tdir / "headline.md").read_text()
    assert md.index("| kd ") < md.index("| ce ") < md.index("| ce_clean ")
    assert "Across tasks (cells as units): " in md


def test_the_csvs_name_the_method_ids_and_hparams_of_each_side(tmp_path):
    tdir = _tree(tmp_path)
    for name in ("verdicts.csv", "moderators.csv"):
        t = pd.read_csv(tdir / name, keep_default_na=False)
        assert set(t["alm_method_id"]) == {"almkd-abc123"}, name
        assert dict(zip(t["baseline"], t["baseline_method_id"], strict=True)) == {
            "kd": "kd", "ce": "ce", "ce_clean": "ce_clean"}, name
        hp = {json.loads(h)["meta_lr"] for h in t["alm_hparams"]}
        assert hp == {7.0}, name
        assert (t["baseline_hparams"] != "").all(), name


def test_a_not_testable_row_says_what_it_would_need():
    row = pd.DataFrame([{"mean_diff": 1.234, "ci_low": -0.5, "ci_high": 2.0,
                         "verdict": "not testable", "cells_needed": float("nan"),
                         "seeds_needed": 4.0}])
    assert headline._cell(next(row.itertuples())) == (
        "+1.23 [-0.50, +2.00] not testable (needs 4 seeds per cell)")
    row = row.assign(seeds_needed=float("nan"), cells_needed=10.0)
    assert headline._cell(next(row.itertuples())).endswith("not testable (needs 10 cells)")
