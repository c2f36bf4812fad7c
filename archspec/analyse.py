"""Static analysis of a checked graph: parameters, MACs, receptive fields, input sizes.

Everything here is pure Python over the IR: no torch import, so ``archspec summary``
and ``archspec check`` stay fast.

Counting convention (the one ``torch.utils.flop_counter.FlopCounterMode`` uses, halved):

* a MAC is one multiply-accumulate of a ``conv``, ``conv_transpose`` or ``linear``
  weight with an input value; FLOPs = 2 × MACs;
* bias additions, normalisation, activations, ``add``/``mul``/``concat``, pooling and
  up-sampling count 0 (they are memory-bound and every tool counts them differently);
* counts are per sample (batch 1) and a shared module counts once per call.

Receptive field: per spatial dim, the extent (in input pixels) of the input region one
output position of a node can see, as the **maximum over every path** from the graph
inputs and over every output position. Each path holds, per dim, the exact map from an
output position ``o`` to the input interval ``[lo(o), hi(o)]`` it sees: periodic, with
``lo(o + P) = lo(o) + S`` (``S / P`` is the effective stride, the jump), so ``P`` table
entries say it all. An op whose window sees its input positions
``floor(o·s + start) .. floor(o·s + end)`` maps the interval to ``[lo(floor(o·s + start)),
hi(floor(o·s + end))]``. Up-sampling makes the alignment matter (after a 2x up-sampling
and a 3x3 conv, even and odd outputs see different spans), which a single ``(field,
jump)`` pair per path averaged away; the tables keep it, so the field is exact away from
the borders. Global ops (global pooling, linear) see the whole input. A node keeps at
most :data:`MAX_PATHS` paths (and a path at most :data:`MAX_PERIOD` entries): past that
they are merged into an envelope, an upper bound, and the search stays linear in the
number of nodes.
An input an op reads only for its size (``crop``, ``upsample`` to another node's size)
passes no field; ``permute`` reorders the dims of a field (which then follow the node's
own dims) and one with channels moved into space has none.

>>> s = summary("specs/resnet18.yaml")
>>> s.params, s.macs
(11689512, 1814073344)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from .errors import ArchSpecError, LimitError, SpecValidationError, close_matches
from .ir import Graph, Shape
from .limits import DEFAULT_LIMITS, Limits
from .loader import Document
from .ops import REGISTRY, Window
from .parse import parse_shape, parse_vary  # the library's readers of --input and --vary text

CONVENTION = ("MACs: multiply-accumulates of conv, conv_transpose and linear weights, per sample "
              "(FLOPs = 2 x MACs); bias, norms, activations, add/concat, pooling and up-sampling count 0, "
              "as torch.utils.flop_counter counts. RF: receptive field in input pixels, the maximum over "
              "all paths; stride: the effective stride (input pixels between neighbouring outputs).")


# -- receptive fields -------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Field:
    """The receptive field of one node, per spatial dim of the graph input.

    ``size`` is in input pixels (rounded up); ``stride`` is the effective stride (a
    ``Fraction``: ``1/2`` after a 2x up-sampling), ``None`` after a global op, whose every
    output sees the whole input (``glob``).
    """

    size: tuple[int, ...]
    stride: tuple[Fraction, ...] | None
    glob: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "stride": None if self.stride is None else [_num(s) for s in self.stride],
                "global": self.glob}


@dataclass(frozen=True, slots=True)
class _Map:
    """One dim of one path: output position ``o`` sees the input positions
    ``lo(o) .. hi(o)``, where ``lo(o) = lo[o % period] + (o // period) * shift`` (``hi``
    alike). Normalised so that ``lo[0] == 0``: a path's offset from the input's origin
    does not change its field."""

    period: int
    shift: int
    lo: tuple[int, ...]
    hi: tuple[int, ...]

    def at(self, table: tuple[int, ...], x: int) -> int:
        q, r = divmod(x, self.period)
        return table[r] + q * self.shift

    @property
    def size(self) -> int:
        """The widest field over every output position."""
        return max(h - lo + 1 for lo, h in zip(self.lo, self.hi, strict=True))

    @property
    def jump(self) -> Fraction:
        return Fraction(self.shift, self.period)


_IDENTITY = _Map(1, 1, (0,), (0,))
_Path = tuple[_Map, ...]  # one map per spatial dim
_GLOBAL = "global"
MAX_PATHS = 32
MAX_PERIOD = 1024


def receptive_fields(graph: Graph) -> dict[str, Field | None]:
    """The :class:`Field` of every node and graph input of a checked graph.

    ``None`` where it is not defined: a graph input or node without spatial dims that
    mixes inputs of different spatial ranks.
    """
    whole = _whole_input(graph)
    state: dict[str, Any] = {}  # name -> frozenset of _Path, _GLOBAL, or None
    shapes: dict[str, Shape] = {k: tuple(v) for k, v in graph.inputs.items()}
    for name, shape in graph.inputs.items():
        state[name] = frozenset({(_IDENTITY,) * (len(shape) - 1)})
    for n in graph.nodes:
        op = REGISTRY.get(n.op)
        ins = [state[i] for k, i in enumerate(n.inputs) if k not in op.size_inputs]  # size-only inputs pass no data
        in_shapes = [shapes[i] for i in n.inputs]
        assert n.shape is not None, f"node {n.name} has no shape: analyse a checked graph"
        shapes[n.name] = n.shape
        if any(s is None for s in ins):
            state[n.name] = None
            continue
        if any(s == _GLOBAL for s in ins):
            state[n.name] = _GLOBAL
            continue
        paths: set[_Path] = set().union(*ins) if ins else set()
        w = op.window(n.attrs, in_shapes)
        if w is not None and w.glob:
            state[n.name] = _GLOBAL
        elif w is not None and w.perm is not None and -1 in w.perm:
            state[n.name] = None  # channels moved into a spatial dim: no field to speak of
        elif len({len(p) for p in paths}) > 1 or (w is not None and any(len(p) != len(w.kernel) for p in paths)):
            state[n.name] = None  # spatial ranks disagree: no field to speak of
        else:
            state[n.name] = frozenset(_prune(_through(w, p) for p in paths) if w is not None else _prune(paths))
    return {name: _field(s) if s != _GLOBAL else Field(whole, None, True) for name, s in state.items()}


def _frac(x: float) -> Fraction:
    return Fraction(x).limit_denominator(1 << 16)


def _through(w: Window, path: _Path) -> _Path:
    """One path through a window, per dim; then the dims reordered where it permutes them."""
    start, end = w.span()
    out = tuple(_compose(m, _frac(s), _frac(a), _frac(b)) for m, s, a, b in zip(path, w.stride, start, end, strict=True))
    return tuple(out[p] for p in w.perm) if w.perm is not None else out


def _compose(m: _Map, s: Fraction, start: Fraction, end: Fraction) -> _Map:
    """The map after a window that sees ``floor(o*s + start) .. floor(o*s + end)`` of ``m``'s positions.

    The window repeats every ``s.denominator`` outputs, moving ``s.numerator`` inputs, and
    ``m`` repeats every ``m.period`` of those: the result repeats when both do."""
    u, v = s.numerator, s.denominator
    times = m.period // math.gcd(m.period, u)  # window periods per period of the result
    period = v * times
    shift = m.shift * (u * times // m.period)
    lo = [m.at(m.lo, math.floor(o * s + start)) for o in range(period)]
    hi = [m.at(m.hi, math.floor(o * s + end)) for o in range(period)]
    out = _Map(period, shift, tuple(x - lo[0] for x in lo), tuple(x - lo[0] for x in hi))
    return _coarsen(out) if period > MAX_PERIOD else out


def _coarsen(m: _Map) -> _Map:
    """An envelope of ``m`` with the shortest period its jump allows: every interval of
    ``m`` lies inside the envelope's at the same position (an upper bound)."""
    j = m.jump
    period = j.denominator
    shift = j.numerator
    lo = [min(m.lo[o] - (o // period) * shift for o in range(r, m.period, period)) for r in range(period)]
    hi = [max(m.hi[o] - (o // period) * shift for o in range(r, m.period, period)) for r in range(period)]
    return _Map(period, shift, tuple(x - lo[0] for x in lo), tuple(x - lo[0] for x in hi))


def _dominates(a: _Path, b: _Path) -> bool:
    """Every output of ``b`` sees a part of what some output of ``a`` sees, and it stays so
    through any later window: per dim, the same period and shift with ``b``'s intervals
    inside ``a``'s shifted by one offset, or both of period 1 with ``a`` wider and farther apart."""
    for x, y in zip(a, b, strict=True):
        if x.period == y.period == 1:
            if x.size < y.size or x.shift < y.shift:
                return False
        elif x.period != y.period or x.shift != y.shift or \
                max(p - q for p, q in zip(x.lo, y.lo, strict=True)) > min(p - q for p, q in zip(x.hi, y.hi, strict=True)):
            return False
    return True


def _prune(paths: Iterable[_Path]) -> list[_Path]:
    """Drop every path that another dominates; more than :data:`MAX_PATHS` left become
    one envelope, so the set, and the quadratic work to prune it, stay bounded."""
    unique = sorted(set(paths), key=lambda p: tuple((-m.size, -m.jump) for m in p))
    if len(unique) > 4 * MAX_PATHS:
        return [_envelope(unique)]
    keep: list[_Path] = []
    for p in unique:
        if not any(_dominates(k, p) for k in keep):
            keep.append(p)
    if len(keep) > MAX_PATHS:
        return [_envelope(keep)]
    return keep


def _envelope(paths: Sequence[_Path]) -> _Path:
    """One path whose every dim is at least as wide and far-reaching as each path's."""
    out = []
    for maps in zip(*paths, strict=True):
        jump = max(m.jump for m in maps)
        width = max(m.size for m in maps)
        period = jump.denominator
        lo = tuple(math.floor(r * jump) for r in range(period))
        # Each position sees its own start plus the widest field; after up-sampling, one
        # jump more for the alignment it may have lost (integer jumps have none to lose).
        slack = math.ceil(jump) if any(m.period > 1 for m in maps) else 0
        out.append(_Map(period, jump.numerator, lo, tuple(x + width - 1 + slack for x in lo)))
    return tuple(out)


def _field(s: Any) -> Field | None:
    if not s:
        return None
    rank = len(next(iter(s)))
    size = tuple(max(p[i].size for p in s) for i in range(rank))
    stride = tuple(max(p[i].jump for p in s) for i in range(rank))
    return Field(size, stride)


def _whole_input(graph: Graph) -> tuple[int, ...]:
    """The spatial extent of the largest-rank graph input: what a global op sees."""
    spatial = sorted((tuple(s[1:]) for s in graph.inputs.values()), key=lambda sp: (len(sp), sp))
    return spatial[-1] if spatial else ()


# -- summary ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Row:
    """One line of a summary: a node, or a scope of nodes collapsed by ``--depth``."""

    name: str
    op: str
    shape: Shape
    params: int
    macs: int
    field: Field | None
    nodes: int = 1
    auto: bool = False
    weighted: bool = False  # the op has parameters here (a shared module's second call included)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "op": self.op, "shape": list(self.shape), "params": self.params,
                "macs": self.macs, "flops": 2 * self.macs, "nodes": self.nodes, "auto": self.auto,
                "receptive_field": None if self.field is None else self.field.to_dict()}


@dataclass(frozen=True)
class Summary:
    """Per-node shapes, parameters, MACs and receptive fields of a checked graph.

    ``rows`` has one entry per IR node in topological order; :meth:`collapse` folds them
    by scope. Totals: :attr:`params`, :attr:`macs`, :attr:`flops` (= 2 × MACs).
    """

    graph: Graph
    rows: tuple[Row, ...]
    inputs: Mapping[str, Field | None] = field(default_factory=dict)

    @property
    def params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def collapse(self, depth: int | None) -> list[Row]:
        """Rows with the nodes under each scope of ``depth`` dotted parts folded into one.

        ``depth=1`` folds ``layer1.0.conv1`` … into ``layer1``; ``None`` or 0 keeps every
        node. A folded row sums params and MACs and shows the shape and field of the
        scope's last node (its output, in topological order).
        """
        if not depth:
            return list(self.rows)
        groups: dict[str, list[Row]] = {}
        for r in self.rows:
            groups.setdefault(".".join(r.name.split(".")[:depth]), []).append(r)
        kinds = {s.path: s for s in self.graph.scopes}
        out = []
        for key, rows in groups.items():
            if len(rows) == 1 and rows[0].name == key:
                out.append(rows[0])
                continue
            sc = kinds.get(key)
            label = (f"{sc.block} x{sc.count}" if sc.kind == "repeat" else sc.block or sc.kind) if sc else "scope"
            last = rows[-1]
            out.append(Row(key, label or "scope", last.shape, sum(r.params for r in rows),
                           sum(r.macs for r in rows), last.field, sum(r.nodes for r in rows),
                           all(r.auto for r in rows)))
        return out

    @property
    def input_size(self) -> tuple[int, ...]:
        """The spatial size of the (largest-rank) input: what a field must span to cover it."""
        return _whole_input(self.graph)

    def covers(self, row: Row) -> bool | None:
        """Whether one output position of ``row`` sees a window at least as large as the
        whole input in every spatial dim (global ops: yes). ``None``: no field.

        A position near the centre then sees all of the input; one in a corner needs a
        field about twice the input's size to reach the opposite corner."""
        if row.field is None or not self.input_size:
            return None
        return row.field.glob or all(r >= s for r, s in zip(row.field.size, self.input_size, strict=True))

    def covered_from(self, depth: int | None = None) -> Row | None:
        """The first row (of :meth:`collapse`) whose field covers the input."""
        return next((r for r in self.collapse(depth) if self.covers(r)), None)

    def coverage_line(self, depth: int | None = None) -> str:
        """``covers the 32x32 input: yes from layer3`` (or no, with the largest field)."""
        size = "x".join(map(str, self.input_size))
        first = self.covered_from(depth)
        if first is not None and first.field is not None:
            how = " (a global op)" if first.field.glob else f" (field {'x'.join(map(str, first.field.size))})"
            return f"receptive field covers the {size} input: yes from {first.name}{how}"
        spatial = [r for r in self.rows if r.field is not None and not r.field.glob and r.field.size]
        if not spatial:
            return f"receptive field covers the {size} input: — (no spatial field)"
        big = max(spatial, key=lambda r: r.field.size if r.field else ())
        assert big.field is not None
        return (f"receptive field covers the {size} input: no (the largest field is "
                f"{'x'.join(map(str, big.field.size))}, at {big.name})")

    def last_spatial(self) -> Row | None:
        """The last node with a local (not global) field: the feature map a head pools."""
        return next((r for r in reversed(self.rows) if r.field is not None and not r.field.glob and r.field.size),
                    None)

    def memory(self, batch_size: int = 1, bytes_per_element: int = 4) -> Memory:
        """torchinfo's estimate of a training step's memory at ``batch_size``; see :class:`Memory`."""
        if batch_size < 1 or bytes_per_element < 1:
            raise ArchSpecError(f"memory needs a batch size and element size of at least 1, got {batch_size} and "
                                f"{bytes_per_element}")
        per = batch_size * bytes_per_element
        return Memory(batch_size, bytes_per_element,
                      input_bytes=sum(_prod(s) for s in self.graph.inputs.values()) * per,
                      activation_bytes=2 * sum(_prod(r.shape) for r in self.rows if r.weighted) * per,
                      param_bytes=self.params * bytes_per_element)

    def __repr__(self) -> str:
        return (f"<Summary {self.graph.name}: {self.params:,} params, {self.macs / 1e9:.3f} GMAC, "
                f"{len(self.rows)} nodes; .rows, .collapse(depth), .memory(batch_size)>")

    def _repr_html_(self) -> str:
        """A table in Jupyter: the top-level rows (``collapse(1)``) and the totals."""
        from html import escape

        head = "".join(f"<th>{h}</th>" for h in ("node", "op", "shape", "params", "MACs", "RF"))
        body = []
        for r in self.collapse(1):
            rf = "" if r.field is None else "global" if r.field.glob else "x".join(map(str, r.field.size))
            cells = (r.name, r.op, "x".join(map(str, r.shape)), f"{r.params:,}", f"{r.macs:,}", rf)
            body.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
        mem = self.memory()
        return (f"<table><caption>{escape(self.graph.name)}: {self.params:,} params, {self.macs:,} MACs; "
                f"estimated training memory at batch 1: {mem.total_bytes / 1e6:.1f} MB</caption>"
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")

    def to_dict(self, depth: int | None = None) -> dict[str, Any]:
        first = self.covered_from(depth)
        return {"name": self.graph.name,
                "inputs": {k: list(v) for k, v in self.graph.inputs.items()},
                "outputs": {k: list(self.graph.shape_of(o) or ()) for k, o in self.graph.named_outputs()},
                "params": self.params, "macs": self.macs, "flops": self.flops,
                "convention": CONVENTION,
                "covered_from": first.name if first else None, "coverage": self.coverage_line(depth),
                "nodes": [{**r.to_dict(), "covers_input": self.covers(r)} for r in self.collapse(depth)]}


def _prod(shape: Shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


MEMORY_CONVENTION = ("torchinfo's: input = the input tensors; forward/backward = 2 x the outputs of every layer "
                     "with parameters (the activation and its gradient); params = the parameters; total = their "
                     "sum. Optimizer state, buffers, and the activations of parameter-free ops are not counted.")


@dataclass(frozen=True, slots=True)
class Memory:
    """An estimate of one training step's memory, by torchinfo's convention (see
    :data:`MEMORY_CONVENTION`), in bytes."""

    batch_size: int
    bytes_per_element: int
    input_bytes: int
    activation_bytes: int
    param_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.input_bytes + self.activation_bytes + self.param_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "bytes_per_element": self.bytes_per_element,
                "input_bytes": self.input_bytes, "forward_backward_bytes": self.activation_bytes,
                "param_bytes": self.param_bytes, "total_bytes": self.total_bytes, "convention": MEMORY_CONVENTION}

    def lines(self) -> list[str]:
        mb = 1e6
        return [f"memory at batch {self.batch_size} ({self.bytes_per_element}-byte elements, torchinfo's estimate): "
                f"input {self.input_bytes / mb:.2f} MB, forward/backward {self.activation_bytes / mb:.2f} MB, "
                f"params {self.param_bytes / mb:.2f} MB, total {self.total_bytes / mb:.2f} MB"]


def summarise(graph: Graph) -> Summary:
    """The :class:`Summary` of a checked graph."""
    fields = receptive_fields(graph)
    shapes: dict[str, Shape] = {k: tuple(v) for k, v in graph.inputs.items()}
    rows = []
    for n in graph.nodes:
        assert n.shape is not None, f"node {n.name} has no shape: summarise a checked graph"
        op = REGISTRY.get(n.op)
        ins = [shapes[i] for i in n.inputs]
        weighted = op.params(n.attrs, ins) > 0  # its own weights, or those of the module it shares
        rows.append(Row(n.name, n.op, n.shape, graph.params_of(n, shapes), op.macs(n.attrs, ins, n.shape),
                        fields.get(n.name), auto=n.provenance == "auto", weighted=weighted))
        shapes[n.name] = n.shape
    return Summary(graph, tuple(rows), {k: fields.get(k) for k in graph.inputs})


def summary(source: Any, params: Mapping[str, Any] | None = None, *,
            input_shapes: Mapping[str | None, Shape] | None = None,
            limits: Limits = DEFAULT_LIMITS) -> Summary:
    """Parameters, MACs and receptive field of every node of a spec, without torch.

    ``input_shapes`` replaces the spec's input shapes (and gives symbolic sizes a value).

    >>> s = summary("specs/resnet18_cifar.yaml")
    >>> s.params, s.rows[-1].shape
    (11173962, (10,))
    """
    return summarise(load_with_inputs(source, params, input_shapes, limits))


def compare(source: Any, params: Mapping[str, Any] | None, vary: Mapping[str, Sequence[Any]], *,
            input_shapes: Mapping[str | None, Shape] | None = None,
            limits: Limits = DEFAULT_LIMITS) -> list[tuple[str, Summary]]:
    """One :class:`Summary` per combination of the ``vary`` values (``{"depth": [18, 34, 50]}``),
    each labelled ``key=value ...``; without torch.

    >>> [(label, s.params) for label, s in compare("specs/resnet.yaml", None, {"depth": [18, 34]})]
    [('depth=18', 11689512), ('depth=34', 21797672)]
    """
    import itertools

    from .api import read

    doc = read(source, limits)
    out = []
    for combo in itertools.product(*vary.values()):
        chosen = dict(zip(vary, combo, strict=True))
        label = " ".join(f"{k}={_scalar(v)}" for k, v in chosen.items())
        out.append((label, summary(doc, {**(params or {}), **chosen}, input_shapes=input_shapes, limits=limits)))
    return out


def _scalar(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


# -- input shapes: --input, symbolic sizes ----------------------------------------------

def symbols(doc: Document, params: Mapping[str, Any] | None = None) -> dict[str, list[tuple[str, int]]]:
    """Symbolic input sizes of a spec: each symbol with the ``(input, dim)`` places it sizes.

    A symbol is a name in ``inputs:`` that is not a declared param and has no value in
    ``params``.
    """
    from .spec import validate

    spec = validate(doc)
    out: dict[str, list[tuple[str, int]]] = {}
    for name, dims in spec.inputs.items():
        for k, d in enumerate(dims):
            if isinstance(d, str) and d not in spec.params and d not in (params or {}):
                out.setdefault(d, []).append((name, k))
    return out


def _bind(doc: Document, params: Mapping[str, Any] | None, input_shapes: Mapping[str | None, Shape]) -> tuple[
        dict[str, Any], dict[str, Shape]]:
    """Params (with symbols bound) and concrete input shapes for ``--input`` values."""
    from .spec import validate

    spec = validate(doc)
    names = list(spec.inputs)
    bound = dict(params or {})
    shapes: dict[str, Shape] = {}
    for key, shape in input_shapes.items():
        if key is None:
            if len(names) != 1:
                raise SpecValidationError(f"the spec has {len(names)} inputs ({', '.join(names)}); "
                                          "name the one --input sets", fix=f"write --input {names[0]}=CxHxW")
            key = names[0]
        if key not in spec.inputs:
            raise SpecValidationError(f"--input names '{key}', which is not an input of the spec"
                                      f"{close_matches(key, names)}", expected="one of: " + ", ".join(names), option="--input")
        dims = spec.inputs[key]
        if len(dims) != len(shape):
            raise SpecValidationError(
                f"--input gives {key} {len(shape)} dims ({'x'.join(map(str, shape))}), the spec {len(dims)} "
                f"({'x'.join(map(str, dims))})", expected=f"{len(dims)} dims", got=f"{len(shape)}", option="--input")
        for d, v in zip(dims, shape, strict=True):
            # A size named by a param or a symbol takes the value, so expressions that
            # use it agree; an explicit -p wins (and the shape given still applies).
            if isinstance(d, str) and d not in (params or {}):
                bound[d] = v
        shapes[key] = tuple(shape)
    return bound, shapes


def load_with_inputs(source: Any, params: Mapping[str, Any] | None = None,
                     input_shapes: Mapping[Any, Shape] | None = None, limits: Limits = DEFAULT_LIMITS) -> Graph:
    """:func:`archspec.load` with some input shapes replaced (``--input``)."""
    from .api import analyse, read
    from .passes import check

    if input_shapes and isinstance(source, Graph):
        raise ArchSpecError("input shapes cannot be applied to an already built graph; pass the spec instead")
    if not input_shapes:
        return check(analyse(source, params, limits), limits)
    doc = read(source, limits)
    bound, shapes = _bind(doc, params, input_shapes)
    return check(analyse(doc, bound, limits, inputs=shapes), limits)


# -- input-size constraints --------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SizeRule:
    """The sizes one symbol may take, found by trying every size in ``1..searched``.

    ``kind`` is ``"progression"`` (``size >= minimum`` and ``size % modulus == residue``),
    ``"exact"`` (one size), ``"list"`` (a few sizes), ``"irregular"`` (valid sizes
    without a simple pattern, in ``values``) or ``"none"`` (no size works).
    """

    symbol: str
    kind: str
    searched: int
    values: tuple[int, ...] = ()
    minimum: int | None = None
    modulus: int | None = None
    residue: int | None = None

    def __str__(self) -> str:
        s = self.symbol
        if self.kind == "progression":
            assert self.minimum is not None and self.modulus is not None
            if self.modulus == 1:
                return f"{s} >= {self.minimum}"
            mod = (f"{s} divisible by {self.modulus}" if self.residue == 0
                   else f"{s} % {self.modulus} == {self.residue}")
            return mod if self.minimum <= self.modulus else f"{s} >= {self.minimum} and {mod}"
        if self.kind == "exact":
            return f"{s} = {self.values[0]} (the only valid size up to {self.searched})"
        if self.kind == "list":
            return f"{s} in {{{', '.join(map(str, self.values))}}} (all valid sizes up to {self.searched})"
        if self.kind == "irregular":
            return f"{s}: no simple pattern; valid sizes up to {self.searched}: {_ranges(self.values)}"
        return f"{s}: no size in 1..{self.searched} gives a valid graph"

    def holds(self, v: int) -> bool:
        if self.kind == "progression":
            assert self.minimum is not None and self.modulus is not None
            return v >= self.minimum and v % self.modulus == self.residue
        return v in self.values

    def to_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "kind": self.kind, "rule": str(self), "searched": self.searched,
                "minimum": self.minimum, "modulus": self.modulus, "residue": self.residue,
                "values": list(self.values) if self.kind in ("exact", "list", "irregular") else None}


@dataclass(frozen=True)
class Constraints:
    """Where a spec with symbolic input sizes is valid.

    ``rules`` has one :class:`SizeRule` per symbol, each found with the other symbols
    held at ``base`` (a valid assignment, ``None`` if none was found). ``separable`` says
    whether every combination tried of sizes the rules allow was valid too; when it is
    ``False`` the sizes interact (a flatten→linear head fixes H×W, not H and W).
    """

    symbols: Mapping[str, list[tuple[str, int]]]
    rules: tuple[SizeRule, ...]
    base: Mapping[str, int] | None
    separable: bool
    error: ArchSpecError | None = None  # why the first size tried failed, when none is valid
    tried: str = ""  # that size, e.g. "H=224, W=224"
    size_dependent: tuple[str, ...] = ()  # symbols the parameter count changes with
    reads_shapes: tuple[str, ...] = ()  # block expressions that read an input shape (Graph.reads_shapes)
    structure_changes: tuple[str, ...] = ()  # symbols such an expression makes the graph itself change with
    example: Graph | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.base is not None

    def lines(self) -> list[str]:
        if self.base is None:
            return [f"no input size tried gives a valid graph ({', '.join(self.symbols)} tried in 1.."
                    f"{max((r.searched for r in self.rules), default=0)}, all equal)"]
        out = [str(r) for r in self.rules]
        if len(self.rules) > 1:
            held = ", ".join(f"{k}={v}" for k, v in self.base.items())
            if self.separable:
                out.append("(each rule found with the others held at " + held + "; combinations agree)")
            else:
                out.append(f"(the sizes interact: each rule holds with the others at {held}, "
                           "but not every combination of allowed sizes is valid)")
        if self.size_dependent:
            out.append(f"note: the parameter count changes with {', '.join(self.size_dependent)} (e.g. a "
                       "flatten -> linear head), so a built model runs only at the size it was built for")
        if self.structure_changes:
            out.append(f"note: the graph itself changes with {', '.join(self.structure_changes)}: "
                       f"{self.reads_shapes[0]} in an expression, and reads a size that follows "
                       f"{', '.join(self.structure_changes)} (each size was expanded anew to find these rules)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"symbols": list(self.symbols), "rules": [r.to_dict() for r in self.rules],
                "base": dict(self.base) if self.base is not None else None, "separable": self.separable,
                "size_dependent": list(self.size_dependent), "structure_changes": list(self.structure_changes),
                "text": self.lines()}


_CANDIDATES = (224, 256, 128, 512, 64, 32, 96, 384, 16, 299, 28, 1024, 8, 4, 2, 1)


def input_constraints(source: Any, params: Mapping[str, Any] | None = None, *, limits: Limits = DEFAULT_LIMITS,
                      max_size: int = 4096, free: bool = False) -> Constraints:
    """Derive the input sizes for which a spec with symbolic sizes (``x: [3, H, W]``) is valid.

    Every shape rule is exact integer arithmetic, so the pipeline is run for real on
    every size ``1..N`` of each symbol (``N`` from the graph's largest stride), the others
    held at a valid base, and the valid set is fitted to ``size >= m and size % k == r``,
    one exact size, or a short list; anything else is reported as irregular.

    ``free=True`` also treats every spatial size the spec fixes (a number, or a param
    such as ``H: 128``) as a symbol: which other sizes would the graph take?

    >>> c = input_constraints(UNET_TEXT)  # doctest: +SKIP
    >>> [str(r) for r in c.rules]         # doctest: +SKIP
    ['H divisible by 16', 'W divisible by 16']
    """
    from .api import annotate, read
    from .passes import expand
    from .spec import validate

    doc = read(source, limits)
    syms = symbols(doc, params)
    first = {s: _CANDIDATES[0] for s in syms}
    graph = expand(doc, {**(params or {}), **first}, limits)
    if free:
        syms = {**syms, **_fixed_sizes(doc, graph, syms)}
    if not syms:
        if free:
            raise SpecValidationError("the spec's inputs have no sizes to vary: only channels or features",
                                      fix="--sizes varies the spatial dims of (C, H, W)-like inputs")
        raise SpecValidationError("the spec has no symbolic input sizes",
                                  fix="write a name instead of a number in inputs:, e.g. x: [3, H, W], "
                                      "or ask for free sizes (archspec check --sizes)")
    dims: dict[str, list[int | str]] = {name: list(shape) for name, shape in graph.inputs.items()}
    for sym, places in syms.items():
        for name, k in places:
            dims[name][k] = sym

    budget = [SEARCH_WORK]  # node inferences left for the whole search
    # A size that is a param used elsewhere too (`reshape: ${[4, H, -1]}`, a `when:`) changes
    # the graph itself: each of its sizes is expanded anew, which costs several inferences.
    spec = validate(doc)
    expanded = [s for s in syms if s in spec.params and _mentioned(s, graph)]
    per_attempt = max(1, len(graph.nodes)) * (REEXPAND_COST if expanded else 1)

    def attempt(values: Mapping[str, int]) -> tuple[Graph | None, ArchSpecError | None]:
        budget[0] -= per_attempt
        if budget[0] < 0:
            raise _searched_out(len(graph.nodes))
        shapes = {name: tuple(values[d] if isinstance(d, str) else d for d in shape) for name, shape in dims.items()}
        if graph.reads_shapes or expanded:
            # A block's expression reads an input shape, or a size param is used elsewhere:
            # expand again at these sizes.
            try:
                g = expand(doc, {**(params or {}), **first, **{s: values[s] for s in expanded}}, limits,
                           inputs=shapes)
            except ArchSpecError as e:  # an assert: on the size, say
                return None, e
        else:
            g = graph.replace(inputs=shapes)
        g = annotate(g)
        errs = g.errors()
        return (None, errs[0]) if errs else (g, None)

    base: dict[str, int] | None = None
    example: Graph | None = None
    error: ArchSpecError | None = None
    # The spec's own sizes first (free sizes), then the same size for every symbol.
    own = {s: graph.inputs[places[0][0]][places[0][1]] if s not in first else _CANDIDATES[0]
           for s, places in syms.items()}
    for candidate in [own, *({s: v for s in syms} for v in _CANDIDATES)]:
        example, e = attempt(candidate)
        if example is not None:
            base = candidate
            break
        error = error or e
    if base is None:  # exact sizes that differ per symbol: search each alone around 1..N
        for v in range(1, 257):
            example, _ = attempt({s: v for s in syms})
            if example is not None:
                base = {s: v for s in syms}
                break
    if base is None or example is None:
        return Constraints(syms, tuple(SizeRule(s, "none", 256) for s in syms), None, False, error, ", ".join(f"{s}={_CANDIDATES[0]}" for s in syms))

    jump = max((math.ceil(x) for f in receptive_fields(example).values() if f and f.stride for x in f.stride),
               default=1)
    rules = []
    reserve = 60  # attempts kept for the combination checks below
    for k, sym in enumerate(syms):
        # Every size 1..n is one inference of the whole graph: the range is bounded by
        # max_size and by the budget left, shared among the symbols still to search.
        affordable = (budget[0] // per_attempt - reserve) // (len(syms) - k)
        n = min(max(64, 4 * jump), max_size, max(affordable, 0))
        if n < 16:
            raise _searched_out(len(graph.nodes))
        known: list[bool] = []
        while True:
            for v in range(len(known) + 1, n + 1):  # sizes tried before a doubling are kept
                known.append(attempt({**base, sym: v})[0] is not None)
            valid = tuple(v for v in range(1, n + 1) if known[v - 1])
            rule = _fit(sym, valid, n)
            room = 2 * n <= max_size and (budget[0] // per_attempt - reserve) // (len(syms) - k) >= 2 * n
            if rule.kind not in ("irregular", "none") or not room:
                if rule.kind == "progression" and rule.minimum is not None and rule.modulus is not None \
                        and n - rule.minimum < 3 * rule.modulus and room:
                    n *= 2  # too few periods seen to trust the pattern
                    continue
                break
            n *= 2
        rules.append(rule)
    separable = _separable(rules, base, attempt)
    changing: tuple[str, ...] = ()
    if graph.reads_shapes:
        # The graph itself (an attribute, a node) changes with a size when an expression
        # reads a spatial dim that follows it: say so.
        def structure(g: Graph) -> list[tuple[Any, ...]]:
            return [(n.name, n.op, n.attrs, n.inputs) for n in g.nodes]
        changing = tuple(r.symbol for r in rules
                         if (o := _other_size(r, base)) is not None
                         and (g2 := attempt({**base, r.symbol: o})[0]) is not None
                         and structure(g2) != structure(example))
    dependent = []
    for rule in rules:
        other = next((v for v in range(base[rule.symbol] + 1, base[rule.symbol] + rule.searched)
                      if rule.holds(v)), None) if rule.kind == "progression" else \
            next((v for v in rule.values if v != base[rule.symbol]), None)
        changed = attempt({**base, rule.symbol: other})[0] if other is not None else None
        if changed is not None and _params(changed) != _params(example):
            dependent.append(rule.symbol)
    return Constraints(syms, tuple(rules), base, separable, example=example, size_dependent=tuple(dependent),
                       reads_shapes=graph.reads_shapes, structure_changes=changing)


def _other_size(rule: SizeRule, base: Mapping[str, int]) -> int | None:
    """A size other than the base's that ``rule`` allows, or None."""
    if rule.kind == "progression":
        return next((v for v in range(base[rule.symbol] + 1, base[rule.symbol] + rule.searched) if rule.holds(v)), None)
    return next((v for v in rule.values if v != base[rule.symbol]), None)


def _mentioned(name: str, graph: Graph) -> bool:
    """Whether an expression of the spec (or of its ``use:`` files) may use the param ``name``
    (``$name``, or the word inside ``${...}``): then the graph depends on its value."""
    texts = [graph.source or ""]
    for f in graph.files:
        try:
            texts.append(Path(f).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return True  # cannot tell: expand anew
    word = re.compile(rf"\$(?:{re.escape(name)}\b|\{{[^}}]*\b{re.escape(name)}\b)")
    return any(word.search(t) for t in texts)


# Re-expanding a spec for a size costs about this many inferences of its graph.
REEXPAND_COST = 8

# The size search infers the whole graph once per size it tries; it may do this many
# node inferences in all (a few seconds), so a larger graph gets a shorter range.
SEARCH_WORK = 150_000


def _searched_out(nodes: int) -> LimitError:
    return LimitError(f"finding the valid input sizes of this {nodes}-node graph would take more than "
                      f"{SEARCH_WORK} node inferences",
                      fix="check one size with --input (e.g. --input 3x224x224), or give the sizes with -p H=...")


def _params(g: Graph) -> int:
    return g.param_count()


def _fixed_sizes(doc: Document, graph: Graph, taken: Mapping[str, Any]) -> dict[str, list[tuple[str, int]]]:
    """A symbol for every spatial input size the spec fixes: the param's name where a
    param gives it (``H``), else ``H``/``W`` (``D``, ``L``), prefixed by the input's name
    when there are several inputs (``a.H``)."""
    from .spec import validate

    spec = validate(doc)
    out: dict[str, list[tuple[str, int]]] = {}
    for name, dims in spec.inputs.items():
        letters = {2: "L", 3: "HW", 4: "DHW"}.get(len(dims), "")
        for k in range(1, len(dims)):
            d = dims[k]
            if isinstance(d, str) and d in taken:
                continue
            sym = d if isinstance(d, str) else letters[k - 1] if len(letters) == len(dims) - 1 else f"d{k}"
            if len(spec.inputs) > 1 and not isinstance(d, str):
                sym = f"{name}.{sym}"
            out.setdefault(sym, []).append((name, k))
    return out


def _fit(sym: str, valid: Sequence[int], n: int) -> SizeRule:
    if not valid:
        return SizeRule(sym, "none", n)
    m = valid[0]
    if len(valid) == 1:
        return SizeRule(sym, "exact", n, tuple(valid))
    vs = set(valid)
    for k in range(1, (n - m) // 2 + 1):
        if vs == set(range(m, n + 1, k)):
            return SizeRule(sym, "progression", n, minimum=m, modulus=k, residue=m % k)
    if len(valid) <= 8:
        return SizeRule(sym, "list", n, tuple(valid))
    return SizeRule(sym, "irregular", n, tuple(valid))


def _separable(rules: Sequence[SizeRule], base: Mapping[str, int], attempt: Any) -> bool:
    """Try a few combinations of allowed sizes (the smallest, a middle and a large one)."""
    if len(rules) < 2:
        return True
    import itertools

    picks = []
    for r in rules:
        if r.kind == "progression":
            assert r.minimum is not None and r.modulus is not None
            picks.append(sorted({r.minimum, r.minimum + r.modulus, r.minimum + 5 * r.modulus}))
        elif r.values:
            picks.append(sorted({r.values[0], r.values[-1]}))
        else:
            return False
    combos = list(itertools.product(*picks))[:27]
    if not all(attempt(dict(zip(base, c, strict=True)))[0] is not None for c in combos):
        return False
    # And sizes every rule forbids must stay invalid together (H*W fixed lets 8x32 pass).
    bad = [sorted({v for v in (base[r.symbol] // 2, 2 * base[r.symbol], base[r.symbol] - 1, base[r.symbol] + 1)
                   if v >= 1 and not r.holds(v)}) for r in rules]
    combos = list(itertools.product(*bad))[:27]
    return all(attempt(dict(zip(base, c, strict=True)))[0] is None for c in combos)


def _ranges(values: Sequence[int]) -> str:
    out: list[str] = []
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(out[:12]) + (", ..." if len(out) > 12 else "")


def _num(x: Fraction) -> int | float:
    return int(x) if x.denominator == 1 else float(x)


def fmt_stride(s: Fraction) -> str:
    return str(s.numerator) if s.denominator == 1 else f"{s.numerator}/{s.denominator}"


__all__ = ["CONVENTION", "Constraints", "compare", "Field", "Row", "SizeRule", "Summary", "input_constraints",
           "load_with_inputs", "parse_shape", "parse_vary", "receptive_fields", "summarise", "summary", "symbols"]
