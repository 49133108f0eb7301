"""Write constraints.txt: the exact versions of this project's dependency closure as installed.

Run after `pip install -e ".[dev]"` in the environment CI tested; users who want that
environment install with `pip install -c constraints.txt -e ".[dev]"`. Walks the installed
distributions' requirements (markers evaluated for this interpreter) instead of `pip freeze`,
which would also list whatever else happens to be installed.
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT_DIST = "noisykd-bench"


def closure(root: str, extras: tuple[str, ...]) -> dict[str, str]:
    seen: dict[str, str] = {}
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        dist = metadata.distribution(name)
        for spec in dist.requires or []:
            req = Requirement(spec)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(env) for env in envs):
                continue
            key = canonicalize_name(req.name)
            try:
                version = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                continue
            if key not in seen:
                seen[key] = version
                todo.append((req.name, tuple(req.extras)))
    return seen


def main() -> int:
    pins = closure(ROOT_DIST, ("dev",))
    pins.pop(canonicalize_name(ROOT_DIST), None)
    header = (f"# Exact versions CI tested (Python {sys.version.split()[0]}, "
              f"written by scripts/write_constraints.py).\n"
              "# Use: pip install -c constraints.txt -e \".[dev]\"\n")
    body = "".join(f"{k}=={v}\n" for k, v in sorted(pins.items()))
    Path("constraints.txt").write_text(header + body)
    print(f"constraints.txt: {len(pins)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
