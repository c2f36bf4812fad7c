"""Infer: every node gets its output shape from its op's pure-Python rule.

Inference annotates, it does not raise: a node whose rule fails gets ``error`` (a
:class:`~archspec.errors.ShapeError` located at the node) and no shape; nodes downstream
of it get no shape and no error of their own, so one mistake is reported once.

A merge that auto-projection can mend (an ``add`` of same-rank inputs that cannot
broadcast) keeps its error but takes input 0's shape, the shape it will have once projected.
"""

from __future__ import annotations

from ..errors import ArchSpecError, Loc, ShapeError
from ..frozen import value_key
from ..ir import Graph, Node, Shape
from ..ops import REGISTRY
from ..ops.base import OpAttrs, fmt


def infer(graph: Graph) -> Graph:
    shapes: dict[str, Shape | None] = {k: tuple(v) for k, v in graph.inputs.items()}
    nodes_by_name: dict[str, Node] = {}
    out: list[Node] = []
    for n in graph.nodes:
        ins = [shapes[i] for i in n.inputs]
        shape: Shape | None = None
        error: ArchSpecError | None = None
        if all(s is not None for s in ins):
            try:
                shape = _infer_node(n, ins, nodes_by_name, shapes)  # type: ignore[arg-type]  # no None: checked above
            except ArchSpecError as e:
                # A merge that the project pass refused keeps that pass's diagnosis.
                keep = n.error is not None and REGISTRY.get(n.op).projectable
                error = n.error if keep else _locate(e, n, ins, graph)
                if REGISTRY.get(n.op).projectable and len({len(x) for x in ins}) == 1:  # type: ignore[arg-type]  # no None: checked above
                    # The project pass will map every input onto input 0: inference goes
                    # on with that shape so later merges are seen too.
                    shape = ins[0]
        new = n if n.shape == shape and n.error is error else n.replace(shape=shape, error=error)
        shapes[n.name] = shape
        nodes_by_name[n.name] = new
        out.append(new)
    return graph.replace(nodes=tuple(out))


# (op, attrs, input shapes) -> output shape. Repeated blocks (ResNet-152's 36 bottlenecks)
# and the second inference after projection ask the same questions; op rules are pure, so
# the answer is remembered. The registry version is in the key: replacing an op forgets it.
_RULES: dict[tuple[object, ...], Shape] = {}


def _rule(n: Node, ins: list[Shape]) -> Shape:
    try:
        key: tuple[object, ...] | None = (REGISTRY.version, n.op, tuple(ins), n.output, _attrs_key(n.attrs))
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in _RULES:
        return _RULES[key]
    op = REGISTRY.get(n.op)
    if n.output is not None:  # output k of a multi-output node, whose shape is its input's
        outs = op.outputs(n.attrs, ins)
        assert outs is not None and 0 <= n.output < len(outs), f"{n.name}: no output {n.output} of {n.op}"
        shape = outs[n.output]
    else:
        shape = op.infer(n.attrs, ins)
    if key is not None:
        if len(_RULES) > 100_000:
            _RULES.clear()
        _RULES[key] = shape
    return shape


def shape_rule(n: Node, ins: list[Shape]) -> Shape:
    """``n``'s output shape from its op's rule (remembered), for the expand pass's inference
    of the shapes a block's expressions read."""
    return _rule(n, ins)


# attrs object's id -> (the object, its key): nodes of one block called many times share
# their validated attrs, whose key is then built once.
_ATTR_KEYS: dict[int, tuple[object, tuple[object, ...]]] = {}


def _attrs_key(attrs: OpAttrs) -> tuple[object, ...]:
    known = _ATTR_KEYS.get(id(attrs))
    if known is not None and known[0] is attrs:
        return known[1]
    key = tuple((k, value_key(v)) for k, v in attrs)
    if len(_ATTR_KEYS) > 100_000:
        _ATTR_KEYS.clear()
    _ATTR_KEYS[id(attrs)] = (attrs, key)
    return key


def _infer_node(n: Node, ins: list[Shape], done: dict[str, Node], shapes: dict[str, Shape | None]) -> Shape:
    shape = _rule(n, ins)
    op = REGISTRY.get(n.op)
    attrs = n.attrs
    owner_name = n.share
    if owner_name is not None:
        owner = next((o for o in done.values() if o.module == owner_name and o.owns_module), None)
        if owner is not None and owner.shape is not None:
            owner_ins = [shapes[i] for i in owner.inputs]
            if all(s is not None for s in owner_ins) and op.params(attrs, owner_ins) != op.params(attrs, ins):  # type: ignore[arg-type]  # no None: checked just before
                raise ShapeError(
                    f"shared module '{owner_name}' was built for input {fmt(owner_ins[0])}, "
                    f"but '{n.name}' gives it {fmt(ins[0])}",
                    expected=fmt(owner_ins[0]), got=fmt(ins[0]),
                    fix="feed the shared node inputs with the same channels as its owner",
                )
    return shape


def _locate(e: ArchSpecError, n: Node, ins: list[Shape | None], graph: Graph) -> ArchSpecError:
    """Pin an op rule's error on the node; name every producer when there are several."""
    if len(n.inputs) > 1 and e.got is not None and "from" not in (e.got or ""):
        parts = []
        for src, s in zip(n.inputs, ins, strict=True):
            loc = graph.input_locs.get(src) if src in graph.inputs else _loc_of(graph, src)
            where = f" (line {loc.line})" if loc else ""
            parts.append(f"'{src}' {fmt(s)}{where}")
        e.got = ", ".join(parts)
    e.message = f"node '{n.name}' ({n.op}): {e.message}"
    return e.located(n.loc, n.path, graph.source)


def _loc_of(graph: Graph, name: str) -> Loc | None:
    for x in graph.nodes:
        if x.name == name:
            return x.loc
    return None
