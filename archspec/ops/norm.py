"""Normalisation: ``bn``, ``layernorm``, ``groupnorm``, ``instancenorm``.

All keep the shape. ``bn`` and ``instancenorm`` pick their 1d/2d/3d module from the
input rank; ``layernorm`` normalises over the last ``dims`` per-sample dims.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field

from ..errors import ShapeError
from .base import Op, OpAttrs, PosInt, Shape, fmt, prod, register_op, spatial_rank

Eps = Annotated[float, Field(gt=0)]
Momentum = Annotated[float, Field(ge=0, le=1)]


class BatchNormAttrs(OpAttrs):
    eps: Eps = 1e-5
    momentum: Momentum | None = 0.1  # None: cumulative moving average
    affine: bool = True
    track_running_stats: bool = True


@register_op
class BatchNorm(Op[BatchNormAttrs]):
    """Batch normalisation over channels. ``(C,)``/``(C, L)`` use BatchNorm1d,
    ``(C, H, W)`` 2d, ``(C, D, H, W)`` 3d; the shape is kept."""

    name = "bn"
    family = "norm"
    fresh_output = True
    Attrs = BatchNormAttrs
    stateless = False
    init_kind = "norm"
    ctor = (("num_features",), {"eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True})
    torch_names = ("torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm3d")

    def infer(self, a: BatchNormAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        spatial_rank("bn", x, (0, 1, 2, 3))
        return x

    def params(self, a: BatchNormAttrs, shapes: Sequence[Shape]) -> int:
        return 2 * shapes[0][0] if a.affine else 0

    def module(self, a: BatchNormAttrs, shapes: Sequence[Shape]) -> Any:
        from torch import nn

        x = shapes[0]
        cls = {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[len(x) - 1]
        return cls(x[0], eps=a.eps, momentum=a.momentum, affine=a.affine,
                   track_running_stats=a.track_running_stats)

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"eps": target.eps, "momentum": target.momentum, "affine": target.affine,
                "track_running_stats": target.track_running_stats}


class LayerNormAttrs(OpAttrs):
    dims: PosInt = 1  # normalise over the last `dims` per-sample dims
    eps: Eps = 1e-5
    elementwise_affine: bool = True
    bias: bool = True  # only used with elementwise_affine, as in torch


@register_op
class LayerNorm(Op[LayerNormAttrs]):
    """Layer normalisation over the last ``dims`` per-sample dims (``dims: 1`` on
    ``(L, F)`` normalises each ``F``-vector); ``dims`` must not exceed the rank. Shape kept."""

    name = "layernorm"
    family = "norm"
    fresh_output = True
    Attrs = LayerNormAttrs
    stateless = False
    init_kind = "norm"
    ctor = (("normalized_shape",), {"eps": 1e-5, "elementwise_affine": True, "bias": True})
    torch_names = ("torch.nn.LayerNorm",)

    def infer(self, a: LayerNormAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        if a.dims > len(x):
            raise ShapeError(f"layernorm: dims={a.dims} exceeds the rank of the {len(x)}-d input {fmt(x)}",
                             expected=f"dims <= {len(x)}", got=str(a.dims))
        return x

    def params(self, a: LayerNormAttrs, shapes: Sequence[Shape]) -> int:
        if not a.elementwise_affine:
            return 0
        return prod(shapes[0][-a.dims:]) * (2 if a.bias else 1)

    def module(self, a: LayerNormAttrs, shapes: Sequence[Shape]) -> Any:
        from torch import nn

        return nn.LayerNorm(tuple(shapes[0][-a.dims:]), eps=a.eps,
                            elementwise_affine=a.elementwise_affine, bias=a.bias)

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        affine = target.elementwise_affine
        return {"dims": len(target.normalized_shape), "eps": target.eps, "elementwise_affine": affine,
                "bias": target.bias is not None if affine else True}


class GroupNormAttrs(OpAttrs):
    groups: PosInt
    eps: Eps = 1e-5
    affine: bool = True


@register_op
class GroupNorm(Op[GroupNormAttrs]):
    """Group normalisation: channels split into ``groups`` (which must divide ``C``);
    any ``(C, *)`` input. Shape kept."""

    name = "groupnorm"
    family = "norm"
    fresh_output = True
    Attrs = GroupNormAttrs
    stateless = False
    init_kind = "norm"
    ctor = (("num_groups", "num_channels"), {"eps": 1e-5, "affine": True})
    torch_names = ("torch.nn.GroupNorm",)

    def infer(self, a: GroupNormAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        if len(x) < 1:
            raise ShapeError(f"groupnorm expects a (C, *) per-sample input, got {fmt(x)}", got=fmt(x))
        if x[0] % a.groups:
            raise ShapeError(f"groupnorm: groups={a.groups} does not divide the {x[0]} input channels",
                             expected=f"channels divisible by {a.groups}", got=fmt(x))
        return x

    def params(self, a: GroupNormAttrs, shapes: Sequence[Shape]) -> int:
        return 2 * shapes[0][0] if a.affine else 0

    def module(self, a: GroupNormAttrs, shapes: Sequence[Shape]) -> Any:
        from torch import nn

        return nn.GroupNorm(a.groups, shapes[0][0], eps=a.eps, affine=a.affine)

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"groups": target.num_groups, "eps": target.eps, "affine": target.affine}


class InstanceNormAttrs(OpAttrs):
    eps: Eps = 1e-5
    momentum: Momentum | None = 0.1
    affine: bool = False
    track_running_stats: bool = False


@register_op
class InstanceNorm(Op[InstanceNormAttrs]):
    """Instance normalisation per sample and channel over the spatial dims:
    ``(C, L)``, ``(C, H, W)`` or ``(C, D, H, W)`` with more than one spatial element
    (torch refuses a single one when training). Shape kept."""

    name = "instancenorm"
    family = "norm"
    Attrs = InstanceNormAttrs
    stateless = False
    # init_kind stays "default": the init policy has never reset instance norms.
    ctor = (("num_features",), {"eps": 1e-5, "momentum": 0.1, "affine": False, "track_running_stats": False})
    torch_names = ("torch.nn.InstanceNorm1d", "torch.nn.InstanceNorm2d", "torch.nn.InstanceNorm3d")

    def infer(self, a: InstanceNormAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        spatial_rank("instancenorm", x)
        if prod(x[1:]) == 1:
            raise ShapeError(f"instancenorm needs more than 1 spatial element per channel, got {fmt(x)}",
                             expected="a spatial size larger than 1", got=fmt(x),
                             fix="use layernorm or groupnorm on 1x1 feature maps")
        return x

    def params(self, a: InstanceNormAttrs, shapes: Sequence[Shape]) -> int:
        return 2 * shapes[0][0] if a.affine else 0

    def module(self, a: InstanceNormAttrs, shapes: Sequence[Shape]) -> Any:
        from torch import nn

        x = shapes[0]
        cls: Any = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[len(x) - 1]  # momentum None is valid
        return cls(x[0], eps=a.eps, momentum=a.momentum, affine=a.affine,
                   track_running_stats=a.track_running_stats)

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"eps": target.eps, "momentum": target.momentum, "affine": target.affine,
                "track_running_stats": target.track_running_stats}
