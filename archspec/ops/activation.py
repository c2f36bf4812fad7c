"""Activations: point-wise, stateless, shape-preserving (``x -> x``).

Every activation is a plain function call (``torch.relu``,
``torch.nn.functional.gelu``, ...). Those whose backward reads only their result
(relu, relu6, hardtanh, leaky_relu with a non-negative slope, sigmoid, tanh) also have an
in-place form, which the emitter uses where the graph proves that no other op reads
the overwritten tensor (archspec/passes/inplace.py). elu has none: its gradient from the
result, ``grad * (result + alpha)``, rounds differently from the one from the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from ..errors import ShapeError
from .base import A, Call, Op, OpAttrs, PosInt, Shape, fmt, register_op, torch_object


class _Pointwise(Op[A]):
    """Shape rule of every activation: the output has the input's shape."""

    family = "activation"
    fresh_output = True

    def infer(self, a: A, shapes: Sequence[Shape]) -> Shape:
        return shapes[0]


class _Plain(_Pointwise[OpAttrs]):
    """An activation without attributes: the torch function ``torch_names[0]`` of its input."""

    # The function that computes it by overwriting its input (None: there is none); the
    # op's own function here means that function called with ``inplace=True``.
    inplace_name: ClassVar[str | None] = None

    def call(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        return torch_object(self.torch_names[0]), (args[0],), {}

    def inplace(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any], slot: int) -> Call | None:
        if self.inplace_name is None:
            return None
        kwargs = {"inplace": True} if self.inplace_name == self.torch_names[0] else {}
        return torch_object(self.inplace_name), (args[0],), kwargs


def _plain(name: str, doc: str, *torch_names: str, inplace: str | None = None, saves_output: bool = False) -> None:
    """Register the attribute-less activation ``name``: ``torch_names[0](x)``, documented by ``doc``.

    Each is declared where its class would stand, so the registry keeps the ops in file order."""
    register_op(type(name, (_Plain,), {"__doc__": doc, "name": name, "torch_names": torch_names,
                                       "inplace_name": inplace, "saves_output": saves_output}))


_plain("relu", "``max(x, 0)``. Shape kept.", "torch.relu", "torch.nn.functional.relu",
       inplace="torch.relu_", saves_output=True)


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


_plain("silu", "``x * sigmoid(x)`` (swish). Shape kept.", "torch.nn.functional.silu")
_plain("sigmoid", "``1 / (1 + exp(-x))``. Shape kept.", "torch.sigmoid", inplace="torch.sigmoid_",
       saves_output=True)
_plain("tanh", "Hyperbolic tangent. Shape kept.", "torch.tanh", inplace="torch.tanh_", saves_output=True)
_plain("hardswish", "``x * relu6(x + 3) / 6`` (MobileNetV3). Shape kept.", "torch.nn.functional.hardswish")
# In place its backward reads the result, whose (0, 6) interior is the input's.
_plain("relu6", "``min(max(x, 0), 6)`` (MobileNetV2). Shape kept.", "torch.nn.functional.relu6",
       inplace="torch.nn.functional.relu6")
_plain("hardsigmoid", "``relu6(x + 3) / 6`` (MobileNetV3's gates). Shape kept.",
       "torch.nn.functional.hardsigmoid")


class HardtanhAttrs(OpAttrs):
    min: float = Field(-1.0, description="Lower bound of the output (torch's min_val).")
    max: float = Field(1.0, description="Upper bound of the output (torch's max_val).")

    @model_validator(mode="after")
    def _check(self) -> HardtanhAttrs:
        if not self.max > self.min:
            raise ValueError(f"hardtanh: max ({self.max}) must be greater than min ({self.min})")
        return self


@register_op
class Hardtanh(_Pointwise[HardtanhAttrs]):
    """``x`` clamped to ``[min, max]`` (default ``[-1, 1]``); ``max > min``. Shape kept."""

    name = "hardtanh"
    torch_names = ("torch.nn.functional.hardtanh",)
    Attrs = HardtanhAttrs

    def call(self, a: HardtanhAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch.nn.functional as F

        return F.hardtanh, (args[0],), {"min_val": a.min, "max_val": a.max}

    def inplace(self, a: HardtanhAttrs, shapes: Sequence[Shape], args: list[Any], slot: int) -> Call | None:
        import torch.nn.functional as F

        # In place its backward reads the result, whose (min, max) interior is the input's.
        return F.hardtanh, (args[0],), {"min_val": a.min, "max_val": a.max, "inplace": True}

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        kw = kwargs or {}
        return {"min": kw.get("min_val", -1.0), "max": kw.get("max_val", 1.0)}


class SoftplusAttrs(OpAttrs):
    beta: Annotated[float, Field(gt=0, description="Sharpness: softplus is log(1 + exp(beta * x)) / beta.")] = 1.0
    threshold: float = Field(20.0, description="Above beta * x > threshold the output is x itself "
                                               "(for numerical stability).")


@register_op
class Softplus(_Pointwise[SoftplusAttrs]):
    """``log(1 + exp(beta * x)) / beta``, and ``x`` where ``beta * x > threshold``. Shape kept."""

    name = "softplus"
    torch_names = ("torch.nn.functional.softplus",)
    Attrs = SoftplusAttrs

    def call(self, a: SoftplusAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch.nn.functional as F

        return F.softplus, (args[0],), {"beta": a.beta, "threshold": a.threshold}

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        kw = kwargs or {}
        return {"beta": kw.get("beta", 1.0), "threshold": kw.get("threshold", 20.0)}


_plain("mish", "``x * tanh(softplus(x))``. Shape kept.", "torch.nn.functional.mish")


class PReLUAttrs(OpAttrs):
    num_parameters: PosInt = Field(1, description="Learned slopes: 1 (shared) or the number of channels "
                                                  "(one per channel).")
    init: float = Field(0.25, description="Initial value of every learned slope.")


@register_op
class PReLU(_Pointwise[PReLUAttrs]):
    """``x if x > 0 else w * x`` with learned slopes ``w``: one shared (``num_parameters: 1``)
    or one per channel (``num_parameters`` = C of a ``(C, *)`` input); state ``weight``
    of shape ``(num_parameters,)``, as ``nn.PReLU``. Shape kept."""

    name = "prelu"
    Attrs = PReLUAttrs
    stateless = False
    ctor = ((), {"num_parameters": 1, "init": 0.25})
    torch_names = ("torch.nn.PReLU",)

    def infer(self, a: PReLUAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        if a.num_parameters != 1 and (not x or x[0] != a.num_parameters):
            channels = f"the {x[0]} channels of" if x else "a channel of"
            raise ShapeError(
                f"prelu: num_parameters={a.num_parameters} is neither 1 nor {channels} the input {fmt(x)}",
                expected=f"1{f' or {x[0]}' if x else ''}", got=str(a.num_parameters),
                fix=f"use num_parameters: 1 for one shared slope{f', or {x[0]} for one per channel' if x else ''}")
        return x

    def params(self, a: PReLUAttrs, shapes: Sequence[Shape]) -> int:
        return a.num_parameters

    def module(self, a: PReLUAttrs, shapes: Sequence[Shape]) -> Any:
        from torch import nn

        return nn.PReLU(a.num_parameters, init=a.init)

    def label(self, a: PReLUAttrs, shapes: Sequence[Shape | None]) -> str:
        return "prelu" if a.num_parameters == 1 else "prelu/ch"

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"num_parameters": target.num_parameters, "init": float(target.init)}


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

