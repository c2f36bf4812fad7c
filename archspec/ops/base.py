"""The op contract and the closed registry.

An op is a small class: its ``name`` is the ``op:`` tag in YAML, the registry key and
the render label; ``Attrs`` is a strict pydantic model of its attributes; ``infer``
is the pure-Python shape rule; ``module``/``call`` build the torch side lazily.

Shapes are per-sample tuples, batch excluded: ``(C, H, W)`` for images, ``(F,)`` for
vectors. Attributes that name a dimension (``dim``) count in that per-sample shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ArchSpecError, ShapeError, UnknownOpError, close_matches

Shape = tuple[int, ...]
Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]  # (function, args, kwargs)


# Attribute types shared by the op families.
PosInt = Annotated[int, Field(ge=1)]
NonNeg = Annotated[int, Field(ge=0)]
IntOrList = PosInt | list[PosInt]  # one size for every spatial dim, or one per dim


class OpAttrs(BaseModel):
    """Base of every op's attribute model: frozen, strict, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


@dataclass(frozen=True, slots=True)
class Window:
    """Per spatial dim: how one output position looks at the input, for receptive fields.

    ``stride`` may be fractional for up-sampling (``0.5`` doubles resolution).
    ``glob`` marks ops whose every output sees the whole input (global pooling, linear).
    """

    kernel: tuple[int, ...] = ()
    stride: tuple[float, ...] = ()
    dilation: tuple[int, ...] = ()
    glob: bool = False


class Op:
    """Base class of every op. Subclasses set ``name`` and override what applies."""

    name: ClassVar[str]
    family: ClassVar[str] = "misc"
    Attrs: ClassVar[type[OpAttrs]] = OpAttrs
    arity: ClassVar[tuple[int, int | None]] = (1, 1)  # (min, max) inputs; None = unbounded
    stateless: ClassVar[bool] = True  # True: emitted as call_function, no module
    projectable: ClassVar[bool] = False  # merges whose mismatched inputs get auto projections
    doc: ClassVar[str] = ""
    # What autograd does with this op's tensors; the in-place pass (passes/inplace.py) reads
    # these to decide where a later op may overwrite the output. Conservative defaults.
    fresh_output: ClassVar[bool] = False  # the output is a new tensor: never an input, a view of one, or state
    saves_output: ClassVar[bool] = False  # backward reads the output, so nothing may overwrite it
    inplace_saves_output: ClassVar[bool] = True  # the same, for the in-place form (see `inplace`)

    # -- pure Python: no torch below this line unless inside a method that builds ----
    def infer(self, a: Any, shapes: Sequence[Shape]) -> Shape:
        """The output shape; raises ShapeError saying what and why."""
        raise NotImplementedError

    def params(self, a: Any, shapes: Sequence[Shape]) -> int:
        """Number of learnable parameters."""
        return 0

    def macs(self, a: Any, shapes: Sequence[Shape], out: Shape) -> int:
        """Multiply-accumulates of the weighted ops (conv, conv_transpose, linear); 0 otherwise."""
        return 0

    def window(self, a: Any, shapes: Sequence[Shape]) -> Window | None:
        """Receptive-field data; ``None`` for pointwise ops that keep the field."""
        return None

    # -- torch side -----------------------------------------------------------------
    def module(self, a: Any, shapes: Sequence[Shape]) -> Any:
        """The ``nn.Module`` of a stateful op."""
        raise NotImplementedError(f"op '{self.name}' has no module")

    def call(self, a: Any, shapes: Sequence[Shape], args: list[Any]) -> Call:
        """``(function, args, kwargs)`` of a stateless op, given its fx input nodes."""
        raise NotImplementedError(f"op '{self.name}' has no function")

    def inplace(self, a: Any, shapes: Sequence[Shape], args: list[Any], slot: int) -> Call | None:
        """The call computing this op by overwriting input ``slot`` with the result, or
        ``None`` when there is none (or autograd could not differentiate it).

        Its backward may read the result but never the overwritten input."""
        return None

    def emit(self, graph: Any, a: Any, shapes: Sequence[Shape], args: list[Any]) -> Any:
        """Add this stateless op to a ``torch.fx.Graph``; returns the node holding its result."""
        fn, fargs, kwargs = self.call(a, shapes, args)
        return graph.call_function(fn, fargs, kwargs)

    def __repr__(self) -> str:
        return f"<op {self.name}>"


class Registry:
    """The closed op registry. Registering a name twice is an error, not a warning."""

    def __init__(self) -> None:
        self._ops: dict[str, Op] = {}
        self.version = 0
        self._entry_points_loaded = False

    def register(self, op: type[Op] | Op, *, replace: bool = False) -> Op:
        inst = op() if isinstance(op, type) else op
        name = getattr(inst, "name", None)
        if not isinstance(name, str) or not name.isidentifier():
            raise ArchSpecError(f"op name {name!r} is not an identifier")
        if name in self._ops and not replace:
            raise ArchSpecError(
                f"op '{name}' is already registered",
                fix="pick another name, or pass replace=True to override it on purpose",
            )
        if not (isinstance(inst.Attrs, type) and issubclass(inst.Attrs, OpAttrs)):
            raise ArchSpecError(f"op '{name}': Attrs must subclass archspec.OpAttrs")
        self._ops[name] = inst
        self.version += 1
        return inst

    def unregister(self, name: str) -> None:
        del self._ops[name]
        self.version += 1

    def get(self, name: str) -> Op:
        self.load_entry_points()
        try:
            return self._ops[name]
        except KeyError:
            raise UnknownOpError(
                f"unknown op '{name}'{close_matches(name, self._ops)}",
                fix="run `archspec ops` for the list of ops, or register your own with archspec.register_op",
            ) from None

    def names(self) -> list[str]:
        self.load_entry_points()
        return list(self._ops)

    def __contains__(self, name: object) -> bool:
        self.load_entry_points()
        return name in self._ops

    def load_entry_points(self) -> None:
        """Ops from installed packages (entry-point group ``archspec.ops``).

        Only installed distributions are consulted; a spec can never name code to load.
        """
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group="archspec.ops"):
            obj = ep.load()
            for op in obj if isinstance(obj, (list, tuple)) else [obj]:
                self.register(op)


REGISTRY = Registry()


def register_op(op: type[Op] | Op | None = None, *, replace: bool = False) -> Any:
    """Add an op to the registry; usable as a class decorator.

    >>> from archspec.ops.base import Op, register_op
    >>> @register_op
    ... class Square(Op):
    ...     name = "square_doc"
    ...     def infer(self, a, shapes): return shapes[0]
    >>> REGISTRY.get("square_doc").name
    'square_doc'
    >>> REGISTRY.unregister("square_doc")
    """

    def deco(cls: type[Op] | Op) -> Any:
        REGISTRY.register(cls, replace=replace)
        return cls

    return deco if op is None else deco(op)


# -- helpers shared by op rules -------------------------------------------------------

def fmt(shape: Sequence[int] | None) -> str:
    """``3x32x32`` — the way every message writes a shape."""
    if shape is None:
        return "?"
    return "x".join(str(d) for d in shape) if shape else "scalar"


def spatial_rank(op: str, shape: Shape, ranks: Sequence[int] = (1, 2, 3)) -> int:
    """Number of spatial dims of a ``(C, *spatial)`` input; error if not allowed."""
    r = len(shape) - 1
    if r not in ranks:
        want = " or ".join(f"{k + 1}-d (C{', L' if k == 1 else ''}{', H, W' if k == 2 else ''}{', D, H, W' if k == 3 else ''})" for k in ranks)
        raise ShapeError(f"{op} expects a {want} per-sample input, got {fmt(shape)}",
                         expected=want, got=fmt(shape))
    return r


def tuplify(v: int | Sequence[int], n: int, what: str) -> tuple[int, ...]:
    """Broadcast an int to ``n`` dims, or check a list has ``n`` entries."""
    if isinstance(v, int):
        return (v,) * n
    t = tuple(v)
    if len(t) != n:
        raise ShapeError(f"{what} has {len(t)} entries but the input has {n} spatial dims",
                         expected=f"an int or a list of {n}", got=str(list(t)))
    return t


def conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    """floor((size + 2p - d(k-1) - 1) / s) + 1 — PyTorch's conv and pool size rule."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def prod(xs: Sequence[int]) -> int:
    return math.prod(xs)


def same_shapes(op: str, shapes: Sequence[Shape]) -> Shape:
    """The common shape of a merge's inputs, or a ShapeError naming the first mismatch."""
    first = shapes[0]
    for i, s in enumerate(shapes[1:], start=1):
        if s != first:
            raise ShapeError(
                f"{op} inputs differ: input 0 is {fmt(first)}, input {i} is {fmt(s)}",
                expected=fmt(first), got=fmt(s),
                fix="make the shapes equal, or let archspec project them (defaults.projection)",
            )
    return first


# What an attribute means, for the JSON Schema's descriptions (hover in an editor). An op
# whose attribute means something else says so with Field(description=...) on its Attrs.
ATTR_DOCS: dict[str, str] = {
    "out": "Output channels (conv) or output features (linear).",
    "k": "Kernel size: one int for every spatial dim, or a list with one per dim.",
    "stride": "Step between windows: an int, or one per spatial dim.",
    "padding": "Zeros added on each side: an int or one per spatial dim; conv also takes auto (keep the size "
               "at stride 1), same or valid.",
    "dilation": "Spacing between kernel elements (1: a dense kernel).",
    "groups": "conv: channels split into this many groups (groups = channels is depthwise); groupnorm: the "
              "number of channel groups.",
    "bias": "Learn an additive bias.",
    "padding_mode": "How conv pads: zeros, reflect, replicate or circular.",
    "output_padding": "Extra rows/columns on one side of a transposed conv's output, choosing among the sizes "
                      "that a stride maps to the same input size.",
    "slope": "Slope for negative inputs (torch's negative_slope).",
    "approximate": "tanh uses the tanh approximation of GELU; none the exact erf form.",
    "alpha": "ELU's value for large negative inputs.",
    "dim": "A per-sample dim (0 is channels; the batch is not counted): softmax normalises over it, concat "
           "joins along it.",
    "start": "First per-sample dim to flatten (0 is channels).",
    "end": "Last per-sample dim to flatten (-1: the last).",
    "shape": "The per-sample output shape; at most one -1, inferred from the element count.",
    "p": "Probability of zeroing an element, in training only.",
    "eps": "Added to the variance for numerical stability.",
    "momentum": "Weight of each new batch in the running statistics (null: a cumulative average).",
    "affine": "Learn a per-channel scale and shift.",
    "track_running_stats": "Keep a running mean and variance, used in eval mode.",
    "dims": "Normalise over the last this many per-sample dims.",
    "elementwise_affine": "Learn a per-element scale (and bias) over the normalised dims.",
    "ceil_mode": "Round the output size up instead of down.",
    "count_include_pad": "Count the padding zeros in each average.",
    "size": "Output spatial size: an int or one per spatial dim (adaptive pooling: 1 is global pooling).",
    "scale": "Up-sampling factor: a number or one per spatial dim.",
    "mode": "Interpolation: nearest, linear, bilinear, bicubic, trilinear or area.",
    "align_corners": "Align the corner pixels of input and output (interpolating modes only; null is false).",
}
