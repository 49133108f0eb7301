"""Rewrite the README's copies of report tables: the reference study's from the committed
bundle, the main job's (the default grid) from results/default.

    python scripts/readme_reference_tables.py [--check] [--only reference|default]
                                             [--platform FINGERPRINT]

``<!-- reference: tables/NAME -->...<!-- /reference -->`` blocks: imports
reference/reference.tar.gz into a scratch folder, runs the report (no figures) and puts that
file's text in the block (tests/test_reference.py holds the README to exactly this).
``<!-- default: tables/NAME -->...<!-- /default -->`` blocks: the file as the last
``snakemake --cores all`` wrote it under results/default/tables/ (the main job must have
finished: every planned run, else an error). --check only says which blocks differ (exit 1
when any does). --platform (with --check, default blocks): the default grid's numbers are
bit-identical only on a machine with the same arithmetic as the one that wrote the README
(benchmark/arithmetic.py); on another, the check says so and passes.
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


def default_tables() -> Path:
    from benchmark import completeness
    from benchmark.collect import collect_runs

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
    from benchmark import bundle
    from benchmark.report import write_report

    readme = ROOT / "README.md"
    text = readme.read_text()
    kinds = {m[2] for m in BLOCK.finditer(text)} & ({args.only} if args.only else
                                                     {"reference", "default"})
    if args.platform is not None and "default" in kinds:
        from benchmark import arithmetic

        differ = arithmetic.differences(arithmetic.read(args.platform),
                                        arithmetic.fingerprint())
        if differ:
            print(f"this machine's arithmetic differs from {args.platform} "
                  f"({'; '.join(differ)}): the README's default-grid blocks are not compared")
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

        def fill(m):
            if m[2] not in roots:
                return m[0]
            new = (roots[m[2]] / m[3]).read_text()
            if new != m[4]:
                changed.append(f"{m[2]} {m[3]}")
            return m[1] + new + m[5]

        text = BLOCK.sub(fill, text)
    print(f"{len(changed)} README blocks differ from their tables: "
          f"{', '.join(changed) or 'none'}")
    if args.check:
        return 1 if changed else 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
