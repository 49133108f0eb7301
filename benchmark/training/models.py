"""Small-input backbones reachable by name, like timm's models and through timm.

``create_model(name, ...)`` builds ``cifar_resnet{8,...,110}``, ``wrn_{depth}_{width}``,
``mlp_{hidden}``, ``small_<timm resnet>`` and any timm model; ``register_timm()`` registers
the suite's models with timm, after which ``timm.create_model(name, num_classes=...,
in_chans=...)`` builds them like any timm model (timm is imported only then, or for a timm
model: it costs a short CPU job about 5 s). Every model exposes timm's
``forward_features``, ``forward_head(x, pre_logits=True)`` and ``get_classifier()``: the
ALM-KD refresh needs the pre-logit features and the last linear layer.

Knows nothing of losses or training.
"""

from __future__ import annotations

import math

import torch.nn as nn
import torch.nn.functional as F

from benchmark.core.errors import UserError
from benchmark.spec.archnames import (
    CIFAR_RESNET_DEPTHS,
    MLP_RE,
    MLP_SIZES,
    SMALL_BASES,
    SMALL_RE,
    UNKNOWN,
    WRN_SIZES,
)

# ---- CIFAR ResNets (He et al. 2016), as in the ALM-KD authors' resnet_cifar.py -----------


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class _TimmHead:
    """timm's head interface over a global-average-pooled feature map and one ``fc``."""

    def forward_head(self, x, pre_logits: bool = False):
        if x.ndim == 4:
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def get_classifier(self):
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool=None):
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)


class CifarResNet(_TimmHead, nn.Module):
    """3x3 stem, three stages of 16/32/64 channels, depth 6n+2; 1x1-conv shortcuts where the
    shape changes (the authors' and RepDistiller's option B). Works for any input size."""

    def __init__(self, depth: int, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise UserError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.num_classes, self.num_features = num_classes, 64
        self.conv1 = nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [BasicBlock(in_planes, planes, stride)]
            blocks += [BasicBlock(planes, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            in_planes = planes
        self.layer1, self.layer2, self.layer3 = stages
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))


# ---- Wide ResNets (Zagoruyko & Komodakis 2016) ---------------------------------------------


class WideBlock(nn.Module):
    """Pre-activation basic block; 1x1-conv shortcut where the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(F.relu(self.bn2(y)))
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(_TimmHead, nn.Module):
    def __init__(self, depth: int, width: int, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        if (depth - 4) % 6:
            raise UserError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * width, 32 * width, 64 * width]
        self.num_classes, self.num_features = num_classes, widths[3]
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        blocks, in_planes = [], widths[0]
        for planes, stride in zip(widths[1:], (1, 2, 2), strict=True):
            for i in range(n):
                blocks.append(WideBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        return F.relu(self.bn(self.blocks(self.conv1(x))))


# ---- MLP (the authors' TwoLayerNet for the synthetic task) --------------------------------


class MLP(_TimmHead, nn.Module):
    """Linear -> ReLU -> Linear; flattens its input. ``in_chans`` is the input dimension."""

    def __init__(self, hidden: int, num_classes: int = 10, in_chans: int = 14):
        super().__init__()
        self.num_classes, self.num_features = num_classes, hidden
        self.hidden = nn.Linear(in_chans, hidden)
        self.fc = nn.Linear(hidden, num_classes)

    def forward_features(self, x):
        return F.relu(self.hidden(x.flatten(1)))


# ---- registration ------------------------------------------------------------------------
# The suite's models are built by name without importing timm (about 5 s per process, which
# short CPU jobs feel); timm is imported, and every suite model registered with it, only
# when a timm model is asked for or ``register_timm()`` is called.

_TIMM_ARGS = ("pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")
_BUILDERS: dict = {}  # suite name -> build(num_classes=..., in_chans=...)
_IN_TIMM: set = set()  # suite names registered with timm


def _own_kwargs(name: str, kwargs: dict) -> dict:
    if kwargs.get("pretrained"):
        raise UserError(f"{name}: no pretrained weights exist for this suite's models")
    return {k: v for k, v in kwargs.items() if k not in _TIMM_ARGS}


def _register(name: str, build) -> None:
    _BUILDERS[name] = build
    if _IN_TIMM:  # timm is in use: keep it complete
        register_timm()


def register_timm():
    """Register every suite model with timm (idempotent), so that ``timm.create_model(name,
    num_classes=..., in_chans=...)`` builds them like any timm model; returns timm."""
    import timm
    from timm.models import register_model

    for name, build in list(_BUILDERS.items()):
        if name in _IN_TIMM:
            continue

        def entry(pretrained=False, _name=name, _build=build, **kwargs):
            return _build(**_own_kwargs(_name, {"pretrained": pretrained, **kwargs}))

        entry.__name__ = name
        entry.__qualname__ = name
        entry.__module__ = __name__
        register_model(entry)
        _IN_TIMM.add(name)
    return timm


for _d in CIFAR_RESNET_DEPTHS:
    _register(f"cifar_resnet{_d}", lambda d=_d, **kw: CifarResNet(d, **kw))
for _d, _w in WRN_SIZES:
    _register(f"wrn_{_d}_{_w}", lambda d=_d, w=_w, **kw: WideResNet(d, w, **kw))
for _h in MLP_SIZES:
    _register(f"mlp_{_h}", lambda h=_h, **kw: MLP(h, **kw))


def _small(base: str):
    """A timm ResNet-family model with a 3x3 stride-1 stem and no max-pool (for 32x32 inputs)."""

    def build(num_classes=1000, in_chans=3, **kwargs):
        timm = register_timm()
        model = timm.create_model(base, num_classes=num_classes, in_chans=in_chans, **kwargs)
        if not hasattr(model, "conv1") or not hasattr(model, "maxpool"):
            raise UserError(f"small_{base}: only timm ResNet-family models (a conv1 stem and a "
                            "maxpool) have small-input versions; use the timm name directly")
        stem_out = model.conv1.out_channels if isinstance(model.conv1, nn.Conv2d) else None
        if stem_out is None:
            raise UserError(f"small_{base}: deep-stem variants are not supported")
        model.conv1 = nn.Conv2d(in_chans, stem_out, 3, 1, 1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
        return model

    return build


for _base in SMALL_BASES:
    _register(f"small_{_base}", _small(_base))


_MLP_RE, _SMALL_RE = MLP_RE, SMALL_RE


def ensure_registered(arch: str) -> None:
    """Register ``mlp_<any width>`` and ``small_<any timm resnet>`` on first use (the
    second imports timm, to ask whether the base model exists)."""
    if arch in _BUILDERS:
        return
    if m := _MLP_RE.fullmatch(arch):
        _register(arch, lambda h=int(m[1]), **kw: MLP(h, **kw))
    elif (m := _SMALL_RE.fullmatch(arch)) and register_timm().is_model(m[1]):
        _register(arch, _small(m[1]))


def check_arch(arch: str, input_shape: tuple[int, ...]) -> None:
    """Fail before any work when ``arch`` does not exist or cannot take these inputs."""
    ensure_registered(arch)
    if arch not in _BUILDERS and not register_timm().is_model(arch):
        raise UserError(f"unknown architecture {arch!r}: {UNKNOWN}")
    if len(input_shape) == 1 and not _MLP_RE.fullmatch(arch):
        raise UserError(f"architecture {arch!r} needs image inputs; tabular data need mlp_<hidden>")


def create_model(arch: str, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """Build ``arch`` for inputs of ``input_shape`` ((C, H, W) images or (D,) features): a
    suite model directly (what timm.create_model calls for it), any other through timm."""
    check_arch(arch, input_shape)
    in_chans = math.prod(input_shape) if _MLP_RE.fullmatch(arch) else input_shape[0]
    try:
        if arch in _BUILDERS:
            return _BUILDERS[arch](num_classes=num_classes, in_chans=in_chans)
        return register_timm().create_model(arch, num_classes=num_classes, in_chans=in_chans)
    except UserError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"cannot build {arch!r} for inputs {input_shape}: {exc}") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
