"""Rewrite the documents' copies of report tables (README.md and every docs/*.md page): the
reference study's from the committed bundle, the main job's (the default grid) from
results/default.

    python scripts/readme_reference_tables.py [--check] [--only reference|default]
                                             [--platform FINGERPRINT]

``<!-- reference: tables/NAME -->...<!-- /reference -->`` blocks (docs/results.md): imports
reference/reference.tar.gz into a scratch folder, runs the report (no figures) and puts that
file's text in the block (tests/test_reference.py holds the pages to exactly this).
``<!-- default: tables/NAME -->...<!-- /default -->`` blocks (the README's front page): the
file as the last ``snakemake --cores all`` wrote it under results/default/tables/ (the main
job must have finished: every planned run, else an error). --check only says which blocks
differ (exit 1 when any does). --platform (with --check, default blocks): the default grid's
numbers are bit-identical only on a machine with the same arithmetic as the one that wrote
the README (benchmark/exchange/fingerprint.py); on another, the check says so and passes.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- (reference|default): (tables/[\w.-]+) -->\n)(.*?)(<!-- /\2 -->)",
                   re.S)


def documents() -> list[Path]:
    """The files that may hold table blocks: the README, then every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def default_tables() -> Path:
    from benchmark.analysis import completeness
    from benchmark.analysis.collect import collect_runs

    results = ROOT / "results" / "default"
    if not (results / "tables").is_dir():
        sys.exit(f"{results}/tables: no tables; run the main job (snakemake --cores all)")
    comp = completeness.check(results, collect_runs(results))
    if comp.problems():
        sys.exit(f"{results}: not the finished main job: " + "; ".join(comp.problems()))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--only", choices=["reference", "default"])
    parser.add_argument("--platform", type=Path, metavar="FINGERPRINT")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmark.analysis.report import write_report
    from benchmark.exchange import bundle

    texts = {path: path.read_text() for path in documents()}
    kinds = {m[2] for text in texts.values() for m in BLOCK.finditer(text)}
    kinds &= {args.only} if args.only else {"reference", "default"}
    if args.platform is not None and "default" in kinds:
        from benchmark.exchange import fingerprint as arithmetic

        differ = arithmetic.differences(arithmetic.read(args.platform),
                                        arithmetic.fingerprint())
        if differ:
            print(f"this machine's arithmetic differs from {args.platform} "
                  f"({'; '.join(differ)}): the default-grid blocks are not compared")
            kinds.discard("default")
    changed = []
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        if "reference" in kinds:
            roots["reference"] = Path(tmp) / "results" / "reference"
            bundle.import_bundle(ROOT / "reference" / "reference.tar.gz", roots["reference"])
            write_report(roots["reference"], figures=False)
        if "default" in kinds:
            roots["default"] = default_tables()

        new_texts = {}
        for path, text in texts.items():
            def fill(m, path=path):
                if m[2] not in roots:
                    return m[0]
                new = (roots[m[2]] / m[3]).read_text()
                if new != m[4]:
                    changed.append(f"{path.relative_to(ROOT)}: {m[2]} {m[3]}")
                return m[1] + new + m[5]

            new_texts[path] = BLOCK.sub(fill, text)
    print(f"{len(changed)} document blocks differ from their tables: "
          f"{', '.join(changed) or 'none'}")
    if args.check:
        return 1 if changed else 0
    for path, text in new_texts.items():
        if text != texts[path]:
            path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
