"""Distillation methods, one file each, behind one registry.

Adding a method: one file ``methods/<name>.py`` with a ``@register_method`` class, and one
entry in ``methods/catalog.py`` (its facts, hyper-parameters and defaults, which the planner,
the cost model and the report read without importing torch). Nothing heavy is imported here:
``build_method`` loads the method modules on first use.
"""


def build_method(name: str, **hparams):
    from .base import build_method as _build

    return _build(name, **hparams)


__all__ = ["build_method"]
