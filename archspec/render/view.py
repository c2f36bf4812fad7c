"""The facts about a Graph that every step of a drawing looks up, computed once.

A :class:`GraphView` is read-only: the node index, the scopes, every name's shape and
parameter count, consumers, the nodes under each scope, and the questions asked of them
(which node a disabled ``when:`` passes through, which scopes surround a name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ArchSpecError
from ..ir import Graph, Node, Scope, Shape
from ..ops import REGISTRY, Op


def parent(name: str) -> str:
    """The dotted name one scope up: ``layer1.0.conv1`` -> ``layer1.0``."""
    return name.rpartition(".")[0]


def op_of(name: str) -> Op[Any] | None:
    """The registered op of a node; None for a hand-built node of an unknown op (drawn plain)."""
    return REGISTRY.get(name) if name in REGISTRY else None


@dataclass(frozen=True)
class GraphView:
    """A Graph as a drawing reads it. Build it with :func:`view`."""

    g: Graph
    idx: dict[str, Node]
    scopes: dict[str, Scope]
    shapes: dict[str, Shape | None]
    consumers: dict[str, list[str]]
    members_of: dict[str, list[Node]]  # scope -> the nodes under it, in graph order
    param: dict[str, int]  # node -> its parameter count (0 when it cannot be counted)
    _chains: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)  # a cache

    def resolve(self, name: str) -> str:
        """Follow disabled ``when:`` identities to the node they pass through."""
        while name in self.idx and self.idx[name].disabled:
            name = self.idx[name].inputs[0]
        return name

    def origin(self, name: str) -> str:
        """The real source behind an auto projection chain (and disabled nodes)."""
        name = self.resolve(name)
        while name in self.idx and self.idx[name].provenance == "auto":
            name = self.resolve(self.idx[name].inputs[0])
        return name

    def scope_chain(self, name: str) -> list[str]:
        """The scopes around ``name``, outermost first."""
        chain = self._chains.get(name)
        if chain is None:
            parts = name.split(".")
            chain = [p for k in range(1, len(parts)) if (p := ".".join(parts[:k])) in self.scopes]
            self._chains[name] = chain
        return chain


def view(graph: Graph) -> GraphView:
    """The :class:`GraphView` of ``graph``."""
    scopes = {s.path: s for s in graph.scopes}
    shapes: dict[str, Shape | None] = {k: tuple(v) for k, v in graph.inputs.items()}
    for n in graph.nodes:
        shapes[n.name] = n.shape
    v = GraphView(g=graph, idx=graph.index(), scopes=scopes, shapes=shapes, consumers=graph.consumers(),
                  members_of={path: [] for path in scopes}, param={})
    for n in graph.nodes:
        for sc in v.scope_chain(n.name):
            v.members_of[sc].append(n)
        v.param[n.name] = _params_of(graph, n, shapes)
    return v


def _params_of(g: Graph, n: Node, shapes: dict[str, Shape | None]) -> int:
    if n.shape is None:
        return 0
    try:
        return g.params_of(n, shapes)
    except (AttributeError, ArchSpecError):  # a hand-built node whose attributes the op refuses
        return 0
