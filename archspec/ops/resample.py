"""Resampling: ``upsample`` (``torch.nn.functional.interpolate``) and ``pixel_shuffle``, stateless.

``upsample`` takes exactly one of ``scale`` (a factor per spatial dim), ``size`` (the
output spatial size) or a second input whose spatial size it takes. The interpolating
modes need a matching number of spatial dims: ``linear`` 1, ``bilinear``/``bicubic`` 2,
``trilinear`` 3; ``nearest`` takes any.
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
        if self.scale is not None and self.size is not None:
            raise ValueError("upsample takes one of scale or size, not both")
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


def interpolate_like(x: Any, like: Any, mode: str = "nearest", align_corners: bool | None = None) -> Any:
    """``x`` interpolated to the spatial size of ``like``: ``(N, C, *S) -> (N, C, *S')``."""
    import torch.nn.functional as F

    return F.interpolate(x, size=like.shape[2:], mode=mode, align_corners=align_corners)


@register_op
class Upsample(Op[UpsampleAttrs]):
    """Interpolation to ``size``, by ``scale`` per spatial dim with PyTorch's rule
    ``floor(n * scale)`` (which must stay >= 1), or to the spatial size of a second input
    (which gives only its size: no data flows from it). ``(C, *S) -> (C, *S')``."""

    name = "upsample"
    family = "resample"
    fresh_output = True
    Attrs = UpsampleAttrs
    arity = (1, 2)
    size_inputs = (1,)
    torch_names = ("torch.nn.functional.interpolate", "archspec.ops.resample.interpolate_like")

    def _out(self, a: UpsampleAttrs, shapes: Sequence[Shape]) -> tuple[int, ...]:
        x = shapes[0]
        r = spatial_rank("upsample", x)
        need = MODE_RANK.get(a.mode)
        if need is not None and need != r:
            raise ShapeError(
                f"upsample: mode {a.mode} needs {need} spatial dim{'s' if need > 1 else ''}, "
                f"but the input {fmt(x)} has {r}",
                expected=f"a {need + 1}-d per-sample input", got=fmt(x),
                fix="use mode " + {1: "linear", 2: "bilinear", 3: "trilinear"}[r] + " or nearest",
            )
        if len(shapes) > 1:
            like = shapes[1]
            if a.scale is not None or a.size is not None:
                given = "scale" if a.scale is not None else "size"
                raise ShapeError(f"upsample: the second input gives the size, so {given} cannot be given too",
                                 expected="one of scale, size or a second input", got=f"{given} and a second input",
                                 fix=f"drop {given}, or the second input")
            if len(like) != len(x):
                raise ShapeError(
                    f"upsample: input 1 {fmt(like)} has {len(like) - 1} spatial dims but input 0 {fmt(x)} has {r}",
                    expected=f"a {len(x)}-d per-sample input 1", got=fmt(like),
                    fix="take the size of a node of the same spatial rank")
            return tuple(like[1:])
        if a.size is not None:
            return tuplify(a.size, r, "size")
        if a.scale is None:
            raise ShapeError("upsample needs one of scale, size, or a second input whose spatial size it takes",
                             expected="scale, size or a second input", got="none of them",
                             fix="add scale: 2, size: [H, W], or in: [x, like] to take like's size")
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
        return (shapes[0][0], *self._out(a, shapes))

    def window(self, a: UpsampleAttrs, shapes: Sequence[Shape]) -> Window:
        x = shapes[0]
        out = self._out(a, shapes)
        r = len(out)
        if a.scale is None:
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
        if len(args) > 1:
            kwargs["align_corners"] = a.align_corners
            return interpolate_like, (args[0], args[1]), kwargs
        if a.size is not None:
            kwargs["size"] = tuplify(a.size, r, "size")
        else:
            kwargs["scale_factor"] = _scales(a, r)
        if a.align_corners is not None:
            kwargs["align_corners"] = a.align_corners
        return F.interpolate, (args[0],), kwargs

    def label(self, a: UpsampleAttrs, shapes: Sequence[Shape | None]) -> str:
        _, nd = label_geometry(shapes)
        how = f"×{a.scale}" if a.scale is not None else f"→{kernel_text(a.size, nd)}" if a.size is not None \
            else f"→{kernel_text(list(shapes[1][1:]), nd)}" if len(shapes) > 1 and shapes[1] else "→input 1"
        return f"upsample {how} {a.mode}".rstrip()

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        kw = kwargs or {}
        if target is interpolate_like:
            return {"mode": kw.get("mode", "nearest"), "align_corners": kw.get("align_corners")}
        size, scale = kw.get("size"), kw.get("scale_factor")
        return {"size": None if size is None else ints(size),
                "scale": None if scale is None else (scale[0] if len(set(scale)) == 1 else list(scale))
                if isinstance(scale, list | tuple) else scale,
                "mode": kw.get("mode", "nearest"), "align_corners": kw.get("align_corners")}


class PixelShuffleAttrs(OpAttrs):
    factor: PosInt = Field(description="Upscale factor r: r*r channels become an r x r block of pixels.")


@register_op
class PixelShuffle(Op[PixelShuffleAttrs]):
    """Sub-pixel up-sampling: ``(C*r*r, H, W) -> (C, H*r, W*r)`` for ``factor`` r, as
    ``torch.pixel_shuffle``; the channels must be divisible by r*r."""

    name = "pixel_shuffle"
    family = "resample"
    Attrs = PixelShuffleAttrs
    torch_names = ("torch.pixel_shuffle", "torch.nn.functional.pixel_shuffle")

    def infer(self, a: PixelShuffleAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        spatial_rank("pixel_shuffle", x, (2,))
        r2 = a.factor * a.factor
        c, h, w = x
        if c % r2:
            lo, hi = c // r2 * r2, (c // r2 + 1) * r2
            near = f"{lo} or {hi}" if lo else f"{hi}"
            raise ShapeError(
                f"pixel_shuffle: the {c} input channels are not divisible by factor*factor = {r2}",
                expected=f"channels divisible by {r2}", got=fmt(x),
                fix=f"give the op before it {near} output channels (a multiple of {r2}), or change factor")
        return (c // r2, h * a.factor, w * a.factor)

    def window(self, a: PixelShuffleAttrs, shapes: Sequence[Shape]) -> Window:
        return Window(kernel=(1, 1), stride=(1 / a.factor,) * 2, dilation=(1, 1))

    def call(self, a: PixelShuffleAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        return torch.pixel_shuffle, (args[0], a.factor), {}

    def label(self, a: PixelShuffleAttrs, shapes: Sequence[Shape | None]) -> str:
        return f"pixel_shuffle ×{a.factor}"

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        kw = kwargs or {}
        return {"factor": int(kw["upscale_factor"] if "upscale_factor" in kw else args[1])}
