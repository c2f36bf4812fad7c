"""Arithmetic with a constant: ``scale`` (``x * factor``) and ``shift`` (``x + offset``).

Point-wise and stateless; the constant is a number in the spec, never a tensor. Both
are drawn folded into the op before them, like an activation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field

from .base import Call, Op, OpAttrs, Shape, register_op

Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Constant(Op[Any]):
    family = "arithmetic"
    draw = "pointwise"
    fresh_output = True

    def infer(self, a: Any, shapes: Sequence[Shape]) -> Shape:
        return shapes[0]


class ScaleAttrs(OpAttrs):
    factor: Finite = Field(description="The constant every element is multiplied by.")


@register_op
class Scale(_Constant):
    """``x * factor`` for a constant ``factor`` (a residual branch scaled down, a fixed
    temperature). Shape kept."""

    name = "scale"
    Attrs = ScaleAttrs
    torch_names = ("torch.mul",)

    def call(self, a: ScaleAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        return torch.mul, (args[0], a.factor), {}

    def label(self, a: ScaleAttrs, shapes: Sequence[Shape | None]) -> str:
        return f"×{a.factor:g}"

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        kw = kwargs or {}
        return {"factor": float(kw["other"] if "other" in kw else args[1])}


class ShiftAttrs(OpAttrs):
    offset: Finite = Field(description="The constant added to every element.")


@register_op
class Shift(_Constant):
    """``x + offset`` for a constant ``offset``. Shape kept."""

    name = "shift"
    Attrs = ShiftAttrs
    torch_names = ("torch.add",)

    def call(self, a: ShiftAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        return torch.add, (args[0], a.offset), {}

    def label(self, a: ShiftAttrs, shapes: Sequence[Shape | None]) -> str:
        return f"{a.offset:+g}"

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        kw = kwargs or {}  # torch.add(x, other, alpha=a) adds a * other
        return {"offset": float(kw["other"] if "other" in kw else args[1]) * kw.get("alpha", 1)}
