"""Activations: point-wise, stateless, shape-preserving (``x -> x``).

Every activation is a plain function call (``torch.relu``,
``torch.nn.functional.gelu``, ...). Those whose backward reads only their result
(relu, leaky_relu with a non-negative slope, sigmoid, tanh) also have an
in-place form, which the emitter uses where the graph proves that no other op reads
the overwritten tensor (archspec/passes/inplace.py). elu has none: its gradient from the
result, ``grad * (result + alpha)``, rounds differently from the one from the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..errors import ShapeError
from .base import A, Call, Op, OpAttrs, Shape, fmt, register_op


class _Pointwise(Op[A]):
    """Shape rule of every activation: the output has the input's shape."""

    family = "activation"
    fresh_output = True

    def infer(self, a: A, shapes: Sequence[Shape]) -> Shape:
        return shapes[0]


@register_op
class ReLU(_Pointwise[OpAttrs]):
    """``max(x, 0)``. Shape kept."""

    name = "relu"
    torch_names = ("torch.relu", "torch.nn.functional.relu")
    saves_output = True

    def call(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        return torch.relu, (args[0],), {}

    def inplace(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any], slot: int) -> Call | None:
        import torch

        return torch.relu_, (args[0],), {}


class LeakyReLUAttrs(OpAttrs):
    slope: float = 0.01  # negative_slope


@register_op
class LeakyReLU(_Pointwise[LeakyReLUAttrs]):
    """``x if x > 0 else slope * x``. Shape kept."""

    name = "leaky_relu"
    torch_names = ("torch.nn.functional.leaky_relu",)
    Attrs = LeakyReLUAttrs

    def call(self, a: LeakyReLUAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch.nn.functional as F

        return F.leaky_relu, (args[0],), {"negative_slope": a.slope}

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"slope": (kwargs or {}).get("negative_slope", 0.01)}
    def inplace(self, a: LeakyReLUAttrs, shapes: Sequence[Shape], args: list[Any], slot: int) -> Call | None:
        import torch.nn.functional as F

        # In place, backward reads the result: torch refuses that for a negative slope.
        return (F.leaky_relu, (args[0],), {"negative_slope": a.slope, "inplace": True}) if a.slope >= 0 else None


class GELUAttrs(OpAttrs):
    approximate: Literal["none", "tanh"] = "none"


@register_op
class GELU(_Pointwise[GELUAttrs]):
    """Gaussian error linear unit, exact (``none``) or its ``tanh`` approximation. Shape kept."""

    name = "gelu"
    torch_names = ("torch.nn.functional.gelu",)
    Attrs = GELUAttrs

    def call(self, a: GELUAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch.nn.functional as F

        return F.gelu, (args[0],), {"approximate": a.approximate}

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"approximate": (kwargs or {}).get("approximate", "none")}


@register_op
class SiLU(_Pointwise[OpAttrs]):
    """``x * sigmoid(x)`` (swish). Shape kept."""

    name = "silu"
    torch_names = ("torch.nn.functional.silu",)

    def call(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch.nn.functional as F

        return F.silu, (args[0],), {}


@register_op
class Sigmoid(_Pointwise[OpAttrs]):
    """``1 / (1 + exp(-x))``. Shape kept."""

    name = "sigmoid"
    torch_names = ("torch.sigmoid",)
    saves_output = True

    def call(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        return torch.sigmoid, (args[0],), {}

    def inplace(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any], slot: int) -> Call | None:
        import torch

        return torch.sigmoid_, (args[0],), {}


@register_op
class Tanh(_Pointwise[OpAttrs]):
    """Hyperbolic tangent. Shape kept."""

    name = "tanh"
    torch_names = ("torch.tanh",)
    saves_output = True

    def call(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        return torch.tanh, (args[0],), {}

    def inplace(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any], slot: int) -> Call | None:
        import torch

        return torch.tanh_, (args[0],), {}


@register_op
class Hardswish(_Pointwise[OpAttrs]):
    """``x * relu6(x + 3) / 6`` (MobileNetV3). Shape kept."""

    name = "hardswish"
    torch_names = ("torch.nn.functional.hardswish",)

    def call(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch.nn.functional as F

        return F.hardswish, (args[0],), {}


class ELUAttrs(OpAttrs):
    alpha: float = 1.0


@register_op
class ELU(_Pointwise[ELUAttrs]):
    """``x if x > 0 else alpha * (exp(x) - 1)``. Shape kept."""

    name = "elu"
    torch_names = ("torch.nn.functional.elu",)
    Attrs = ELUAttrs

    def call(self, a: ELUAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch.nn.functional as F

        return F.elu, (args[0],), {"alpha": a.alpha}

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"alpha": (kwargs or {}).get("alpha", 1.0)}


class SoftmaxAttrs(OpAttrs):
    dim: int = 0  # per-sample dim: 0 is channels (or the features of an (F,) vector)


@register_op
class Softmax(_Pointwise[SoftmaxAttrs]):
    """Softmax along per-sample ``dim`` (default 0: channels / features). Shape kept;
    ``dim`` must lie in ``[-rank, rank)`` of the per-sample shape."""

    name = "softmax"
    fold = False  # a distribution, drawn as a step of its own
    torch_names = ("torch.softmax",)
    Attrs = SoftmaxAttrs
    saves_output = True

    def infer(self, a: SoftmaxAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        rank = len(x)
        if not -rank <= a.dim < rank:
            raise ShapeError(f"softmax: dim {a.dim} is out of range for the {rank}-d input {fmt(x)}",
                             expected=f"-{rank} <= dim < {rank}", got=str(a.dim))
        return x

    def call(self, a: SoftmaxAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch

        return torch.softmax, (args[0],), {"dim": a.dim % len(shapes[0]) + 1}  # + batch

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"dim": (kwargs or {})["dim"] - 1}  # - batch

