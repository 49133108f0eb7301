"""The package's layers (docs/design.md) hold: import-linter's contracts (pyproject.toml), the
torch-free layers import no torch, timm, torchvision or matplotlib when imported, no private
name crosses a module, and no module is over 450 lines."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

TORCH_FREE = ("core", "spec", "data", "plan", "analysis", "exchange", "workflow", "cli")
HEAVY = ("torch", "timm", "torchvision", "matplotlib")
PACKAGES = ("benchmark", "methods")


def _sources():
    for pkg in PACKAGES:
        yield from sorted((REPO_ROOT / pkg).rglob("*.py"))


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("lint-imports is not installed (dev extra import-linter)")
        pytest.skip("import-linter not installed")
    res = subprocess.run([exe, "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_the_torch_free_layers_import_nothing_heavy():
    """Each module of the torch-free layers and the method catalog, imported one after the
    other in a fresh process: none of them brings torch, timm, torchvision or matplotlib."""
    code = f"""
import importlib, pkgutil, sys
heavy = {HEAVY!r}
mods = []
for layer in {TORCH_FREE!r}:
    pkg = importlib.import_module("benchmark." + layer)
    mods += [pkg.__name__] + [m.name for m in pkgutil.walk_packages(pkg.__path__,
                                                                    pkg.__name__ + ".")]
mods += ["methods", "methods.catalog", "methods.hparam_types"]
for m in mods:
    importlib.import_module(m)
    found = [h for h in heavy if h in sys.modules]
    if found:
        print(m, found)
        break
print(len(mods))
"""
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True)
    *heavy, count = res.stdout.split("\n")[:-1]
    assert heavy == [] and int(count) > 50, res.stdout


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO_ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = REPO_ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def private_crossings(path: Path) -> list[str]:
    """``from x import _name`` and ``module._name`` where x / module is another module of the
    project (dunder names are not private)."""
    tree = ast.parse(path.read_text())
    here = _module_name(path)
    aliases: dict[str, str] = {}
    found = []

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            for a in node.names:
                if private(a.name) and node.module != here:
                    found.append(f"{here}: from {node.module} import {a.name}")
                if _is_module(f"{node.module}.{a.name}"):
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and private(node.attr)
                and aliases[node.value.id] != here):
            found.append(f"{here}: {aliases[node.value.id]}.{node.attr}")
    return found


def test_no_private_name_crosses_a_module():
    found = [f for p in _sources() for f in private_crossings(p)]
    assert found == []


def test_the_crossing_check_sees_a_crossing(tmp_path, monkeypatch):
    """The check above is not vacuous: a module reaching into another's private name is
    named, both spellings."""
    import tests.test_layers as me

    root = tmp_path / "repo"
    (root / "benchmark" / "analysis").mkdir(parents=True)
    (root / "benchmark" / "__init__.py").write_text("")
    (root / "benchmark" / "analysis" / "__init__.py").write_text("")
    (root / "benchmark" / "analysis" / "tables.py").write_text("def _row_key():\n    pass\n")
    bad = root / "benchmark" / "analysis" / "figures.py"
    bad.write_text("from benchmark.analysis import tables\n"
                   "from benchmark.analysis.tables import _row_key\n"
                   "tables._row_key()\n")
    monkeypatch.setattr(me, "REPO_ROOT", root)
    assert private_crossings(bad) == [
        "benchmark.analysis.figures: from benchmark.analysis.tables import _row_key",
        "benchmark.analysis.figures: benchmark.analysis.tables._row_key"]


def test_no_module_is_over_450_lines():
    long = {str(p.relative_to(REPO_ROOT)): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}
