"""The op registry: one module per family, each op registering itself where it is defined."""

from __future__ import annotations

# Importing a family registers its ops.
from . import activation, arith, conv, layout, linear, merge, norm, pool, resample, split  # noqa: F401
from .base import REGISTRY, Op, OpAttrs, Registry, Shape, Window, register_op

__all__ = ["REGISTRY", "Op", "OpAttrs", "Registry", "Shape", "Window", "register_op"]
