"""Dense layers and shape plumbing: ``linear``, ``flatten``, ``reshape``, ``dropout``, ``identity``.

``linear`` applies to the last per-sample dim, as ``nn.Linear`` does: ``(..., F) -> (..., out)``.
``flatten`` and ``reshape`` count dims in the per-sample shape; the batch dim is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field, field_validator

from ..errors import ShapeError
from .base import Call, Op, OpAttrs, PosInt, Shape, Window, fmt, label_geometry, prod, register_op


class LinearAttrs(OpAttrs):
    out: PosInt
    bias: bool = True


@register_op
class Linear(Op[LinearAttrs]):
    """Fully connected layer on the last dim: ``(..., F) -> (..., out)``."""

    name = "linear"
    family = "linear"
    fresh_output = True
    init_kind = "linear"
    Attrs = LinearAttrs
    stateless = False
    ctor = (("in_features", "out_features"), {"bias": True})
    torch_names = ("torch.nn.Linear",)

    def infer(self, a: LinearAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        if len(x) < 1:
            raise ShapeError(f"linear expects a (..., F) per-sample input, got {fmt(x)}", got=fmt(x),
                             fix="a per-sample scalar has no features; reshape it to (1,)")
        return (*x[:-1], a.out)

    def params(self, a: LinearAttrs, shapes: Sequence[Shape]) -> int:
        return shapes[0][-1] * a.out + (a.out if a.bias else 0)

    def macs(self, a: LinearAttrs, shapes: Sequence[Shape], out: Shape) -> int:
        return prod(out) * shapes[0][-1]

    def window(self, a: LinearAttrs, shapes: Sequence[Shape]) -> Window:
        # Every output mixes the whole feature dim.
        return Window(glob=True)

    def module(self, a: LinearAttrs, shapes: Sequence[Shape]) -> Any:
        from torch import nn

        return nn.Linear(shapes[0][-1], a.out, bias=a.bias)

    def label(self, a: LinearAttrs, shapes: Sequence[Shape | None]) -> str:
        cin, _ = label_geometry(shapes)
        return f"linear {cin}→{a.out}" if cin is not None else f"linear →{a.out}"

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"out": target.out_features, "bias": target.bias is not None}


def _dim(op: str, what: str, d: int, x: Shape) -> int:
    """A per-sample dim normalised to ``[0, rank)``, or a ShapeError."""
    rank = len(x)
    if not -rank <= d < rank:
        raise ShapeError(f"{op}: {what} {d} is out of range for the {rank}-d input {fmt(x)}",
                         expected=f"-{rank} <= {what} < {rank}", got=str(d))
    return d % rank


class FlattenAttrs(OpAttrs):
    start: int = 0  # per-sample dims: 0 is channels
    end: int = -1


@register_op
class Flatten(Op[FlattenAttrs]):
    """Merge per-sample dims ``start..end`` (inclusive) into one:
    ``(C, H, W) -> (C*H*W,)`` by default; ``start`` must not come after ``end``."""

    name = "flatten"
    Attrs = FlattenAttrs
    torch_names = ("torch.flatten",)

    def _range(self, a: FlattenAttrs, x: Shape) -> tuple[int, int]:
        s, e = _dim("flatten", "start", a.start, x), _dim("flatten", "end", a.end, x)
        if s > e:
            raise ShapeError(f"flatten: start {a.start} comes after end {a.end} in the input {fmt(x)}",
                             expected="start <= end", got=f"start={a.start}, end={a.end}")
        return s, e

    def infer(self, a: FlattenAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        s, e = self._range(a, x)
        return (*x[:s], prod(x[s:e + 1]), *x[e + 1:])

    def call(self, a: FlattenAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        s, e = self._range(a, shapes[0])
        return torch.flatten, (args[0],), {"start_dim": s + 1, "end_dim": e + 1}  # + batch

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        kw = kwargs or {}
        start, end = kw.get("start_dim", 0), kw.get("end_dim", -1)
        return {"start": start - 1 if start >= 0 else start, "end": end - 1 if end >= 0 else end}  # - batch


class ReshapeAttrs(OpAttrs):
    shape: list[int] = Field(min_length=1)  # per-sample; at most one -1, inferred

    @field_validator("shape")
    @classmethod
    def _check(cls, v: list[int]) -> list[int]:
        if any(d < 1 and d != -1 for d in v):
            raise ValueError("reshape: every entry must be >= 1, or -1 for the one inferred dim")
        if v.count(-1) > 1:
            raise ValueError("reshape: at most one entry may be -1")
        return v


@register_op
class Reshape(Op[ReshapeAttrs]):
    """View the per-sample tensor as ``shape`` (one entry may be ``-1``, inferred);
    the element count must stay the same. ``(C, H, W) -> shape``."""

    name = "reshape"
    Attrs = ReshapeAttrs
    torch_names = ("torch.reshape",)

    def infer(self, a: ReshapeAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        total = prod(x)
        if -1 in a.shape:
            known = prod([d for d in a.shape if d != -1])
            if total % known:
                raise ShapeError(
                    f"reshape: the {total} elements of {fmt(x)} do not divide into {a.shape}",
                    expected=f"an element count divisible by {known}", got=f"{fmt(x)} ({total} elements)",
                )
            return tuple(total // known if d == -1 else d for d in a.shape)
        if prod(a.shape) != total:
            raise ShapeError(
                f"reshape: {a.shape} holds {prod(a.shape)} elements but the input {fmt(x)} has {total}",
                expected=f"{total} elements", got=f"{prod(a.shape)} elements",
            )
        return tuple(a.shape)

    def call(self, a: ReshapeAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        return torch.reshape, (args[0], (-1, *self.infer(a, shapes))), {}  # -1: the batch

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"shape": list(args[1][1:])}  # after the batch


class DropoutAttrs(OpAttrs):
    p: Annotated[float, Field(ge=0, le=1)] = 0.5


@register_op
class Dropout(Op[DropoutAttrs]):
    """Dropout (``nn.Dropout``): zeroes elements with probability ``p`` in training.
    Shape kept; a module so that ``model.eval()`` turns it off."""

    name = "dropout"
    Attrs = DropoutAttrs
    stateless = False
    draw = "pointwise"
    ctor = ((), {"p": 0.5})
    torch_names = ("torch.nn.Dropout",)

    def infer(self, a: DropoutAttrs, shapes: Sequence[Shape]) -> Shape:
        return shapes[0]

    def module(self, a: DropoutAttrs, shapes: Sequence[Shape]) -> Any:
        from torch import nn

        return nn.Dropout(a.p)

    def label(self, a: DropoutAttrs, shapes: Sequence[Shape | None]) -> str:
        return f"dropout {a.p}"

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"p": target.p}


@register_op
class Identity(Op[OpAttrs]):
    """Passes its input through; emits no node. Shape kept."""

    name = "identity"
    draw = "pointwise"
    passthrough = True
    torch_names = ("torch.nn.Identity",)

    def infer(self, a: OpAttrs, shapes: Sequence[Shape]) -> Shape:
        return shapes[0]

    def emit(self, graph: Any, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Any:
        return args[0]
