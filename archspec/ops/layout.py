"""Layout: ``pad``, ``crop``, ``permute`` and ``mean`` — ops that move, cut, extend or
reduce the per-sample dims without learning anything.

Dims count per sample: ``0`` is channels, the batch is never named. ``crop`` reads its
second input only for its spatial size (``size_inputs``): no data flows from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import ShapeError
from .base import Call, NonNeg, Op, OpAttrs, Shape, Window, fmt, register_op, spatial_rank

PadMode = Literal["constant", "reflect", "replicate", "circular"]


def _dims(op: str, dims: Sequence[int], x: Shape) -> list[int]:
    """``dims`` as non-negative per-sample dims of ``x``; an error for one out of range."""
    rank = len(x)
    for d in dims:
        if not -rank <= d < rank:
            raise ShapeError(f"{op}: dim {d} is out of range for the {rank}-d input {fmt(x)}",
                             expected=f"-{rank} <= dim < {rank} (per sample: 0 is channels)", got=str(d))
    return [d % rank for d in dims]


def _arg(args: Sequence[Any], kwargs: Mapping[str, Any], pos: int, name: str) -> Any:
    """A call's argument by name (as an importer normalises calls) or by position."""
    return kwargs[name] if name in kwargs else args[pos]


def _unique(op: str, v: list[int]) -> list[int]:
    if len(set(v)) != len(v):
        raise ValueError(f"{op}: dims {v} names a dim twice")
    return v


class PadAttrs(OpAttrs):
    padding: list[NonNeg] = Field(
        min_length=2, description="Amounts to add, as torch.nn.functional.pad takes them: (before, after) pairs "
                                  "from the last per-sample dim backwards: [left, right, top, bottom, ...].")
    mode: PadMode = Field("constant", description="constant (value), reflect (mirror without the edge), "
                                                  "replicate (repeat the edge) or circular (wrap around).")
    value: float | None = Field(None, description="The fill of mode constant (null: 0).")

    @model_validator(mode="after")
    def _check(self) -> PadAttrs:
        if len(self.padding) % 2:
            raise ValueError(f"pad: padding {self.padding} has an odd number of entries; it lists "
                             "(before, after) pairs, last dim first: [left, right, top, bottom]")
        if self.value is not None and self.mode != "constant":
            raise ValueError(f"pad: value is the fill of mode constant; mode {self.mode} fills from the input")
        return self


@register_op
class Pad(Op[PadAttrs]):
    """Pad as ``torch.nn.functional.pad``: ``padding`` lists ``(before, after)`` pairs from
    the last per-sample dim backwards, so ``[1, 1, 2, 2]`` turns ``(C, H, W)`` into
    ``(C, H+4, W+2)``. Mode ``constant`` (fill ``value``) pads any per-sample dims,
    channels too; ``reflect``, ``replicate`` and ``circular`` pad every spatial dim of a
    ``(C, L)``, ``(C, H, W)`` or ``(C, D, H, W)`` input (``reflect``: each amount less
    than the size, ``circular``: at most the size). The receptive field is kept: a pad
    moves where a field lies, not its size."""

    name = "pad"
    family = "layout"
    Attrs = PadAttrs
    torch_names = ("torch.nn.functional.pad",)

    def infer(self, a: PadAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        pairs = len(a.padding) // 2
        if a.mode == "constant":
            if pairs > len(x):
                raise ShapeError(
                    f"pad: padding has {pairs} (before, after) pairs but the input {fmt(x)} has "
                    f"{len(x)} per-sample dims (the batch is never padded)",
                    expected=f"at most {2 * len(x)} entries", got=str(a.padding))
        else:
            r = spatial_rank(f"pad (mode {a.mode})", x)
            if pairs != r:
                order = ["left, right", "top, bottom", "front, back"][:r]
                raise ShapeError(
                    f"pad: mode {a.mode} pads every spatial dim; the input {fmt(x)} has {r}, so padding "
                    f"needs {2 * r} entries [{', '.join(order)}], got {len(a.padding)}",
                    expected=f"{2 * r} entries", got=str(a.padding),
                    fix="list a (before, after) pair for each spatial dim, last dim first; mode constant pads any dims")
        out = list(x)
        for i in range(pairs):
            d = len(x) - 1 - i
            before, after = a.padding[2 * i], a.padding[2 * i + 1]
            limit = {"reflect": x[d] - 1, "circular": x[d]}.get(a.mode)
            if limit is not None and max(before, after) > limit:
                need = "less than" if a.mode == "reflect" else "at most"
                raise ShapeError(
                    f"pad: mode {a.mode} can pad dim {d} of the input {fmt(x)} by {need} its size {x[d]}, "
                    f"got {max(before, after)}",
                    expected=f"padding <= {limit}", got=str(max(before, after)),
                    fix="pad less, or use mode replicate or constant")
            out[d] += before + after
        return tuple(out)

    def call(self, a: PadAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch.nn.functional as F

        kwargs: dict[str, Any] = {"mode": a.mode}
        if a.value is not None:
            kwargs["value"] = a.value
        return F.pad, (args[0], tuple(a.padding)), kwargs

    def label(self, a: PadAttrs, shapes: Sequence[Shape | None]) -> str:
        return f"pad {a.mode} {','.join(map(str, a.padding))}"

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        kw = kwargs or {}
        return {"padding": list(_arg(args, kw, 1, "pad")), "mode": kw.get("mode", "constant"), "value": kw.get("value")}


def center_crop(x: Any, like: Any) -> Any:
    """``x`` cut to the spatial size of ``like``, centred: ``(N, C, *S) -> (N, C, *S')``,
    starting at ``(S - S') // 2`` in each spatial dim (a view)."""
    for d in range(2, like.dim()):
        size = like.shape[d]
        x = x.narrow(d, (x.shape[d] - size) // 2, size)
    return x


@register_op
class Crop(Op[OpAttrs]):
    """Input 0 cut, centred, to the spatial size of input 1, as the original U-Net crops
    its skips: ``(C, *S), (C', *S') -> (C, *S')``, starting at ``(S - S') // 2``. Input 1
    gives only its size (no data flows from it) and must be no larger than input 0 in
    any spatial dim. The receptive field is input 0's."""

    name = "crop"
    family = "layout"
    arity = (2, 2)
    size_inputs = (1,)
    torch_names = ("archspec.ops.layout.center_crop",)

    def infer(self, a: OpAttrs, shapes: Sequence[Shape]) -> Shape:
        x, like = shapes
        r = spatial_rank("crop", x)
        if len(like) != len(x):
            raise ShapeError(
                f"crop: input 1 {fmt(like)} has {len(like) - 1} spatial dims but input 0 {fmt(x)} has {r}",
                expected=f"a {len(x)}-d per-sample input 1", got=fmt(like),
                fix="crop to a node of the same spatial rank")
        if any(m > n for m, n in zip(like[1:], x[1:], strict=True)):
            raise ShapeError(
                f"crop: input 1 is {fmt(like[1:])} in space, larger than input 0 {fmt(x[1:])}; a crop only cuts",
                expected=f"at most {fmt(x[1:])}", got=fmt(like[1:]),
                fix="crop the larger node to the smaller one (input 0 is cut, input 1 gives the size), "
                    "or pad or upsample input 0 instead")
        return (x[0], *like[1:])

    def call(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        return center_crop, (args[0], args[1]), {}


class PermuteAttrs(OpAttrs):
    dims: list[int] = Field(min_length=1, description="The per-sample dims in their new order "
                                                      "(0 is channels): [0, 2, 1] swaps H and W.")

    @field_validator("dims")
    @classmethod
    def _check(cls, v: list[int]) -> list[int]:
        return _unique("permute", v)


@register_op
class Permute(Op[PermuteAttrs]):
    """Reorder the per-sample dims: output dim ``i`` is input dim ``dims[i]`` (``[1, 2, 0]``
    turns ``(C, H, W)`` into ``(H, W, C)``); ``dims`` names every dim once. Spatial dims
    swapped keep their receptive fields; channels moved into space have none."""

    name = "permute"
    family = "layout"
    Attrs = PermuteAttrs
    torch_names = ("torch.permute",)

    def _perm(self, a: PermuteAttrs, x: Shape) -> list[int]:
        if len(a.dims) != len(x):
            raise ShapeError(
                f"permute: dims {a.dims} has {len(a.dims)} entries but the input {fmt(x)} has {len(x)} per-sample dims",
                expected=f"a permutation of 0..{len(x) - 1}", got=str(a.dims),
                fix="name every per-sample dim once (0 is channels; the batch is never named)")
        return _dims("permute", a.dims, x)

    def infer(self, a: PermuteAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        perm = self._perm(a, x)
        if sorted(perm) != list(range(len(x))):
            raise ShapeError(f"permute: dims {a.dims} name a dim twice in the {len(x)}-d input {fmt(x)}",
                             expected=f"a permutation of 0..{len(x) - 1}", got=str(a.dims))
        return tuple(x[d] for d in perm)

    def window(self, a: PermuteAttrs, shapes: Sequence[Shape]) -> Window | None:
        x = shapes[0]
        perm = self._perm(a, x)
        spatial = tuple(d - 1 for d in perm[1:])
        if perm[0] == 0 and spatial == tuple(range(len(spatial))):
            return None
        r = len(x) - 1
        return Window(kernel=(1,) * r, stride=(1.0,) * r, dilation=(1,) * r, perm=spatial)

    def label(self, a: PermuteAttrs, shapes: Sequence[Shape | None]) -> str:
        return f"permute {','.join(map(str, a.dims))}"

    def call(self, a: PermuteAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        return torch.permute, (args[0], (0, *(d + 1 for d in self._perm(a, shapes[0])))), {}  # + batch

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        dims = list(_arg(args, kwargs or {}, 1, "dims"))
        if dims[0] not in (0, -len(dims)):
            raise ValueError(f"permute {dims} moves the batch dim; archspec's permute keeps it first")
        return {"dims": [d - 1 if d >= 0 else d for d in dims[1:]]}  # - batch


class MeanAttrs(OpAttrs):
    dims: list[int] = Field(min_length=1, description="The per-sample dims averaged over (0 is channels).")
    keepdim: bool = Field(False, description="Keep each averaged dim with size 1.")

    @field_validator("dims")
    @classmethod
    def _check(cls, v: list[int]) -> list[int]:
        return _unique("mean", v)


@register_op
class Mean(Op[MeanAttrs]):
    """The average over per-sample ``dims``, which are dropped (or kept with size 1 with
    ``keepdim``): ``dims: [1, 2]`` turns ``(C, H, W)`` into ``(C,)``, global average
    pooling. Each output sees the whole extent of every averaged spatial dim."""

    name = "mean"
    family = "layout"
    Attrs = MeanAttrs
    torch_names = ("torch.mean",)

    def _reduced(self, a: MeanAttrs, x: Shape) -> list[int]:
        dims = _dims("mean", a.dims, x)
        if len(set(dims)) != len(dims):
            raise ShapeError(f"mean: dims {a.dims} name a dim twice in the {len(x)}-d input {fmt(x)}",
                             expected="each dim once", got=str(a.dims))
        return dims

    def infer(self, a: MeanAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        dims = self._reduced(a, x)
        if a.keepdim:
            return tuple(1 if d in dims else n for d, n in enumerate(x))
        return tuple(n for d, n in enumerate(x) if d not in dims)

    def window(self, a: MeanAttrs, shapes: Sequence[Shape]) -> Window | None:
        x = shapes[0]
        spatial = [d - 1 for d in self._reduced(a, x) if d > 0]
        r = len(x) - 1
        if not spatial:
            return None
        if len(spatial) == r:
            return Window(glob=True)
        return Window(kernel=tuple(x[d + 1] if d in spatial else 1 for d in range(r)), stride=(1.0,) * r,
                      dilation=(1,) * r)

    def call(self, a: MeanAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        dims = tuple(d + 1 for d in self._reduced(a, shapes[0]))  # + batch
        return torch.mean, (args[0],), {"dim": dims, "keepdim": a.keepdim}

    def label(self, a: MeanAttrs, shapes: Sequence[Shape | None]) -> str:
        return f"mean {','.join(map(str, a.dims))}"

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        kw = kwargs or {}
        dim = _arg(args, kw, 1, "dim")
        dims = [dim] if isinstance(dim, int) else list(dim)
        return {"dims": [d - 1 if d >= 0 else d for d in dims], "keepdim": kw.get("keepdim", False)}  # - batch
