"""The workflow config's schema (``workflows/config/schema.yaml``): the one place where a
config key, its default and its allowed words are written. The planner's key lists, the
runtime block's defaults, the training spec's defaults and enums, and the validation split's
default are read from it here (torch-free: PyYAML only, read once)."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflows" / "config" / "schema.yaml"


@functools.cache
def schema() -> dict:
    return yaml.load(SCHEMA_PATH.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def properties(*where: str) -> dict:
    """The ``properties`` of the object at ``where`` (e.g. ``("runtime",)``, ``("$defs",
    "train")``, ``("datasets", "items")``), from the top level."""
    node = schema()
    if where and where[0] == "$defs":
        node, where = node["$defs"], where[1:]
    else:
        node = node["properties"]
        if where:
            node, where = node[where[0]], where[1:]
    for key in where:
        node = node[key]
    return node["properties"] if "properties" in node else node


def defaults(*where: str) -> dict:
    """key -> default of the object at ``where`` (the keys with a default)."""
    return {k: v["default"] for k, v in properties(*where).items()
            if isinstance(v, dict) and "default" in v}


def enum(*where: str) -> tuple:
    """The allowed words of the key at ``where``."""
    *parent, key = where
    node = properties(*parent)[key] if parent else schema()["properties"][key]
    if "enum" not in node and "$ref" in node:  # a top-level key that refers to $defs
        node = schema()["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return tuple(node["enum"])
