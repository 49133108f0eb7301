"""The documentation: README.md is a short front page, everything else a page under docs/,
and the pages build into a site with mkdocs in strict mode (a broken link between pages, a
missing anchor or a page left out of the nav fails).

mkdocs and mkdocs-material are in the dev extra. Without them the build test skips, except
under CI (CI=true), where a missing package means a broken install step and fails the test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
MKDOCS_YML = REPO_ROOT / "mkdocs.yml"

#: the front page's two commands, what CI runs (.ci/run; tests/test_readme.py)
QUICKSTART = ('```bash\npip install -e ".[dev]" && snakemake --cores all\n```',
              '```bash\npip install -e ".[dev]" && pytest\n```')


def _require_mkdocs() -> None:
    missing = [name for name in ("mkdocs", "material")
               if importlib.util.find_spec(name) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed (pip install -e \".[dev]\")"
    if os.environ.get("CI") == "true":
        pytest.fail(f"under CI: {reason}")
    pytest.skip(reason)


def _nav_pages(nav) -> list[str]:
    """The page files a mkdocs nav lists, at any depth."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return [p for item in nav for p in _nav_pages(item)]


def test_mkdocs_build_strict(tmp_path):
    _require_mkdocs()
    site = tmp_path / "site"
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(MKDOCS_YML),
         "--site-dir", str(site)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    pages = _nav_pages(yaml.safe_load(MKDOCS_YML.read_text())["nav"])
    for page in pages:
        out = "index.html" if page == "index.md" else f"{page.removesuffix('.md')}/index.html"
        assert (site / out).is_file(), out
    # the reference tables render as tables inside their collapsed sections
    results = (site / "results" / "index.html").read_text()
    assert results.count("<details") == 4 and results.count("<table>") >= 4


def test_every_page_is_in_the_nav_once():
    config = yaml.safe_load(MKDOCS_YML.read_text())
    assert config["docs_dir"] == "docs" and config["theme"]["name"] == "material"
    pages = _nav_pages(config["nav"])
    assert len(pages) == len(set(pages)), "a page listed twice in the nav"
    assert set(pages) == {p.name for p in DOCS.glob("*.md")}
    assert "site/" in (REPO_ROOT / ".gitignore").read_text().splitlines()


def test_the_readme_is_a_front_page():
    """At most 300 lines; the two commands CI runs, as written; the main job's headline
    table (its block, which .ci/run compares with its own run); links to every page."""
    text = README.read_text()
    assert len(text.splitlines()) <= 300
    for block in QUICKSTART:
        assert text.count(block) == 1, block
    assert len(re.findall(r"^<!-- default: tables/headline\.md -->\n.*?^<!-- /default -->$",
                          text, re.S | re.M)) == 1
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)(?:#[\w-]*)?\)", text))
    assert linked == {p.name for p in DOCS.glob("*.md")}
    for name in linked:
        assert (DOCS / name).is_file(), name
