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
from .frozen import FrozenMap, freeze
from .ops.base import OpAttrs, frozen_attrs

Shape = tuple[int, ...]
Provenance = Literal["spec", "auto"]


@dataclass(frozen=True, slots=True)
class Projection:
    """Why an auto projection node exists: it maps input ``slot`` of merge ``merge`` onto
    input 0's shape by the policy ``kind``; ``label`` and ``rule`` say so in words."""

    kind: str  # conv, conv_bn, avgpool_conv_bn, zero_pad (the merge's projection policy)
    merge: str
    slot: int
    label: str
    rule: str


@dataclass(frozen=True, slots=True)
class Node:
    """One operation.

    ``name`` is the dotted hierarchical name (``layer2.0.conv1``); ``module`` is the
    module path that holds its parameters (the name itself, or another node's module
    for ``share:``), ``None`` for stateless ops. ``inputs`` name other nodes or graph
    inputs, in order. ``attrs`` is the op's validated, frozen attribute model (a mapping
    given here is validated). ``shape`` is filled in by inference, ``error`` when
    inference failed at this node.

    What the spec says about the node beyond its op is typed: ``share`` (the module path
    of the node whose module it reuses), ``disabled`` (a ``when:`` that was false: an
    identity stands in), ``dense`` (the dense repeat whose running concat it is) and
    ``projection`` (an auto projection: for which merge and why). ``output`` marks the
    node that selects output k of a multi-output node (``split.0``).
    """

    name: str
    op: str
    attrs: OpAttrs = field(default_factory=OpAttrs)
    inputs: tuple[str, ...] = ()
    shape: Shape | None = None
    module: str | None = None
    provenance: Provenance = "spec"
    loc: Loc | None = None
    path: str | None = None  # spec path, e.g. "blocks.basic.nodes.add"
    error: ArchSpecError | None = field(default=None, compare=False)
    share: str | None = None
    disabled: bool = False
    dense: str | None = None
    projection: Projection | None = None
    # Output k of a multi-output node (split): op and attrs are that node's, its one
    # input is that node, and its shape is the op's outputs(...)[k].
    output: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.attrs, OpAttrs):
            object.__setattr__(self, "attrs", frozen_attrs(self.op, self.attrs))

    def replace(self, **changes: Any) -> Node:
        """A copy with ``changes``. Every pass copies every node, so the fields are
        passed by name (``dataclasses.replace`` takes half as long again)."""
        if not changes.keys() <= _NODE_FIELDS:
            raise TypeError(f"Node has no field {sorted(changes.keys() - _NODE_FIELDS)[0]!r}")
        get = changes.get
        return Node(name=get("name", self.name), op=get("op", self.op), attrs=get("attrs", self.attrs),
                    inputs=get("inputs", self.inputs), shape=get("shape", self.shape), module=get("module", self.module),
                    provenance=get("provenance", self.provenance), loc=get("loc", self.loc), path=get("path", self.path),
                    error=get("error", self.error), share=get("share", self.share),
                    disabled=get("disabled", self.disabled), dense=get("dense", self.dense),
                    projection=get("projection", self.projection), output=get("output", self.output))

    @property
    def owns_module(self) -> bool:
        """It has a module of its own (parameters counted here, built by emit)."""
        return self.module is not None and self.share is None

    @property
    def meta(self) -> Mapping[str, Any]:
        """A read-only view of the typed fields under their old ``meta`` keys."""
        out: dict[str, Any] = {}
        if self.share is not None:
            out["share"] = self.share
        if self.disabled:
            out["disabled"] = True
        if self.dense is not None:
            out["dense"] = self.dense
        if self.projection is not None:
            p = self.projection
            out.update({"auto": p.kind, "for": p.merge, "slot": p.slot, "label": p.label, "rule": p.rule})
        return FrozenMap(out)


_NODE_FIELDS = frozenset(f.name for f in dataclasses.fields(Node))  # Node.replace passes each


@dataclass(frozen=True, slots=True)
class Finding:
    """A non-fatal finding about a spec: a warning with its place. ``check`` and ``build``
    print it as ``warning: file:line:col: message``; it never stops a build."""

    message: str
    loc: Loc | None = None
    path: str | None = None
    fix: str | None = None

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        return f"warning: {where}{self.message}"

    def render(self) -> str:
        """The warning line, and its fix on the next."""
        return str(self) + (f"\n  fix: {self.fix}" if self.fix else "")

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "loc": str(self.loc) if self.loc else None, "path": self.path,
                "fix": self.fix}


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
    params: Mapping[str, Any] = field(default_factory=FrozenMap)
    init: Mapping[str, Any] = field(default_factory=FrozenMap)
    input_locs: Mapping[str, Loc] = field(default_factory=FrozenMap, compare=False)
    output_locs: Mapping[str, Loc] = field(default_factory=FrozenMap, compare=False)
    # The files read to build it (the spec and its `use:` files): no output may replace them.
    files: tuple[str, ...] = field(default=(), compare=False)
    # `outputs:` written as a mapping ({out: head}): the keys, one per output, in order; the
    # compiled module then returns a dict. None: a tensor (one output) or a tuple.
    output_keys: tuple[str, ...] | None = None
    # Non-fatal findings about the spec (a batch-like input shape, ...), each located.
    warnings: tuple[Finding, ...] = field(default=(), compare=False)
    # What read an input's shape in an expression while expanding (``block 'se' reads the
    # shape of its input 'input'``): the graph's structure may then depend on input sizes.
    reads_shapes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        # Immutable all the way down: mappings given as dicts (and lists in them) are frozen.
        # `replace` passes frozen values on unchanged, so a pass pays nothing for this.
        if not isinstance(self.inputs, FrozenMap) or not all(type(v) is tuple for v in self.inputs.values()):
            object.__setattr__(self, "inputs", FrozenMap({k: tuple(v) for k, v in self.inputs.items()}))
        object.__setattr__(self, "params", freeze(self.params))
        object.__setattr__(self, "init", freeze(self.init))
        for name in ("input_locs", "output_locs"):
            if not isinstance(getattr(self, name), FrozenMap):
                object.__setattr__(self, name, FrozenMap(getattr(self, name)))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "scopes", tuple(self.scopes))

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

    def shapes(self) -> dict[str, Shape | None]:
        """The shape of every graph input and node, by name."""
        out: dict[str, Shape | None] = {k: tuple(v) for k, v in self.inputs.items()}
        for n in self.nodes:
            out[n.name] = n.shape
        return out

    def in_shapes(self, node: Node, shapes: Mapping[str, Shape | None] | None = None) -> list[Shape | None]:
        """The shapes of ``node``'s inputs, in order (``shapes``: a :meth:`shapes` map to
        reuse over many nodes)."""
        known = shapes if shapes is not None else self.shapes()
        return [known.get(i) for i in node.inputs]

    def params_of(self, node: Node, shapes: Mapping[str, Shape | None] | None = None) -> int:
        """The learnable parameters ``node`` owns: 0 for a shared or stateless module, or
        while an input shape is unknown. The one parameter count."""
        if not node.owns_module:
            return 0
        ins = self.in_shapes(node, shapes)
        if any(s is None for s in ins):
            return 0
        from .ops import REGISTRY

        return REGISTRY.get(node.op).params(node.attrs, [s for s in ins if s is not None])

    def param_count(self) -> int:
        """Every learnable parameter of the graph (shared modules once)."""
        shapes = self.shapes()
        return sum(self.params_of(n, shapes) for n in self.nodes)

    def named_outputs(self) -> list[tuple[str, str]]:
        """``(label, node)`` per output, in order: the key of a mapping ``outputs:``, else
        the node's own name."""
        keys = self.output_keys if self.output_keys is not None else self.outputs
        return list(zip(keys, self.outputs, strict=True))

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
        _check_name(n.name, what="node", loc=n.loc, node=True)
        if n.name in defined:
            raise GraphError(f"node '{n.name}' is defined twice", loc=n.loc)
        for src in n.inputs:
            if src not in defined:
                raise GraphError(
                    f"node '{n.name}' uses '{src}' before it is defined; "
                    "nodes must be in topological order",
                    loc=n.loc,
                )
        if n.module is not None and n.provenance == "spec" and n.share is None:
            if n.module in modules:
                raise GraphError(f"module path '{n.module}' is used by both '{modules[n.module]}' and '{n.name}'", loc=n.loc)
            modules[n.module] = n.name
        defined.add(n.name)
    for n in graph.nodes:
        if n.module is not None and n.share is not None and n.module not in modules:
            raise GraphError(f"node '{n.name}' shares module '{n.module}', which no node owns", loc=n.loc)
    if not graph.outputs:
        raise GraphError("the graph has no outputs")
    for out in graph.outputs:
        if out not in defined:
            raise GraphError(f"output '{out}' is not a node or input")
    keys = graph.output_keys
    if keys is not None and (len(keys) != len(graph.outputs) or len(set(keys)) != len(keys)):
        raise GraphError(f"output keys {list(keys)} do not name the {len(graph.outputs)} outputs once each")


def _check_name(name: str, *, what: str, loc: Loc | None = None, node: bool = False) -> None:
    # A node's name may start with a position (`0.weight`: a spec whose nodes: is a list,
    # as nn.Sequential); an input's is an argument of forward().
    parts = name.split(".")
    if not all(p.isidentifier() or p.isdigit() for p in parts) or not (node or parts[0].isidentifier()):
        raise GraphError(f"{what} name '{name}' is not a dotted identifier", loc=loc)
