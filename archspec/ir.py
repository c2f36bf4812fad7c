"""The one intermediate representation: plain frozen dataclasses, no torch.

A :class:`Graph` is a tuple of :class:`Node` in topological order plus its named inputs
and outputs. Every pass is a function ``Graph -> Graph``; :func:`lint` checks the
invariants that every pass must keep.

Shapes are per-sample: the batch dimension is implicit, so a 2-d feature map is
``(C, H, W)`` and a feature vector ``(F,)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ArchSpecError, GraphError, Loc

Shape = tuple[int, ...]
Provenance = Literal["spec", "auto"]


@dataclass(frozen=True, slots=True)
class Node:
    """One operation.

    ``name`` is the dotted hierarchical name (``layer2.0.conv1``); ``module`` is the
    module path that holds its parameters (the name itself, or another node's module
    for ``share:``), ``None`` for stateless ops. ``inputs`` name other nodes or graph
    inputs, in order. ``shape`` is filled in by inference, ``error`` when inference
    failed at this node.
    """

    name: str
    op: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    shape: Shape | None = None
    module: str | None = None
    provenance: Provenance = "spec"
    loc: Loc | None = None
    path: str | None = None  # spec path, e.g. "blocks.basic.nodes.add"
    error: ArchSpecError | None = field(default=None, compare=False)
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def replace(self, **changes: Any) -> Node:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Scope:
    """A module scope: a block instance, a repeat, or an inline group.

    ``kind`` is ``"repeat"`` for the whole unrolled repeat (``layer1``), ``"block"``
    for one block instance (``layer1.0``) and ``"group"`` for an inline group.
    """

    path: str
    kind: Literal["repeat", "block", "group"]
    block: str | None = None
    count: int | None = None
    connect: str | None = None
    loc: Loc | None = None
    # A dense repeat whose layers recompute their concat and bottleneck in backward.
    memory_efficient: bool = False


@dataclass(frozen=True, slots=True)
class Graph:
    name: str
    inputs: Mapping[str, Shape]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    scopes: tuple[Scope, ...] = ()
    doc: str = ""
    file: str = "<spec>"
    source: str | None = field(default=None, repr=False, compare=False)
    params: Mapping[str, Any] = field(default_factory=dict)
    init: Mapping[str, Any] = field(default_factory=dict)
    input_locs: Mapping[str, Loc] = field(default_factory=dict, compare=False)
    output_locs: Mapping[str, Loc] = field(default_factory=dict, compare=False)
    # The files read to build it (the spec and its `use:` files): no output may replace them.
    files: tuple[str, ...] = field(default=(), compare=False)

    def replace(self, **changes: Any) -> Graph:
        return dataclasses.replace(self, **changes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def index(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def shape_of(self, name: str) -> Shape | None:
        """The shape of a node or a graph input."""
        if name in self.inputs:
            return tuple(self.inputs[name])
        return self.node(name).shape

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {name: [] for name in self.inputs}
        for n in self.nodes:
            out.setdefault(n.name, [])
            for i in n.inputs:
                out.setdefault(i, []).append(n.name)
        return out

    def errors(self) -> list[ArchSpecError]:
        return [n.error for n in self.nodes if n.error is not None]

    def to_networkx(self) -> Any:
        """A ``networkx.MultiDiGraph`` view: one edge per input slot (``slot`` attr)."""
        import networkx as nx

        g = nx.MultiDiGraph()
        for name in self.inputs:
            g.add_node(name, op="input")
        for n in self.nodes:
            g.add_node(n.name, op=n.op)
            for slot, src in enumerate(n.inputs):
                g.add_edge(src, n.name, slot=slot)
        return g


def lint(graph: Graph) -> None:
    """Check the invariants every pass keeps; raise :class:`GraphError` on the first break.

    Nodes are in topological order, every input is defined before use, names are
    unique and are dotted identifiers, outputs exist, shared modules point at real ones.
    """
    defined: set[str] = set()
    modules: dict[str, str] = {}
    for name in graph.inputs:
        _check_name(name, what="input")
        if name in defined:
            raise GraphError(f"input '{name}' is defined twice")
        defined.add(name)
    for n in graph.nodes:
        _check_name(n.name, what="node", loc=n.loc)
        if n.name in defined:
            raise GraphError(f"node '{n.name}' is defined twice", loc=n.loc)
        for src in n.inputs:
            if src not in defined:
                raise GraphError(
                    f"node '{n.name}' uses '{src}' before it is defined; "
                    "nodes must be in topological order",
                    loc=n.loc,
                )
        if n.module is not None and n.provenance == "spec" and "share" not in n.meta:
            if n.module in modules:
                raise GraphError(f"module path '{n.module}' is used by both '{modules[n.module]}' and '{n.name}'", loc=n.loc)
            modules[n.module] = n.name
        defined.add(n.name)
    for n in graph.nodes:
        if n.module is not None and "share" in n.meta and n.module not in modules:
            raise GraphError(f"node '{n.name}' shares module '{n.module}', which no node owns", loc=n.loc)
    if not graph.outputs:
        raise GraphError("the graph has no outputs")
    for out in graph.outputs:
        if out not in defined:
            raise GraphError(f"output '{out}' is not a node or input")


def _check_name(name: str, *, what: str, loc: Loc | None = None) -> None:
    parts = name.split(".")
    if not all(p.isidentifier() or p.isdigit() for p in parts) or not parts[0].isidentifier():
        raise GraphError(f"{what} name '{name}' is not a dotted identifier", loc=loc)
