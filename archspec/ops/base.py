"""The op contract and the closed registry: an op's class is the one place that knows it.

An op is a small class: its ``name`` is the ``op:`` tag in YAML, the registry key and
the render label; ``Attrs`` is a strict pydantic model of its attributes; ``infer``
is the pure-Python shape rule; ``module``/``call`` build the torch side lazily; its
drawing role, label, init kind, export constructor and reverse mapping (torch class or
function, attributes read back) are declared beside them.

Shapes are per-sample tuples, batch excluded: ``(C, H, W)`` for images, ``(F,)`` for
vectors. Attributes that name a dimension (``dim``) count in that per-sample shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from ..errors import (
    ArchSpecError,
    Loc,
    OpDefinitionError,
    ShapeError,
    UnknownOpError,
    close_matches,
    fmt_int,
)

Shape = tuple[int, ...]
Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]  # (function, args, kwargs)


# Attribute types shared by the op families.
PosInt = Annotated[int, Field(ge=1)]
NonNeg = Annotated[int, Field(ge=0)]
IntOrList = PosInt | list[PosInt]  # one size for every spatial dim, or one per dim


class OpAttrs(BaseModel):
    """Base of every op's attribute model: frozen, strict, unknown keys rejected.

    Read like a mapping too: ``a["k"]``, ``a.get("k")``, ``a.items()``, and equal to a
    mapping of the same fields, as the IR's attributes were plain mappings before.
    """

    # Built on first use: `check` validates the attributes of the ops a spec uses, not all.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields and key not in (self.model_extra or {}):
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self) -> list[str]:
        return [k for k, _ in self]

    def items(self) -> list[tuple[str, Any]]:
        return list(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self) == dict(other)
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash((type(self), repr(dict(self))))


class RawAttrs(OpAttrs):
    """The attributes of a hand-built node that its op's model refuses (or whose op is
    unknown), kept as given: ``lint`` can still look at such a graph; no pass runs on it."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=False)


def frozen_attrs(op_name: str, attrs: Mapping[str, Any] | OpAttrs) -> OpAttrs:
    """The validated, frozen attribute model of a node of ``op_name``."""
    if isinstance(attrs, OpAttrs):
        return attrs
    if op_name in REGISTRY:
        try:
            return REGISTRY.get(op_name).Attrs.model_validate(dict(attrs))
        except ValueError:  # pydantic's ValidationError
            pass
    return RawAttrs(**dict(attrs))


@dataclass(frozen=True, slots=True)
class Window:
    """Per spatial dim: how one output position looks at the input, for receptive fields.

    Output position ``o`` sees the input positions ``floor(o*stride + start)`` to
    ``floor(o*stride + end)``; ``start``/``end`` left empty mean ``0`` and
    ``(kernel-1)*dilation`` (give them where padding or up-sampling shifts the window:
    a conv with padding ``p`` starts at ``-p``). ``stride`` may be fractional for
    up-sampling (``0.5`` doubles resolution). ``glob`` marks ops whose every output sees
    the whole input (global pooling, linear).
    ``perm`` reorders the spatial dims (``permute``): output spatial dim ``i`` is input
    spatial dim ``perm[i]``, after the window; ``-1`` marks one that was not spatial
    (channels moved into space), where no receptive field is defined.
    """

    kernel: tuple[int, ...] = ()
    stride: tuple[float, ...] = ()
    dilation: tuple[int, ...] = ()
    glob: bool = False
    perm: tuple[int, ...] | None = None
    start: tuple[float, ...] = ()
    end: tuple[float, ...] = ()

    def span(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(start, end)`` per dim, the defaults filled in."""
        start = self.start or (0.0,) * len(self.kernel)
        end = self.end or tuple(st + (k - 1) * d for st, k, d in zip(start, self.kernel, self.dilation, strict=True))
        return start, end


DrawRole = Literal["merge", "pointwise", "weighted", "plain"]
SkipKind = Literal["residual", "concat"]
InitKind = Literal["default", "fan_out", "norm", "linear"]
CtorArgs = tuple[tuple[str, ...], Mapping[str, Any]]  # (positional attributes, keyword attributes: defaults)

# Keys a spec node uses for itself: an op attribute of one of these names could never be written.
RESERVED_ATTRS = frozenset({"in", "when", "doc", "op", "block", "nodes", "share", "kind"})
_ROLE_OF_FAMILY: dict[str, DrawRole] = {"merge": "merge", "activation": "pointwise", "norm": "pointwise",
                                        "conv": "weighted", "linear": "weighted"}

A = TypeVar("A", bound=OpAttrs)


class Op(Generic[A]):
    """Base class of every op: everything archspec knows about one op lives on its class.

    Subclasses set ``name`` and override what applies. ``Op[ConvAttrs]`` types ``a``,
    the op's validated attributes, in every method. Besides the shape rule and counts:

    - ``draw`` — how render draws it: ``merge`` (its other inputs are skips of kind
      ``skip``), ``pointwise`` (shape-keeping; folded into the op before it when
      ``fold``), ``weighted`` or ``plain``; by default from ``family``;
    - ``init_kind`` — what the ``init:`` policy does to its module: ``fan_out``
      (kaiming normal, zero bias), ``norm`` (weight 1, bias 0; the residual norm that
      ``zero_init_residual`` zeroes), ``linear`` (the bias ``zero_linear_bias`` zeroes) or
      ``default`` (left as built);
    - ``label`` — the drawn summary (``conv 3×3/2 64→128``);
    - ``module``/``call``/``emit`` — how emit builds it; ``ctor`` — how export writes the
      constructor of its module;
    - ``torch_names`` and ``read`` — the reverse mapping: which torch classes or functions
      it is, and its attributes read back from a module instance or a call's arguments.
    """

    name: ClassVar[str]
    family: ClassVar[str] = "misc"
    Attrs: ClassVar[type[OpAttrs]] = OpAttrs
    arity: ClassVar[tuple[int, int | None]] = (1, 1)  # (min, max) inputs; None = unbounded
    stateless: ClassVar[bool] = True  # True: emitted as call_function, no module
    projectable: ClassVar[bool] = False  # merges whose mismatched inputs get auto projections
    broadcasts: ClassVar[bool] = False  # element-wise merges: inputs broadcast dims of size 1 (check lists each)
    doc: ClassVar[str] = ""
    draw: ClassVar[DrawRole | None] = None  # None: from the family
    fold: ClassVar[bool | None] = None  # None: pointwise ops fold
    skip: ClassVar[SkipKind] = "residual"  # the kind of skip that ends at it
    init_kind: ClassVar[InitKind] = "default"
    residual: ClassVar[bool] = False  # a residual sum: input 0 is the branch, the rest are skips
    passthrough: ClassVar[bool] = False  # its output is its input (emits no node)
    ctor: ClassVar[CtorArgs | None] = None  # None: exported only as its default construction
    torch_names: ClassVar[tuple[str, ...]] = ()  # "torch.nn.Conv2d", "torch.relu", ...
    # Inputs read only for their spatial size (crop, upsample to another node's size): no
    # data flows from them, so receptive fields ignore them and render draws a size edge.
    size_inputs: ClassVar[tuple[int, ...]] = ()

    @property
    def role(self) -> DrawRole:
        """How render draws this op."""
        return self.draw if self.draw is not None else _ROLE_OF_FAMILY.get(self.family, "plain")

    @property
    def foldable(self) -> bool:
        """Drawn inside the node before it (``conv`` then ``+ bn + relu``)."""
        return self.fold if self.fold is not None else self.role == "pointwise"
    # What autograd does with this op's tensors; the in-place pass (passes/inplace.py) reads
    # these to decide where a later op may overwrite the output. Conservative defaults.
    fresh_output: ClassVar[bool] = False  # the output is a new tensor: never an input, a view of one, or state
    saves_output: ClassVar[bool] = False  # backward reads the output, so nothing may overwrite it
    inplace_saves_output: ClassVar[bool] = True  # the same, for the in-place form (see `inplace`)

    # -- pure Python: no torch below this line unless inside a method that builds ----
    def infer(self, a: A, shapes: Sequence[Shape]) -> Shape:
        """The output shape; raises ShapeError saying what and why."""
        raise NotImplementedError

    def outputs(self, a: A, shapes: Sequence[Shape]) -> list[Shape] | None:
        """The shape of each output of a multi-output op (``split``), ``None`` for an op
        with one output. A multi-output op's ``infer`` gives its input's shape."""
        return None

    def params(self, a: A, shapes: Sequence[Shape]) -> int:
        """Number of learnable parameters."""
        return 0

    def macs(self, a: A, shapes: Sequence[Shape], out: Shape) -> int:
        """Multiply-accumulates of the weighted ops (conv, conv_transpose, linear); 0 otherwise."""
        return 0

    def window(self, a: A, shapes: Sequence[Shape]) -> Window | None:
        """Receptive-field data; ``None`` for pointwise ops that keep the field."""
        return None

    def label(self, a: A, shapes: Sequence[Shape | None]) -> str:
        """The drawn summary of a node: the op and its telling attributes."""
        return self.name

    # -- torch side -----------------------------------------------------------------
    def module(self, a: A, shapes: Sequence[Shape]) -> Any:
        """The ``nn.Module`` of a stateful op."""
        raise NotImplementedError(f"op '{self.name}' has no module")

    def call(self, a: A, shapes: Sequence[Shape], args: list[Any]) -> Call:
        """``(function, args, kwargs)`` of a stateless op, given its fx input nodes."""
        raise NotImplementedError(f"op '{self.name}' has no function")

    def inplace(self, a: A, shapes: Sequence[Shape], args: list[Any], slot: int) -> Call | None:
        """The call computing this op by overwriting input ``slot`` with the result, or
        ``None`` when there is none (or autograd could not differentiate it).

        Its backward may read the result but never the overwritten input."""
        return None

    def emit(self, graph: Any, a: A, shapes: Sequence[Shape], args: list[Any]) -> Any:
        """Add this stateless op to a ``torch.fx.Graph``; returns the node holding its result."""
        fn, fargs, kwargs = self.call(a, shapes, args)
        return graph.call_function(fn, fargs, kwargs)

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The attributes of this op read back from torch: from a module instance
        (stateful ops), or from the function and the arguments of its call (stateless
        ops; ``args`` hold the inputs first). ``shapes`` are the per-sample input shapes.
        The inverse of ``module``/``call``: building from what it returns gives the same."""
        return {}

    def __repr__(self) -> str:
        return f"<op {self.name}>"


def torch_object(qualname: str) -> Any:
    """The torch class or function a ``torch_names`` entry names (imports torch).

    Only names under ``torch``, ``operator`` and ``archspec`` are looked up, by attribute
    from those packages: nothing is imported by name. Any other root is an AttributeError,
    so the op simply does not match."""
    root, _, rest = qualname.partition(".")
    obj: Any
    if root == "torch":
        import torch as obj
    elif root == "operator":
        import operator as obj
    elif root == "archspec":
        import sys

        obj = sys.modules["archspec"]  # the package this module belongs to: always loaded
    else:
        raise AttributeError(f"'{qualname}' is not under torch, operator or archspec")
    for part in rest.split(".") if rest else ():
        obj = getattr(obj, part)
    return obj


def _definition_loc(obj: Any) -> Loc | None:
    """Where a class is defined, for errors about a broken op."""
    import inspect

    try:
        file = inspect.getsourcefile(obj)
        _, line = inspect.getsourcelines(obj)
    except (OSError, TypeError):
        return None
    return Loc(file, line, 1) if file else None


class Registry:
    """The closed op registry. Registering a name twice is an error, not a warning."""

    def __init__(self) -> None:
        self._ops: dict[str, Op[Any]] = {}
        self.version = 0
        self._entry_points_loaded = False

    def register(self, op: type[Op[Any]] | Op[Any], *, replace: bool = False) -> Op[Any]:
        """Add an op; a broken one is refused here, so it never breaks a later spec."""
        inst = op() if isinstance(op, type) else op
        name = getattr(inst, "name", None)
        # Where the op is defined is looked up only for an error: reading the source costs
        # more than registering every op (and `archspec check` registers them all).
        if not isinstance(name, str) or not name.isidentifier():
            raise OpDefinitionError(f"op name {name!r} is not an identifier", loc=_definition_loc(type(inst)))
        if name in self._ops and not replace:
            raise ArchSpecError(
                f"op '{name}' is already registered",
                fix="pick another name, or pass replace=True to override it on purpose",
            )
        if not (isinstance(inst.Attrs, type) and issubclass(inst.Attrs, OpAttrs)):
            raise OpDefinitionError(f"op '{name}': Attrs must subclass archspec.OpAttrs",
                                    loc=_definition_loc(type(inst)))
        for fname in inst.Attrs.model_fields:
            if fname in RESERVED_ATTRS:
                raise OpDefinitionError(
                    f"op '{name}' has an attribute named '{fname}', which is reserved for nodes",
                    loc=_definition_loc(inst.Attrs) or _definition_loc(type(inst)),
                    fix=f"rename the attribute; a node uses {', '.join(sorted(RESERVED_ATTRS))} itself")
        self._ops[name] = inst
        self.version += 1
        return inst

    def unregister(self, name: str) -> None:
        del self._ops[name]
        self.version += 1

    def get(self, name: str) -> Op[Any]:
        self.load_entry_points()
        try:
            return self._ops[name]
        except KeyError:
            raise UnknownOpError(
                f"unknown op '{name}'{close_matches(name, self._ops)}",
                fix="run `archspec ops` for the list of ops, or register your own with archspec.register_op",
            ) from None

    def for_torch(self, obj: Any) -> Op[Any] | None:
        """The op that is the torch class (or function) ``obj``: the reverse mapping."""
        self.load_entry_points()
        for op in self._ops.values():
            for qualname in op.torch_names:
                try:
                    if torch_object(qualname) is obj:
                        return op
                except (ImportError, AttributeError):
                    continue
        return None

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


def register_op(op: type[Op[Any]] | Op[Any] | None = None, *, replace: bool = False) -> Any:
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

    def deco(cls: type[Op[Any]] | Op[Any]) -> Any:
        REGISTRY.register(cls, replace=replace)
        return cls

    return deco if op is None else deco(op)


# -- helpers shared by op rules -------------------------------------------------------

def fmt(shape: Sequence[int] | None, sep: str = "x") -> str:
    """``3x32x32`` — the one way a shape is written: in messages and tables with ``x``, in
    drawings with ``sep="×"``; ``?`` when unknown, ``scalar`` for a 0-d shape."""
    if shape is None:
        return "?"
    if not shape:
        return "scalar"
    dims = [fmt_int(d) if isinstance(d, int) else str(d) for d in shape]
    return sep.join(dims if len(dims) <= 12 else [*dims[:10], f"...({len(dims)} dims)", dims[-1]])


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


def kernel_text(v: Any, nd: int) -> str:
    """``3×3``: a per-dim size in a drawn label (an int stands for every one of ``nd`` dims)."""
    return "×".join(str(x) for x in (v if isinstance(v, list | tuple) else [v] * nd))


def stride_text(v: Any, nd: int) -> str:
    """``/2`` after a kernel in a drawn label; empty for stride 1."""
    if v is None or v == 1 or (isinstance(v, list | tuple) and all(x == 1 for x in v)):
        return ""
    return "/" + (kernel_text(v, nd) if isinstance(v, list | tuple) else str(v))


def label_geometry(shapes: Sequence[Shape | None]) -> tuple[int | None, int]:
    """(input channels or None, number of spatial dims) of a drawn node's first input."""
    first = shapes[0] if shapes else None
    if not first:
        return None, 2
    return first[0], max(len(first) - 1, 1)


def ints(v: Any) -> int | list[int]:
    """A torch size tuple as an attribute: one int when every dim agrees, else a list."""
    if isinstance(v, list | tuple):
        t = [int(x) for x in v]
        return t[0] if t and all(x == t[0] for x in t) else t
    return int(v)


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


def broadcast(shapes: Sequence[Shape]) -> Shape | None:
    """The shape torch broadcasting gives per-sample ``shapes`` of one rank (a dim of
    size 1 stretches to the others' size), or ``None`` when they do not broadcast.

    Shapes of different ranks do not broadcast here: torch would align them from the
    right, so a ``(C,)`` vector would meet ``(C, H, W)`` along W, never along C.

    >>> broadcast([(64, 8, 8), (64, 1, 1)]), broadcast([(64, 8, 8), (1, 8, 8)]), broadcast([(64, 8, 8), (32, 8, 8)])
    ((64, 8, 8), (64, 8, 8), None)
    """
    rank = len(shapes[0])
    if any(len(s) != rank for s in shapes):
        return None
    out = []
    for dims in zip(*shapes, strict=True):
        big = {d for d in dims if d != 1}
        if len(big) > 1:
            return None
        out.append(big.pop() if big else 1)
    return tuple(out)


def broadcast_shapes(op: str, shapes: Sequence[Shape], fix: str) -> Shape:
    """The broadcast shape of a merge's inputs, or a ShapeError naming the first pair
    that does not broadcast and the dim where they disagree."""
    out = broadcast(shapes)
    if out is not None:
        return out
    first = shapes[0]
    for i, s in enumerate(shapes[1:], start=1):
        if broadcast([first, s]) is not None:
            first = broadcast([first, s]) or first
            continue
        if len(s) != len(first):
            why = (f"their ranks differ ({len(first)} and {len(s)} per-sample dims); only dims of size 1 of "
                   "equal-rank shapes broadcast")
        else:
            d = next(j for j, (x, y) in enumerate(zip(first, s, strict=True)) if x != y and 1 not in (x, y))
            why = f"dim {d} is {first[d]} against {s[d]}, and neither is 1"
        raise ShapeError(f"{op} inputs cannot broadcast: input 0 is {fmt(shapes[0])}, input {i} is {fmt(s)}: {why}",
                         expected=fmt(first), got=fmt(s), fix=fix)
    raise AssertionError(f"broadcast failed yet every pair broadcasts: {shapes}")


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
