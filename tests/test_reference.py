"""The reference study (workflows/config/reference.yaml) and its CI slice.

The slice is only a check of the reference if every one of its runs is a run of the
reference with the same spec: same data split, noise, seed, architectures, training,
method, hyper-parameters and teachers. These tests hold the two configs to that.
"""

import json
import re
from pathlib import Path

import yaml

from benchmark.plan import grid
from tests.conftest import REPO_ROOT

CONFIGS = REPO_ROOT / "workflows" / "config"


def _plan(name):
    return grid.plan(yaml.safe_load((CONFIGS / f"{name}.yaml").read_text()))


def _identity(run: grid.RunSpec, root: str) -> tuple:
    """Everything of a run that its spec is made from, with paths relative to the study."""
    rel = str(Path(run.out).relative_to(root))
    teachers = tuple(str(Path(t).relative_to(root)) for t in run.teachers)
    labels = str(Path(run.labels).relative_to(root))
    return json.dumps([run.kind, rel, run.dataset, labels, run.seed, run.arch,
                       dict(run.train), run.method, dict(run.hparams), teachers,
                       run.teacher_labels, run.teacher_checkpoint], sort_keys=True)


def test_every_slice_run_is_a_reference_run_with_its_spec():
    ref, sl = _plan("reference"), _plan("reference_slice")
    ref_ids = {_identity(r, ref.root) for r in ref.teacher_runs + ref.student_runs}
    slice_ids = [_identity(r, sl.root) for r in sl.teacher_runs + sl.student_runs]
    missing = [json.loads(i)[1] for i in slice_ids if i not in ref_ids]
    assert not missing, missing[:5]
    ref_cfg, sl_cfg = (yaml.safe_load((CONFIGS / f"{n}.yaml").read_text())
                       for n in ("reference", "reference_slice"))
    for d in {r.dataset for r in sl.student_runs}:  # labels files: split and subset too
        assert grid.val_fraction_of(sl_cfg, d) == grid.val_fraction_of(ref_cfg, d)
        assert grid.labels_split_args(sl_cfg, d) == grid.labels_split_args(ref_cfg, d)


def test_the_slice_covers_what_issue_16_asks():
    """The authors' synthetic setting with all its methods, one Fashion-MNIST cell with all
    of its methods; two seeds (issue 16 asked for three: CI time, docs/results.md)."""
    ref, sl = _plan("reference"), _plan("reference_slice")
    for dataset in ("synthetic", "fashion_mnist"):
        ref_methods = {r.method for r in ref.student_runs if r.dataset == dataset}
        assert {r.method for r in sl.student_runs if r.dataset == dataset} == ref_methods
    fm_cells = {(Path(r.labels).parent.name, Path(r.out).parts[-3]) for r in sl.student_runs
                if r.dataset == "fashion_mnist" and r.teachers}  # ce, ce_clean, ce_union: none
    assert len(fm_cells) == 1
    assert {r.seed for r in sl.student_runs} == {0, 1}  # two shared seeds: paired compare
    syn = [r for r in ref.student_runs if r.dataset == "synthetic"]
    assert {"-authors" in r.out for r in syn} == {True}
    assert {r.teacher_labels for r in syn if r.method != "ce"} == {"clean"}


BUNDLE = REPO_ROOT / "reference" / "reference.tar.gz"
RESULTS_PAGE = REPO_ROOT / "docs" / "results.md"


def _documents() -> list[Path]:
    """Where copies of report tables may live: the README and every page under docs/."""
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def _reference_blocks() -> dict[tuple[str, str], str]:
    """The documents' copies of reference tables, by (document, table): ``<!-- reference:
    tables/NAME -->`` then the file's text, then ``<!-- /reference -->``."""
    return {(doc.name, m[1]): m[2]
            for doc in _documents()
            for m in re.finditer(
                r"<!-- reference: (tables/[\w.-]+) -->\n(.*?)<!-- /reference -->",
                doc.read_text(), re.S)}


def test_every_table_block_is_closed():
    """A block whose markers were edited would drop out of the byte-for-byte check: every
    opening marker has its closing one, and no closing marker stands alone."""
    for doc in _documents():
        text = doc.read_text()
        for kind in ("reference", "default"):
            opened = len(re.findall(rf"<!-- {kind}: tables/[\w.-]+ -->\n", text))
            closed = len(re.findall(rf"^<!-- /{kind} -->$", text, re.M))
            blocks = len(re.findall(
                rf"<!-- {kind}: tables/[\w.-]+ -->\n.*?<!-- /{kind} -->", text, re.S))
            assert opened == closed == blocks, (doc.name, kind, opened, closed, blocks)
            starts = len(re.findall(rf"^<!-- {kind}:", text, re.M))
            assert starts == opened, (doc.name, kind, "a malformed opening marker")


def test_the_committed_bundle_verifies_and_says_how_it_was_run():
    from benchmark.exchange import bundle

    assert BUNDLE.stat().st_size <= 10 * 2**20  # issue 16: at most 10 MB
    c = bundle.verify(BUNDLE)
    assert (c["study"], c["runs"]) == ("reference", len(_plan("reference").student_runs))
    assert c["teachers"] == len(_plan("reference").teacher_runs)
    trained = c["trained_by"]
    assert trained and all("--configfile workflows/config/reference.yaml" in e["command"]
                           for e in trained)
    # every run was trained by a recorded invocation, but for the few an invocation killed
    # before it could write its record trained (2 of 1,184 in the committed bundle)
    total = c["runs"] + c["teachers"]
    assert total - 5 <= sum(e["trained_now"] for e in trained) <= total
    # issue 16 asked for 75 minutes; the clean-budget methods (issue 25) made it 60 min for
    # the final invocation plus the teachers of an earlier one (docs/results.md)
    assert sum(e["wall_time_s"] for e in trained) <= 100 * 60
    assert all(e["git"]["commit"] and not e["git"]["dirty"] for e in trained)


def test_the_reference_platform_is_a_fingerprint_ci_compares_with():
    """.ci/run's --platform file: a fingerprint of an x86 CPU machine with the torch the
    reference was trained with (what decides whether CI can ask for bit-identity)."""
    import tarfile

    from benchmark.exchange import fingerprint as arithmetic

    fp = arithmetic.read(REPO_ROOT / "reference" / "platform.json")
    assert fp["machine"] == "x86_64" and fp["cpu_capability"] and fp["cpu_vendor"]
    with tarfile.open(BUNDLE) as tar:
        member = next(m for m in tar if m.name.endswith("/seed0/metrics.json"))
        metrics = json.loads(tar.extractfile(member).read())
    assert metrics["provenance"]["versions"]["torch"] == fp["torch"]
    assert "reference/platform.json" in (REPO_ROOT / ".ci" / "run").read_text()


def test_importing_the_bundle_rebuilds_the_readme_tables_byte_for_byte(tmp_path):
    """docs/results.md: the one command (import, then report) rebuilds every table, and the
    documents' copies (all on that page) are those files byte for byte."""
    from benchmark.analysis.report import write_report
    from benchmark.exchange import bundle

    results = tmp_path / "results" / "reference"
    bundle.import_bundle(BUNDLE, results)
    write_report(results, figures=False)
    blocks = _reference_blocks()
    assert {doc for doc, _ in blocks} == {RESULTS_PAGE.name}
    assert {"tables/single_best.md", "tables/moderators.md",
            "tables/alpha.md"} <= {name for _, name in blocks}
    for (doc, name), text in blocks.items():
        assert (results / name).read_text() == text, f"{doc}: {name}"
