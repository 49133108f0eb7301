"""Rewrite the README's copies of the reference study's tables from the committed bundle.

    python scripts/readme_reference_tables.py [--check]

Imports reference/reference.tar.gz into a scratch folder, runs the report (no figures), and
replaces every block ``<!-- reference: tables/NAME -->...<!-- /reference -->`` of README.md
with that file's text (tests/test_reference.py holds the README to exactly this). --check
only says which blocks differ (exit 1 when any does).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- reference: (tables/[\w.-]+) -->\n)(.*?)(<!-- /reference -->)", re.S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from benchmark import bundle
    from benchmark.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results" / "reference"
        bundle.import_bundle(ROOT / "reference" / "reference.tar.gz", results)
        write_report(results, figures=False)
        readme = ROOT / "README.md"
        text = readme.read_text()
        changed = []

        def fill(m):
            new = (results / m[2]).read_text()
            if new != m[3]:
                changed.append(m[2])
            return m[1] + new + m[4]

        text = BLOCK.sub(fill, text)
    print(f"{len(changed)} README blocks differ from the bundle's tables: "
          f"{', '.join(changed) or 'none'}")
    if args.check:
        return 1 if changed else 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
