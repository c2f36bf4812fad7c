"""Skip roles and the U layout: which input of a merge is the main path, which are skips
(and over how many ops), and whether the network is drawn as a U.

Pure functions of a :class:`~archspec.render.view.GraphView`: :func:`skip_roles` returns
a :class:`Roles`; :func:`u_rows` and :func:`mark_back_edges` place a drawing's nodes in
the U's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..ir import Node
from .model import Drawing, Role, prod
from .view import GraphView, op_of, parent


@dataclass(frozen=True)
class Roles:
    """The longest path (in ops) to every node, each merge's main input, every other input's role."""

    depth: dict[str, int]  # node or graph input -> ops on the longest path to it
    main_in: dict[str, int]  # node of several inputs -> the slot of its main input
    roles: dict[tuple[str, int], tuple[Role, int | None]]  # (node, slot) -> role and span, for non-main slots
    u_skips: tuple[tuple[str, str], ...]  # (source, merge) of each skip across a dip in resolution

    @property
    def u_layout(self) -> bool:
        """Is the network drawn as a U (a skip joins two tensors across lower resolutions)?"""
        return bool(self.u_skips)

    def of(self, v: GraphView, n: Node, slot: int) -> tuple[Role, int | None]:
        """The role and span of input ``slot`` of ``n``; the edges into a projection are its skip's."""
        if n.provenance == "auto" and n.projection is not None:
            merge = v.idx.get(n.projection.merge)
            if merge is not None:
                role, _ = self.roles.get((merge.name, n.projection.slot), ("residual", None))
                return role, None
        return self.roles.get((n.name, slot), ("main", None))


def skip_roles(v: GraphView) -> Roles:
    """Depth (longest path, in ops) of every node; the role and span of every input."""
    g = v.g
    depth: dict[str, int] = dict.fromkeys(g.inputs, 0)
    main_in: dict[str, int] = {}
    roles: dict[tuple[str, int], tuple[Role, int | None]] = {}
    u_skips: list[tuple[str, str]] = []
    data_slots: dict[str, list[int]] = {}
    for n in g.nodes:  # depths and main inputs first: dips looks up the chains
        op = op_of(n.op)
        # An input read only for its size (crop, upsample to a node's size) carries no data:
        # it neither deepens the node nor can be its main input.
        data = [k for k in range(len(n.inputs)) if op is None or k not in op.size_inputs]
        data_slots[n.name] = data
        ins = {k: depth.get(n.inputs[k], 0) for k in data}
        w = 0 if n.provenance == "auto" or n.disabled else 1
        depth[n.name] = w + max(ins.values(), default=0)
        if len(data) >= 2:
            main_in[n.name] = max(data, key=lambda k: (ins[k], -k))
    lifts: dict[int, ChainMin] = {}
    for n in g.nodes:
        if len(n.inputs) < 2:
            continue
        main = main_in.get(n.name)
        for slot, src in enumerate(n.inputs):
            if slot not in data_slots[n.name]:
                roles[(n.name, slot)] = ("size", None)
                continue
            if main is None or slot == main:
                continue
            real = v.origin(src)
            span = depth[n.inputs[main]] - depth.get(real, 0)
            if span < 1:
                roles[(n.name, slot)] = ("branch", None)
                continue
            op = op_of(n.op)
            roles[(n.name, slot)] = (op.skip if op is not None else "residual", span)
            if dips(v, real, n, n.inputs[main], depth, main_in, lifts):
                u_skips.append((real, n.name))
    return Roles(depth=depth, main_in=main_in, roles=roles, u_skips=tuple(u_skips))


def dips(v: GraphView, src: str, merge: Node, main: str, depth: Mapping[str, int], main_in: Mapping[str, int],
         lifts: dict[int, ChainMin] | None = None) -> bool:
    """Does the main path from ``src`` to ``merge`` go through a lower resolution and back?

    The main path is walked down from ``main`` while its depth exceeds ``src``'s; the
    walk is answered in O(log n) steps by :class:`ChainMin` (binary lifting over the
    main-input chains), so dense repeats and long skips stay near-linear. ``lifts``
    keeps the tables between calls (one per tensor rank)."""
    a, b = v.shapes.get(src), merge.shape
    if a is None or b is None or len(a) < 2 or a[1:] != b[1:]:
        return False
    lifts = {} if lifts is None else lifts
    lift = lifts.get(len(a))
    if lift is None:
        lift = lifts[len(a)] = ChainMin(v, len(a), depth, main_in)
    return lift.below(main, depth.get(src, 0)) < prod(a[1:])


class ChainMin:
    """The smallest spatial size (of one rank) on a main-input chain above a depth.

    Each node's main input is its parent; ``up[k][v]`` is the node ``2**k`` steps up from
    ``v`` and ``low[k][v]``/``last[k][v]`` the smallest size and the depth of the last
    node among the ``2**k`` nodes starting at ``v``. Depth never grows up a chain, so the
    nodes deeper than a bound are a prefix of it, found in O(log n). Built once, then
    only read."""

    INF = float("inf")

    def __init__(self, v: GraphView, rank: int, depth: Mapping[str, int], main_in: Mapping[str, int]) -> None:
        names = [n.name for n in v.g.nodes]
        pos = {name: k for k, name in enumerate(names)}
        up0: list[int] = []
        for n in v.g.nodes:
            src = n.inputs[main_in.get(n.name, 0)] if n.inputs else None
            up0.append(pos.get(src, -1) if src is not None else -1)
        size: list[float] = []
        for name in names:
            s = v.shapes.get(name)
            size.append(prod(s[1:]) if s is not None and len(s) == rank else self.INF)
        self.pos = pos
        self.up = [up0]
        self.low = [size]
        self.last = [[depth.get(name, 0) for name in names]]
        while any(p >= 0 for p in self.up[-1]):
            up, low, last = self.up[-1], self.low[-1], self.last[-1]
            self.up.append([up[up[i]] if up[i] >= 0 else -1 for i in range(len(names))])
            self.low.append([min(low[i], low[up[i]]) if up[i] >= 0 else low[i] for i in range(len(names))])
            self.last.append([last[up[i]] if up[i] >= 0 else last[i] for i in range(len(names))])

    def below(self, start: str, stop: int) -> float:
        """The smallest size on the chain from ``start`` over nodes deeper than ``stop``."""
        i = self.pos.get(start, -1)
        best = self.INF
        for k in range(len(self.up) - 1, -1, -1):  # the prefix's length, bit by bit
            if i >= 0 and self.last[k][i] > stop:
                best = min(best, self.low[k][i])
                i = self.up[k][i]
        return best


def u_rows(d: Drawing, roles: Roles, draw_id: Mapping[str, str | None], instances: Mapping[str, Sequence[str]],
           v: GraphView) -> dict[str, int]:
    """The U's rows: the ends of every U skip, and every node in a cluster holding one, each
    with the U it belongs to.

    Skips whose stretches of the graph overlap (a U-Net's nested rungs) make one U; a skip
    apart from the others (each SE gate of a repeated block) is a U of its own, so that
    its rows never have to line up with another stage's."""
    ends = {x for pair in roles.u_skips for name in pair if (x := draw_id.get(v.resolve(name))) in d.nodes}
    clusters = {d.nodes[x].cluster for x in ends if x is not None} - {None}
    # Every instance of a repeat that holds a row is a row too (U-Net's bottleneck).
    repeats = {parent(c) for c in clusters if c is not None and parent(c) in instances}
    clusters |= {i for r in repeats for i in instances[r] if i in d.clusters}
    rows = {x for x in ends if x is not None} | {n.id for n in d.nodes.values()
                                                  if n.cluster in clusters and n.kind != "output"}
    # Where each drawn node stands in graph order: its first IR node.
    pos: dict[str, int] = {}
    for k, n in enumerate(v.g.nodes):
        did = draw_id.get(n.name)
        if did is not None and did not in pos:
            pos[did] = k
    spans: list[list[int]] = []  # the Us: overlapping skip stretches merged, in graph order
    for lo, hi in sorted((pos.get(draw_id.get(v.resolve(a)) or "", -1), pos.get(draw_id.get(b) or "", -1))
                         for a, b in roles.u_skips):
        if spans and lo <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])

    def u_of(x: str) -> int:
        at = pos.get(x, -1)
        return min(range(len(spans)), key=lambda k: (max(spans[k][0] - at, at - spans[k][1], 0), k))

    return {x: u_of(x) for x in rows} if spans else {}


def back_edges(d: Drawing) -> list[bool]:
    """U layout: for each edge, whether it runs from a lower resolution up (drawn upwards)."""
    out = []
    for e in d.edges:
        a, b = d.level(d.nodes[e.src].shape), d.level(d.nodes[e.dst].shape)
        out.append(a is not None and b is not None and a > b)
    return out
