"""What a drawing is: the nodes, edges and clusters to draw, as plain data.

:class:`Drawing` is what :func:`~archspec.render.drawing.drawing` decides and what the DOT
and Mermaid writers format; nothing here reads a Graph or writes text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ArchSpecError
from ..ir import Shape
from ..ops.base import fmt

Role = Literal["main", "residual", "concat", "branch", "size"]
DIRECTIONS = ("TB", "LR")


@dataclass
class DNode:
    """One drawn node: an op with the ops folded into it, a projection, a box, an input or output."""

    id: str
    kind: Literal["op", "merge", "proj", "box", "input", "output"]
    head: str  # first label line: op summary, or the box's/input's name
    name: str  # the IR name (or scope path) shown under it
    extra: list[str] = field(default_factory=list)  # "+ bn + relu", "basic ×2"
    params: int = 0
    shape: Shape | None = None
    tooltip: str = ""
    error: str | None = None
    cluster: str | None = None  # innermost drawn cluster
    unknown: bool = False  # downstream of an error: no shape


@dataclass
class DEdge:
    src: str
    dst: str
    role: Role
    shape: Shape | None
    span: int | None = None
    count: int = 1
    error: bool = False
    back: bool = False  # drawn upwards (U layout): written dst -> src with dir=back
    dense: bool = False  # stands for a dense repeat's skips
    carried: int = 1  # a dense block's running concat: how many earlier tensors it carries


@dataclass
class DCluster:
    path: str
    kind: str  # "repeat", "instance", "block", "group"
    label: str
    parent: str | None
    tooltip: str = ""


@dataclass
class Drawing:
    """What will be drawn, in drawing order; ``dot_source``/``mermaid_source`` only format it."""

    name: str
    title: str
    nodes: dict[str, DNode]
    edges: list[DEdge]
    clusters: dict[str, DCluster]
    resolutions: list[tuple[int, ...]]  # spatial sizes, largest first: colour index
    u_layout: bool
    errors: list[ArchSpecError]
    # U layout: node id -> the U it is a row of (several Us, e.g. SE blocks or stacked
    # hourglasses, each have their own rows: one resolution is not one rank across them)
    ranked: dict[str, int] = field(default_factory=dict)

    def ranks(self) -> list[list[str]]:
        """U layout: node ids grouped by U and resolution (one rank each), in that order."""
        if not self.u_layout:
            return []
        groups: dict[tuple[int, int], list[str]] = {}
        for n in self.nodes.values():
            lvl = self.level(n.shape)
            if lvl is not None and n.id in self.ranked:
                groups.setdefault((self.ranked[n.id], lvl), []).append(n.id)
        return [groups[k] for k in sorted(groups) if len(groups[k]) > 1]

    def level(self, shape: Shape | None) -> int | None:
        """The index of ``shape``'s spatial size among the drawing's resolutions (None: a vector)."""
        if shape is None or len(shape) < 2:
            return None
        return self.resolutions.index(tuple(shape[1:]))

    def tree(self) -> tuple[dict[str | None, list[DNode]], dict[str | None, list[str]]]:
        """The nodes by cluster, and each cluster's child clusters (None: the top)."""
        by_cluster: dict[str | None, list[DNode]] = {}
        for n in self.nodes.values():
            by_cluster.setdefault(n.cluster, []).append(n)
        children: dict[str | None, list[str]] = {}
        for c in self.clusters.values():
            children.setdefault(c.parent, []).append(c.path)
        return by_cluster, children


def fmt_shape(shape: Shape | None) -> str:
    """A shape in a drawing: ``3×32×32``."""
    return fmt(shape, "×")


def fmt_count(n: int) -> str:
    """A parameter count in a label: ``950``, ``1.2k``, ``37k``, ``11.2M``."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


def prod(xs: Sequence[int]) -> int:
    p = 1
    for x in xs:
        p *= x
    return p


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ArchSpecError(f"unknown direction '{direction}'", expected="TB or LR")
