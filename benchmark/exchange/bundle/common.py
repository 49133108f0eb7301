"""What the bundle modules share: the format, the files a bundle may hold, the filters and
the limits, and how a message shows a size or a name."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from benchmark.analysis.scores import base_method
from benchmark.core import layout
from benchmark.core.errors import UserError

FORMAT = "noisykd-bundle"
VERSION = 1
MANIFEST = "manifest.json"
RUN_FILES = layout.RUN_FILES
ALPHA_MODES = ("full", "summary")
TEACHER_FILES = layout.TEACHER_RECORDS
TEACHER_MODELS = layout.TEACHER_MODELS


class BundleInvalid(Exception):
    """A bundle that fails verification: tampered, truncated or unsafe (exit status 1)."""


@dataclass(frozen=True)
class Filters:
    datasets: tuple = ()
    noises: tuple = ()
    setups: tuple = ()
    methods: tuple = ()

    def keep(self, parts: tuple[str, ...]) -> bool:
        """``parts``: (kind folder, dataset, noise, setup, method, ...) of a run, a teacher
        or a labels file (teachers and labels: dataset and noise only). Datasets match with
        or without a protocol suffix (``digits`` matches ``digits-authors``; a labels folder
        matches ``digits-authors``), noises exactly, setups and methods by kind too
        (``single`` matches ``single-cifar_resnet14``, ``almkd`` ``almkd-1a2b3c``); ce runs
        (setup ``none``) join every setup's cells and pass any setup filter."""
        dataset, noise = parts[1], parts[2]
        if self.datasets and not any(
                dataset in (w, w.split("-")[0]) or dataset.split("-")[0] == w
                for w in self.datasets):
            return False
        if self.noises and noise not in self.noises:
            return False
        if parts[0] != "runs":
            return True
        setup, method = parts[3], parts[4]
        if self.setups and setup != "none" and not any(
                w in (setup, base_method(setup)) for w in self.setups):
            return False
        return not self.methods or any(w in (method, base_method(method)) for w in self.methods)

    def as_dict(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items() if v}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- verify ---------------------------------------------------------------------------------

#: default limits (``noisykd bundle verify|import --max-member-size / --max-total-size``):
#: the largest file a bundle may hold, and all of them together. A real bundle's largest
#: files are teacher models (cifar_resnet56: 3.4 MB, wrn_28_10: 146 MB, a ViT-L 1.2 GB) and
#: ALM runs' alpha.npz (about 1 MB on the authors' synthetic task); the committed reference
#: bundle holds 7.4 MB in 2077 files.
MAX_MEMBER = 2 << 30
MAX_TOTAL = 16 << 30
MAX_BYTES = MAX_TOTAL  # (its name before the per-member limit existed)
MAX_MANIFEST = 64 << 20  # manifest.json is parsed in memory (the reference's: 0.7 MB)
MAX_PARSED = 16 << 20  # so are metrics.json and alpha_summary.json (a few KB each)
MAX_HEADER = 1 << 20  # pax and GNU long-name/long-link headers before one member, together
MAX_HEADER_CHAIN = 8  # ... and how many (tarfile reads each whole, recursively)
MAX_EXTRA_MEMBERS = 1000  # members beyond the listed ones before reading stops
NAME_MAX = 255  # bytes in one path component (Linux, macOS)
CHUNK = 1 << 20  # members are hashed and written in pieces of this size
PARSED = (layout.METRICS, layout.ALPHA_SUMMARY)  # the members verify reads as JSON

SEG = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
SEED_SEG = r"seed[0-9]+"
LAYOUT_PATTERNS = {"run": re.compile(rf"runs/{SEG}/{SEG}/{SEG}/{SEG}/{SEED_SEG}/([^/]+)"),
           "teacher": re.compile(rf"teachers/{SEG}/{SEG}/{SEG}/{SEED_SEG}/([^/]+)"),
           "labels": re.compile(rf"labels/{SEG}/{SEG}/{SEED_SEG}\.npz"),
           "data": re.compile(rf"data/{SEG}\.json")}


@dataclass(frozen=True)
class Limits:
    """How large a bundle's files may be, one (``member``) and all (``total``), in bytes."""

    member: int = MAX_MEMBER
    total: int = MAX_TOTAL


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, flag: str) -> int:
    """``2G``, ``500M``, ``64K`` (binary units, an optional ``B`` or ``iB``) or bytes."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.I)
    if not m or float(m[1]) * _UNITS[m[2].upper()] < 1:
        raise UserError(f"{flag} {text!r}: a size such as 4G, 500M or 1048576 (bytes)")
    return int(float(m[1]) * _UNITS[m[2].upper()])


def size_text(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= factor:
            return f"{n / factor:.3g} {unit}"
    return f"{n} bytes"


def shown(name: str) -> str:
    """A member name for a message (a hostile one can be megabytes long)."""
    return name if len(name) <= 200 else f"{name[:120]}... ({len(name)} characters)"


def clip(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
def summary_lines(problems: Iterable[str], limit: int = 20) -> list[str]:
    problems = list(problems)
    lines = problems[:limit]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return lines
