"""A config mistake in one line: the key or value, where it is, and what is allowed.

Snakemake's own schema validation prints the whole schema (hundreds of lines) around the one
useful line. The Snakefile calls ``explain`` first and stops with its line: an unknown key
gets the nearest allowed keys by edit distance (or the list), a value outside an enum gets
the valid values, anything else jsonschema's own message with the key's path.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path


def _where(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the top level"


def _enums(error) -> list:
    """Valid values of an enum error, also when it sits inside a oneOf/anyOf."""
    found = []
    for e in [error, *error.context]:
        if e.validator == "enum":
            found += [v for v in e.validator_value if v not in found]
    return found


def _keys_elsewhere(key: str, schema: dict) -> tuple[str, str] | None:
    """(where, name) of the schema property nearest to ``key`` at any depth."""
    found: dict[str, str] = {}

    def walk(node, where, depth=0):
        if isinstance(node, dict) and depth < 8:
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                walk(schema["$defs"][ref.split("/")[-1]], where, depth + 1)
            for name, sub in node.get("properties", {}).items():
                found.setdefault(name, f"{where}" or "the top level")
                walk(sub, f"{where}.{name}" if where else name, depth + 1)
            for k in ("items", "additionalProperties"):
                if isinstance(node.get(k), dict):
                    walk(node[k], f"{where}[]", depth + 1)
            for k in ("oneOf", "anyOf", "allOf"):
                for sub in node.get(k, []):
                    walk(sub, where, depth + 1)

    walk(schema, "")
    close = difflib.get_close_matches(key, list(found), n=1, cutoff=0.75)
    return (found[close[0]], close[0]) if close else None


def explain(config: dict, schema: dict) -> str | None:
    """One line describing the most relevant schema violation, or None when valid."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(schema).iter_errors(config))
    if error is None:
        return None
    where = _where(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        extra = [k for k in error.instance if k not in allowed
                 and not any(re.search(p, k) for p in patterns)]
        key = extra[0] if extra else "?"
        close = difflib.get_close_matches(str(key), allowed, n=3, cutoff=0.6)
        if close:
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?"
        else:
            elsewhere = _keys_elsewhere(str(key), schema)
            hint = (f"{elsewhere[1]!r} is a key of {elsewhere[0]}" if elsewhere
                    else f"allowed: {', '.join(allowed)}")
        return f"unknown key {key!r} at {where}; {hint}"
    enums = _enums(error)
    if enums:
        value = error.instance.get("name") if isinstance(error.instance, dict) else error.instance
        close = difflib.get_close_matches(str(value), [str(v) for v in enums], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{where}: {value!r} is not one of {', '.join(map(str, enums))}{hint}"
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return f"{where}: {message}"


def explain_file(config: dict, schema_path: str | Path) -> str | None:
    import yaml

    return explain(config, yaml.safe_load(Path(schema_path).read_text()))
