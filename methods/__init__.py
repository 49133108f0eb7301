"""Distillation methods, one file each, behind one registry (``build_method(name)``)."""

from . import ce  # noqa: F401  (registers the method)
from .base import METHODS, Method, MethodContext, StepOutput, build_method, register_method

__all__ = ["METHODS", "Method", "MethodContext", "StepOutput", "build_method", "register_method"]
