"""Distillation methods, one file each, behind one registry (``build_method(name)``).

Adding a method: one file with a ``@register_method`` class, one import line here.
"""

from . import almkd, almkd_full, amal, ce, fixed_alpha, kd  # noqa: F401  (registers them)
from .base import METHODS, Method, MethodContext, StepOutput, build_method, register_method

__all__ = ["METHODS", "Method", "MethodContext", "StepOutput", "build_method", "register_method"]
