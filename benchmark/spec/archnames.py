"""Architecture names, checked without torch: what ``benchmark.training.models`` can build.

The suite's models are recognised from their names alone (the planner imports no torch);
any other name must be a timm model, which only timm can tell, so timm (and with it torch,
about 5 s) is imported only when a config names an architecture that is not the suite's.
``benchmark.training.models`` builds exactly these names: it takes its sizes and patterns from here.
"""

from __future__ import annotations

import re

from benchmark.core.errors import UserError

CIFAR_RESNET_DEPTHS = (8, 14, 20, 26, 32, 44, 56, 110)
WRN_SIZES = ((16, 1), (16, 2), (16, 4), (16, 8), (28, 10), (40, 1), (40, 2), (40, 4))
MLP_SIZES = (32, 50, 64, 80, 100, 128, 256, 512)  # registered up front; any width builds
SMALL_BASES = ("resnet18", "resnet34", "resnet50")  # registered up front; any timm resnet

MLP_RE = re.compile(r"^mlp_(\d+)$")
SMALL_RE = re.compile(r"^small_(.+)$")

SUITE_NAMES = frozenset(
    [f"cifar_resnet{d}" for d in CIFAR_RESNET_DEPTHS]
    + [f"wrn_{d}_{w}" for d, w in WRN_SIZES]
    + [f"mlp_{h}" for h in MLP_SIZES]
    + [f"small_{b}" for b in SMALL_BASES])

UNKNOWN = ("not a suite model (cifar_resnet8..110, wrn_<depth>_<width>, mlp_<hidden>, "
           "small_<timm resnet>) nor a timm model")


def _timm_has(name: str) -> bool:
    import timm

    return bool(timm.is_model(name))


def is_known(arch: str) -> bool:
    """Whether ``benchmark.training.models.create_model`` knows ``arch`` (timm is asked only for a
    name that is not the suite's)."""
    if arch in SUITE_NAMES:
        return True
    if m := MLP_RE.fullmatch(arch):
        return int(m[1]) >= 1
    if m := SMALL_RE.fullmatch(arch):
        return _timm_has(m[1])
    return _timm_has(arch)


def check_arch_name(arch, tabular: bool = False) -> None:
    """Refuse, in one line, a name that is no architecture, or an image model for tabular
    inputs (the same refusals as ``benchmark.training.models.check_arch``, without torch for the
    suite's names)."""
    if not isinstance(arch, str) or not arch:
        raise UserError(f"architecture must be a model name, got {arch!r}")
    if not is_known(arch):
        raise UserError(f"unknown architecture {arch!r}: {UNKNOWN}")
    if tabular and not MLP_RE.fullmatch(arch):
        raise UserError(f"architecture {arch!r} needs image inputs; tabular data need "
                        "mlp_<hidden>")
