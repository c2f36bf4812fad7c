"""Merges: ``add``, ``mul``, ``sub``, ``lerp`` (element-wise, broadcasting) and ``concat``.

The element-wise merges broadcast per-sample dims of size 1 as torch does (a C×1×1 gate
or a 1×H×W attention map times C×H×W features). Only the residual ``add`` is mended
when its inputs cannot broadcast: the project pass inserts a projection on every input
whose shape differs from input 0's, by the policy of ``defaults.projection`` or of the
node's own ``projection:``. A ``mul``, ``sub`` or ``lerp`` that cannot broadcast is an error.
``concat`` never projects: all dims but ``dim`` must match.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field

from ..errors import ShapeError
from .base import Call, Op, OpAttrs, Shape, Window, broadcast_shapes, fmt, register_op, torch_object

ProjectionKind = Literal["conv", "conv_bn", "avgpool_conv_bn", "zero_pad", "none"]
# A projection's module name is an identifier: names.IDENT_PATTERN, which ops cannot import
# (names imports the IR, which imports the ops); tests/test_broadcast.py holds them equal.
PROJECTION_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
KIND_DOC = ("conv: a bare 1x1 conv, stride = spatial ratio (the pre-activation / wide ResNet shortcut); conv_bn: "
            "1x1 conv, then batch norm (ResNet option B); avgpool_conv_bn: average pool, then 1x1 conv and bn "
            "(ResNet-D); zero_pad: subsample and append zero channels, no parameters (option A); none: a "
            "mismatch is an error.")
NAME_DOC = "Module name of the inserted projection (torchvision's: downsample)."
BIAS_DOC = "Give the projection's 1x1 conv (or linear) a bias."


class ProjectionAttrs(OpAttrs):
    """One merge's own projection policy: what it gives overrides ``defaults.projection``."""

    kind: ProjectionKind | None = Field(None, description=KIND_DOC)
    name: Annotated[str, Field(pattern=PROJECTION_NAME)] | None = Field(None, description=NAME_DOC)
    bias: bool | None = Field(None, description=BIAS_DOC)


class MergeAttrs(OpAttrs):
    projection: ProjectionAttrs | None = Field(
        None, description="This merge's projection policy, over defaults.projection: {kind: conv|conv_bn|"
                          "avgpool_conv_bn|zero_pad|none, name: .., bias: false}.")


class _Elementwise(Op[OpAttrs]):
    """An element-wise merge: its inputs broadcast per-sample dims of size 1, as torch does."""

    family = "merge"
    fresh_output = True
    broadcasts = True
    broadcast_fix = ("broadcasting stretches only dims of size 1: pool one input to size 1 (adaptive_avgpool "
                     "size: 1), or resample it (upsample, pool, a strided conv) so the sizes agree")

    def infer(self, a: OpAttrs, shapes: Sequence[Shape]) -> Shape:
        return broadcast_shapes(self.name, shapes, self.broadcast_fix)

    def call(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        return torch_object(self.torch_names[0]), tuple(args), {}  # its function, of all the inputs


@register_op
class Add(_Elementwise):
    """Sum of two or more tensors — the residual merge. Inputs broadcast dims of size 1;
    when they cannot, every input whose shape differs from input 0's is projected onto
    it (``projection:`` on the node, or ``defaults.projection``)."""

    name = "add"
    Attrs = MergeAttrs
    arity = (2, None)
    residual = True
    projectable = True
    broadcast_fix = ("make the shapes broadcast, or let archspec project them (projection: {kind: conv_bn} on "
                     "the node or in defaults)")
    torch_names = ("operator.add",)
    inplace_saves_output = False  # the gradient of a sum reads neither operand nor result

    def call(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        return operator.add, tuple(args), {}

    def inplace(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any], slot: int) -> Call | None:
        # `out += identity`; either operand of a binary add may be the one overwritten,
        # since floating-point addition is commutative (exactly).
        if len(args) != 2:
            return None
        return operator.iadd, (args[slot], args[1 - slot]), {}

    def emit(self, graph: Any, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Any:
        # Three or more inputs: a left-to-right chain of binary adds, as Python writes a + b + c.
        node = graph.call_function(operator.add, (args[0], args[1]))
        for arg in args[2:]:
            node = graph.call_function(operator.add, (node, arg))
        return node


@register_op
class Mul(_Elementwise):
    """Element-wise product of two or more tensors (gates, attention). Inputs broadcast dims
    of size 1 (a C×1×1 gate or a 1×H×W map times C×H×W features); a ``mul`` never inserts a
    projection, so inputs that cannot broadcast are an error."""

    name = "mul"
    arity = (2, None)
    torch_names = ("operator.mul",)


@register_op
class Sub(_Elementwise):
    """``a - b``: the difference of two tensors. Inputs broadcast dims of size 1; ``sub``
    never inserts a projection."""

    name = "sub"
    arity = (2, 2)
    torch_names = ("operator.sub",)


@register_op
class Lerp(_Elementwise):
    """``torch.lerp(x, h, t) = t*h + (1-t)*x`` — the highway gate; inputs ``[x, h, t]``.

    ``x`` is the carried input, ``h`` the transform, ``t`` the gate (usually a sigmoid).
    Inputs broadcast dims of size 1; ``lerp`` never inserts a projection.
    """

    name = "lerp"
    arity = (3, 3)
    torch_names = ("torch.lerp",)


class ConcatAttrs(OpAttrs):
    dim: int = 0  # per-sample dim: 0 is channels


@register_op
class Concat(Op[ConcatAttrs]):
    """Concatenation along ``dim`` (channels by default); other dims must match."""

    name = "concat"
    family = "merge"
    fresh_output = True
    Attrs = ConcatAttrs
    arity = (1, None)
    skip = "concat"
    torch_names = ("torch.cat",)

    def infer(self, a: ConcatAttrs, shapes: Sequence[Shape]) -> Shape:
        first = shapes[0]
        rank = len(first)
        if not -rank <= a.dim < rank:
            raise ShapeError(f"concat: dim {a.dim} is out of range for {rank}-d inputs {fmt(first)}",
                             expected=f"-{rank} <= dim < {rank}", got=str(a.dim))
        d = a.dim % rank
        total = 0
        for i, s in enumerate(shapes):
            if len(s) != rank or any(x != y for j, (x, y) in enumerate(zip(s, first, strict=True)) if j != d):
                what = "channels" if d == 0 else f"dim {a.dim}"
                fix = "resample one input (upsample, pool or a strided conv) so the sizes agree"
                pytorch_style = d == 1 and rank > 1 and all(len(x) == rank and x[1:] == first[1:] for x in shapes)
                if pytorch_style:
                    # `dim: 1` as PyTorch counts, batch included: the inputs would join along channels.
                    what += " (dims count per sample, the batch is not counted: channels are dim 0, and dim 1 is H)"
                    fix = "write dim: 0 (or leave dim out) to concatenate channels"
                raise ShapeError(
                    f"concat: input {i} is {fmt(s)} but input 0 is {fmt(first)}; "
                    f"all dims except {what} must match",
                    expected="x".join([*map(str, first[:d]), "*", *map(str, first[d + 1:])]),
                    got=fmt(s),
                    fix=fix,
                )
            total += s[d]
        return first[:d] + (total,) + first[d + 1:]

    def call(self, a: ConcatAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        d = a.dim % len(shapes[0]) + 1  # + batch
        return torch.cat, (tuple(args),), {"dim": d}

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"dim": (kwargs or {}).get("dim", 0) - 1}  # - batch


class ZeroPadAttrs(OpAttrs):
    out: Annotated[int, Field(ge=1)]
    stride: Annotated[int, Field(ge=1)] = 1


def zero_pad_shortcut(x: Any, stride: int, extra: int) -> Any:
    """ResNet option A: keep every ``stride``-th position, append ``extra`` zero channels."""
    import torch.nn.functional as F

    if stride > 1:
        x = x[(slice(None), slice(None)) + (slice(None, None, stride),) * (x.dim() - 2)]
    return F.pad(x, (0, 0) * (x.dim() - 2) + (0, extra)) if extra else x


@register_op
class ZeroPad(Op[ZeroPadAttrs]):
    """Parameter-free shortcut (ResNet option A): stride by sub-sampling, then zero
    channels appended up to ``out``. ``(C, *S) -> (out, *ceil(S/stride))``."""

    name = "zero_pad"
    family = "merge"
    Attrs = ZeroPadAttrs
    draw = "plain"  # a shortcut on one input, not a merge of several
    torch_names = ("archspec.ops.merge.zero_pad_shortcut",)

    def infer(self, a: ZeroPadAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        if len(x) < 1:
            raise ShapeError(f"zero_pad expects a (C, *spatial) input, got {fmt(x)}", got=fmt(x))
        if a.out < x[0]:
            raise ShapeError(f"zero_pad: out={a.out} is fewer than the {x[0]} input channels",
                             expected=f"out >= {x[0]}", got=str(a.out))
        return (a.out, *(-(-n // a.stride) for n in x[1:]))

    def window(self, a: ZeroPadAttrs, shapes: Sequence[Shape]) -> Window:
        r = len(shapes[0]) - 1  # sub-sampling: a 1-wide window every `stride` positions
        return Window(kernel=(1,) * r, stride=(float(a.stride),) * r, dilation=(1,) * r)

    def call(self, a: ZeroPadAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        return zero_pad_shortcut, (args[0], a.stride, a.out - shapes[0][0]), {}

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        _, stride, extra = args
        return {"out": shapes[0][0] + extra, "stride": stride}
