"""Stable hashes: a spec's (canonical JSON) and a file's sha256."""

from __future__ import annotations

import hashlib
import json
import os


def spec_hash(spec: dict) -> str:
    """Short, stable hash of a run's full spec (canonical JSON)."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
