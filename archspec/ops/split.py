"""Multi-output ops: ``split`` and ``chunk``. Each output is addressed as ``name.0``,
``name.1``, ... in a spec; in the IR the op's own node stands for the tuple (its shape is
its input's: the outputs put back together) and one node per output selects from it
(``Node.output``), with the output's shape from :meth:`Op.outputs`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from ..errors import ShapeError
from .base import Call, Op, OpAttrs, PosInt, Shape, fmt, register_op


def _dim(op: str, d: int, x: Shape) -> int:
    rank = len(x)
    if not -rank <= d < rank:
        raise ShapeError(f"{op}: dim {d} is out of range for the {rank}-d input {fmt(x)}",
                         expected=f"-{rank} <= dim < {rank}", got=str(d))
    return d % rank


class SplitAttrs(OpAttrs):
    sizes: list[PosInt] = Field(min_length=1, description="The size of each output along dim; they add up to the "
                                                          "input's size there.")
    dim: int = 0  # per-sample dim: 0 is channels


@register_op
class Split(Op[SplitAttrs]):
    """Split along ``dim`` (channels by default) into pieces of ``sizes``, which must add
    up to the input's size there; output k is ``name.k``: ``(C, H, W) -> (sizes[k], H, W)``."""

    name = "split"
    Attrs = SplitAttrs
    torch_names = ("torch.split",)

    def outputs(self, a: SplitAttrs, shapes: Sequence[Shape]) -> list[Shape]:
        (x,) = shapes
        d = _dim("split", a.dim, x)
        if sum(a.sizes) != x[d]:
            raise ShapeError(f"split: sizes {a.sizes} add up to {sum(a.sizes)}, but dim {a.dim} of the input "
                             f"{fmt(x)} is {x[d]}", expected=f"sizes adding up to {x[d]}", got=str(a.sizes),
                             fix="make the sizes add up to the input's size (per-sample dims: channels are 0)")
        return [(*x[:d], s, *x[d + 1:]) for s in a.sizes]

    def infer(self, a: SplitAttrs, shapes: Sequence[Shape]) -> Shape:
        self.outputs(a, shapes)
        return shapes[0]

    def label(self, a: SplitAttrs, shapes: Sequence[Shape | None]) -> str:
        return f"split {'/'.join(map(str, a.sizes))}" + (f" dim {a.dim}" if a.dim else "")

    def call(self, a: SplitAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        return torch.split, (args[0], list(a.sizes)), {"dim": _dim("split", a.dim, shapes[0]) + 1}  # + batch

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        sizes = args[1]
        dim = (kwargs or {}).get("dim", args[2] if len(args) > 2 else 0)
        if isinstance(sizes, int):  # torch.split(x, 2): pieces of 2, the last smaller
            n = shapes[0][dim - 1]
            sizes = [sizes] * (n // sizes) + ([n % sizes] if n % sizes else [])
        return {"sizes": list(sizes), "dim": dim - 1}  # - batch


class ChunkAttrs(OpAttrs):
    chunks: PosInt = Field(description="How many pieces to cut dim into (as torch.chunk: fewer when they do not "
                                       "fill it).")
    dim: int = 0  # per-sample dim: 0 is channels


@register_op
class Chunk(Op[ChunkAttrs]):
    """Split along ``dim`` into ``chunks`` pieces as ``torch.chunk`` does: each of size
    ``ceil(n / chunks)``, the last smaller, and fewer pieces when ``n`` does not fill them
    (6 in 4 chunks gives 3 of 2); output k is ``name.k``."""

    name = "chunk"
    Attrs = ChunkAttrs
    torch_names = ("torch.chunk",)

    def outputs(self, a: ChunkAttrs, shapes: Sequence[Shape]) -> list[Shape]:
        (x,) = shapes
        d = _dim("chunk", a.dim, x)
        n = x[d]
        size = -(-n // a.chunks)
        return [(*x[:d], min(size, n - k), *x[d + 1:]) for k in range(0, n, size)]

    def infer(self, a: ChunkAttrs, shapes: Sequence[Shape]) -> Shape:
        self.outputs(a, shapes)
        return shapes[0]

    def label(self, a: ChunkAttrs, shapes: Sequence[Shape | None]) -> str:
        return f"chunk {a.chunks}" + (f" dim {a.dim}" if a.dim else "")

    def call(self, a: ChunkAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        return torch.chunk, (args[0], a.chunks), {"dim": _dim("chunk", a.dim, shapes[0]) + 1}  # + batch

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        dim = (kwargs or {}).get("dim", args[2] if len(args) > 2 else 0)
        return {"chunks": args[1], "dim": dim - 1}  # - batch
