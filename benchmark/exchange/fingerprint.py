"""What decides the bits of a CPU run's numbers besides its spec and code: the torch build,
the kernels it dispatches to (torch's CPU capability, e.g. AVX2 or AVX512) and the processor
(its vendor, family and model choose the BLAS code paths).

Two machines with the same fingerprint rerun a spec bit for bit (measured: the reference
slice in clean clones on the machine that made the reference, every recorded number
identical). On machines that
differ, float rounding differs and training amplifies it into other accuracies, so only the
statistical verdicts of ``noisykd compare`` apply; ``compare --platform`` uses this to decide
whether ``--fail-on moved`` (any change of any number) can be asked of a machine.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from benchmark.core.errors import UserError

KEYS = ("torch", "cpu_capability", "machine", "cpu_vendor", "cpu_family", "cpu_model")


def _cpuinfo(text: str) -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def fingerprint() -> dict[str, str | None]:
    import torch

    try:
        cpu = _cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        cpu = {}
    return {"torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine(), "cpu_vendor": cpu.get("vendor_id"),
            "cpu_family": cpu.get("cpu family"), "cpu_model": cpu.get("model")}


def read(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"--platform {path}: not a readable fingerprint file ({exc})") from None
    missing = [k for k in KEYS if k not in data] if isinstance(data, dict) else list(KEYS)
    if missing:
        raise UserError(f"--platform {path}: not a fingerprint (missing {', '.join(missing)}); "
                        "write one with `noisykd fingerprint --out FILE`")
    return {k: data[k] for k in KEYS}


def differences(a: dict, b: dict) -> list[str]:
    """``key: a != b`` for every fingerprint key on which two machines differ."""
    return [f"{k}: {a.get(k)} != {b.get(k)}" for k in KEYS if a.get(k) != b.get(k)]
