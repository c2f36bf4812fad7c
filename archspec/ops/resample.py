"""Resampling: ``upsample`` (``torch.nn.functional.interpolate``), stateless.

Give exactly one of ``scale`` (a factor per spatial dim) or ``size`` (the output
spatial size). The interpolating modes need a matching number of spatial dims:
``linear`` 1, ``bilinear``/``bicubic`` 2, ``trilinear`` 3; ``nearest`` takes any.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ..errors import ShapeError, short_repr
from .base import (
    Call,
    Op,
    OpAttrs,
    PosInt,
    Shape,
    Window,
    fmt,
    ints,
    kernel_text,
    label_geometry,
    register_op,
    spatial_rank,
    tuplify,
)

PosFloat = Annotated[float, Field(gt=0)]

Mode = Literal["nearest", "linear", "bilinear", "bicubic", "trilinear"]
MODE_RANK = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
MODE_KERNEL = {"nearest": 1, "linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}


class UpsampleAttrs(OpAttrs):
    scale: PosFloat | list[PosFloat] | None = None
    size: PosInt | list[PosInt] | None = None
    mode: Mode = "nearest"
    align_corners: bool | None = None  # interpolating modes only; None is torch's False

    @model_validator(mode="after")
    def _check(self) -> UpsampleAttrs:
        if (self.scale is None) == (self.size is None):
            raise ValueError("upsample needs exactly one of scale or size")
        if self.align_corners is not None and self.mode == "nearest":
            raise ValueError("align_corners can only be set with the interpolating modes "
                             "linear, bilinear, bicubic, trilinear, not with nearest")
        return self


def _scales(a: UpsampleAttrs, r: int) -> tuple[float, ...]:
    assert a.scale is not None
    if isinstance(a.scale, float):
        return (a.scale,) * r
    if len(a.scale) != r:
        raise ShapeError(f"scale has {len(a.scale)} entries but the input has {r} spatial dims",
                         expected=f"a number or a list of {r}", got=str(a.scale))
    return tuple(a.scale)


@register_op
class Upsample(Op[UpsampleAttrs]):
    """Interpolation to ``size``, or by ``scale`` per spatial dim with PyTorch's rule
    ``floor(n * scale)`` (which must stay >= 1). ``(C, *S) -> (C, *S')``."""

    name = "upsample"
    family = "resample"
    fresh_output = True
    Attrs = UpsampleAttrs
    torch_names = ("torch.nn.functional.interpolate",)

    def _out(self, a: UpsampleAttrs, x: Shape) -> tuple[int, ...]:
        r = spatial_rank("upsample", x)
        need = MODE_RANK.get(a.mode)
        if need is not None and need != r:
            raise ShapeError(
                f"upsample: mode {a.mode} needs {need} spatial dim{'s' if need > 1 else ''}, "
                f"but the input {fmt(x)} has {r}",
                expected=f"a {need + 1}-d per-sample input", got=fmt(x),
                fix="use mode " + {1: "linear", 2: "bilinear", 3: "trilinear"}[r] + " or nearest",
            )
        if a.size is not None:
            return tuplify(a.size, r, "size")
        try:
            sizes = tuple(math.floor(float(n) * s) for n, s in zip(x[1:], _scales(a, r), strict=True))
        except OverflowError:  # float(n) or floor(inf): a size past any float
            raise ShapeError(f"upsample: scale {short_repr(a.scale)} makes the input {fmt(x)} larger than any "
                             "size a float can hold", expected="a scale that keeps every size finite") from None
        if any(n < 1 for n in sizes):
            raise ShapeError(f"upsample: scale {a.scale} turns the input {fmt(x)} into an empty output {fmt(sizes)}",
                             expected="floor(size * scale) >= 1", got=fmt(sizes))
        return sizes

    def infer(self, a: UpsampleAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        return (x[0], *self._out(a, x))

    def window(self, a: UpsampleAttrs, shapes: Sequence[Shape]) -> Window:
        x = shapes[0]
        out = self._out(a, x)
        r = len(out)
        if a.size is not None:
            stride = tuple(n / o for n, o in zip(x[1:], out, strict=True))
        else:
            stride = tuple(1.0 / s for s in _scales(a, r))
        k = MODE_KERNEL[a.mode]
        if a.mode == "nearest" or a.align_corners:
            return Window(kernel=(k,) * r, stride=stride, dilation=(1,) * r)
        # Interpolation reads around source (o + 0.5)*s - 0.5: from floor of it, minus 1 for
        # bicubic, through k positions.
        start = tuple((st - 1) / 2 - (k // 2 - 1) for st in stride)
        return Window(kernel=(k,) * r, stride=stride, dilation=(1,) * r, start=start,
                      end=tuple(st0 + k - 1 for st0 in start))

    def call(self, a: UpsampleAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch.nn.functional as F

        x = shapes[0]
        r = len(x) - 1
        kwargs: dict[str, Any] = {"mode": a.mode}
        if a.size is not None:
            kwargs["size"] = tuplify(a.size, r, "size")
        else:
            kwargs["scale_factor"] = _scales(a, r)
        if a.align_corners is not None:
            kwargs["align_corners"] = a.align_corners
        return F.interpolate, (args[0],), kwargs

    def label(self, a: UpsampleAttrs, shapes: Sequence[Shape | None]) -> str:
        _, nd = label_geometry(shapes)
        how = f"×{a.scale}" if a.scale is not None else f"→{kernel_text(a.size, nd)}"
        return f"upsample {how} {a.mode}".rstrip()

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        kw = kwargs or {}
        size, scale = kw.get("size"), kw.get("scale_factor")
        return {"size": None if size is None else ints(size),
                "scale": None if scale is None else (scale[0] if len(set(scale)) == 1 else list(scale))
                if isinstance(scale, list | tuple) else scale,
                "mode": kw.get("mode", "nearest"), "align_corners": kw.get("align_corners")}
