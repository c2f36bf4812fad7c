"""Render: draw a Graph's skip topology as graphviz DOT (then SVG/PNG/PDF) or Mermaid.

No torch here: a drawing needs only the IR, its shapes and the op registry's parameter
counts. The work is done in two steps:

1. :func:`drawing` turns a :class:`~archspec.ir.Graph` (checked, or from
   :func:`~archspec.api.analyse` with errors left on its nodes) into a :class:`Drawing`:
   the nodes, edges and clusters that will be drawn, with every edge's *role*;
2. :func:`dot_source` and :func:`mermaid_source` write a Drawing as text.

Edge roles come from the spec, not from a trace. At a merge (``add``, ``mul``, ``lerp``,
``concat``) the input on the longest path from the graph's inputs is the *main* path;
every other input that the main path overtakes is a *skip*, ``residual`` into
``add``/``mul``/``lerp`` and ``concat`` into ``concat``, and its *span* is the number of
ops the main path runs beside it. An input with span 0 (a gate computed in parallel) is
a ``branch``. For ResNet's ``add: [bn2, input]`` the skip is ``input``; for U-Net's
``concat: [skip, up]`` it is ``skip``, although it is written first.

What is drawn:

- The main path solid and heavy (weight 8, so dot keeps it straight), coloured by the
  tensor's resolution; skips dashed, labelled ``skip N ops`` with their shape.
- Norms, activations and dropout fold into the op before them (``conv 3×3 64→64`` then
  ``+ bn + relu``) unless ``fold=False``; disabled ``when:`` nodes are left out and
  edges run through them; an auto projection (its conv and bn) is one magenta node.
- A ``repeat`` is a cluster labelled ``×N`` with the summed parameters. It is drawn
  collapsed, as its first instance (and its second, standing for the rest, when the first
  differs: ResNet's projecting block), unless that would hide an edge crossing the
  cluster's boundary: a repeat whose inner instances send or receive edges from outside
  (U-Net's encoder and decoder) is drawn expanded. A dense repeat collapsed keeps its
  skips: the block input still reaches the final concat, and a loop says that every
  layer feeds every later one; expanded, each concat takes its earlier inputs through
  one edge from the concat before it, which holds exactly those tensors.
  ``expand=["layer2"]`` or ``expand="all"`` opens them.
- ``depth=N`` draws every scope nested N deep as one box (0: the top level only).
- When a skip joins two tensors of one resolution across a stretch of lower resolution
  (a U-Net), nodes of one resolution share a rank and the up-sampling path is drawn
  upwards: the network is a U and its skips are horizontal rungs.
- A node whose shape rule failed is red, with the message on it; its input edges are red.

>>> from archspec.api import graph_of
>>> from archspec.render import to_dot
>>> text = to_dot(graph_of("specs/resnet18.yaml"))
>>> 'subgraph "cluster_layer1"' in text and 'class="residual"' in text
True
"""

from __future__ import annotations

import html
import shutil
import subprocess
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ArchSpecError, LimitError, OutputError, close_matches
from .io import write_bytes, write_text
from .ir import Graph, Node, Scope, Shape
from .ops import REGISTRY, Op
from .ops.base import fmt

FORMATS = ("svg", "png", "pdf", "dot", "mermaid")
IMAGE_FORMATS = frozenset({"svg", "png", "pdf"})
SUFFIXES = {"svg": ".svg", "png": ".png", "pdf": ".pdf", "dot": ".dot", "gv": ".dot", "mermaid": ".mmd",
            "mmd": ".mmd"}
MAX_RENDER_NODES = 600
MAX_RENDER_EDGES = 100_000  # edges of the graph a drawing reads (a dense repeat of 1000 has 500 500)
DOT_TIMEOUT_S = 20  # seconds; a drawing within --max-render-nodes takes a few
INSTALL_GRAPHVIZ = ("install graphviz (apt-get install graphviz, brew install graphviz, or conda install "
                    "-c conda-forge graphviz), or write --format dot or --format mermaid, which need no graphviz")

Role = Literal["main", "residual", "concat", "branch", "size"]

# Colours: one per resolution for the main path, one per skip kind, and the markers.
RES_COLOURS = ("#1a237e", "#0277bd", "#00838f", "#6a1b9a", "#ad1457", "#4e342e", "#37474f", "#283593")
VECTOR_COLOUR = "#616161"
SKIP_COLOURS = {"residual": "#e65100", "concat": "#2e7d32"}
SIZE_COLOUR = "#9e9e9e"  # an input read only for its size
AUTO_FILL, AUTO_LINE = "#f3e5f5", "#8e24aa"
ERROR_FILL, ERROR_LINE = "#ffebee", "#d32f2f"
MAIN_WEIGHT = 8


# -- the drawing model -----------------------------------------------------------------

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
    """What will be drawn, in drawing order; ``to_dot``/``to_mermaid`` only format it."""

    name: str
    title: str
    nodes: dict[str, DNode]
    edges: list[DEdge]
    clusters: dict[str, DCluster]
    resolutions: list[tuple[int, ...]]  # spatial sizes, largest first: colour index
    u_layout: bool
    errors: list[ArchSpecError]
    ranked: set[str] = field(default_factory=set)  # U layout: nodes that share a rank by resolution

    def ranks(self) -> list[list[str]]:
        """U layout: node ids grouped by resolution (one rank each), in resolution order."""
        if not self.u_layout:
            return []
        groups: dict[int, list[str]] = {}
        for n in self.nodes.values():
            lvl = self.level(n.shape)
            if lvl is not None and n.id in self.ranked:
                groups.setdefault(lvl, []).append(n.id)
        return [groups[k] for k in sorted(groups) if len(groups[k]) > 1]

    def level(self, shape: Shape | None) -> int | None:
        if shape is None or len(shape) < 2:
            return None
        return self.resolutions.index(tuple(shape[1:]))


# -- public entry points ---------------------------------------------------------------

def drawing(graph: Graph, *, expand: Iterable[str] | str = (), depth: int | None = None, fold: bool = True,
            max_render_nodes: int = MAX_RENDER_NODES) -> Drawing:
    """Decide what to draw: nodes, edges with their roles, clusters. Raises on a bad option.

    ``expand`` names repeats to draw in full (``"all"`` for every one); ``depth`` draws
    scopes nested that deep as single boxes; past ``max_render_nodes`` drawn nodes a
    :class:`~archspec.errors.LimitError` says how to draw less.
    """
    return _Builder(graph, expand, depth, fold, max_render_nodes).build()


def to_dot(graph: Graph, **options: Any) -> str:
    """DOT text of ``graph``; options as for :func:`drawing`."""
    return dot_source(drawing(graph, **options))


def to_mermaid(graph: Graph, **options: Any) -> str:
    """Mermaid ``flowchart`` text of ``graph``; options as for :func:`drawing`."""
    return mermaid_source(drawing(graph, **options))


def to_svg(graph: Graph, **options: Any) -> str:
    """SVG text of ``graph`` (needs graphviz's ``dot``)."""
    require_dot("svg")
    return run_dot(to_dot(graph, **options), "svg").decode("utf-8")


def repr_markdown(graph: Graph) -> str | None:
    """For ``_repr_markdown_`` where graphviz's ``dot`` is missing: the drawing as a Mermaid
    block (JupyterLab 4.1+, VS Code and GitHub draw it) with a one-line hint; None when
    ``dot`` is there, so that the SVG is shown."""
    if shutil.which("dot") is not None:
        return None
    try:
        text = mermaid_source(drawing(graph))
    except ArchSpecError as e:  # too big to draw: say so rather than show nothing
        return f"*{graph.name}: not drawn ({e.message})*"
    hint = INSTALL_GRAPHVIZ.split(", or write")[0]
    return f"```mermaid\n{text}```\n\n*Drawn with Mermaid: graphviz's `dot` is not installed; {hint} for SVG.*"


def repr_svg(graph: Graph) -> str | None:
    """For ``_repr_svg_``: the SVG, or None (Jupyter then shows the text repr) without dot."""
    if shutil.which("dot") is None:
        return None
    return to_svg(graph)


def resolve_format(path: str | Path | None, fmt: str | None) -> str:
    """The output format from ``--format`` and the output's suffix; they must agree."""
    if fmt is not None and fmt not in FORMATS:
        raise OutputError(f"unknown render format '{fmt}'{close_matches(fmt, FORMATS)}",
                          expected="one of: " + ", ".join(FORMATS), got=fmt)
    suffix = Path(path).suffix.lower().lstrip(".") if path is not None and str(path) != "-" else ""
    from_suffix = {"svg": "svg", "png": "png", "pdf": "pdf", "dot": "dot", "gv": "dot", "mmd": "mermaid",
                   "mermaid": "mermaid"}.get(suffix)
    if fmt is not None and from_suffix is not None and from_suffix != fmt:
        raise OutputError(f"--format {fmt} does not match the output file '{path}'",
                          fix=f"name the file *{SUFFIXES[fmt]}, or drop --format", option="--format")
    if fmt is None and suffix and from_suffix is None:
        raise OutputError(f"cannot tell the format of '{path}' from its suffix '.{suffix}'",
                          expected="one of: " + ", ".join(SUFFIXES), fix="pass --format", option="-o")
    return fmt or from_suffix or "svg"


def require_dot(fmt: str) -> None:
    """Raise up front when ``fmt`` needs graphviz's ``dot`` and it is not on PATH."""
    if fmt in IMAGE_FORMATS and shutil.which("dot") is None:
        raise OutputError(f"cannot write {fmt.upper()}: graphviz's 'dot' program is not on PATH",
                          fix=INSTALL_GRAPHVIZ)


def source_text(d: Drawing, fmt: str, direction: str = "TB") -> str:
    """The text of a DOT or Mermaid drawing."""
    return mermaid_source(d, direction) if fmt == "mermaid" else dot_source(d, direction)


def write_drawing(d: Drawing, target: Path, fmt: str, *, force: bool = False, protect: Iterable[str | Path] = (),
                  dot_beside: bool = False, direction: str = "TB") -> list[Path]:
    """Write a Drawing as ``fmt`` to ``target`` (atomically, never over a protected file)."""
    protect = list(protect)
    if fmt not in IMAGE_FORMATS:
        return [write_text(target, source_text(d, fmt, direction), force=force, protect=protect)]
    text = dot_source(d, direction)
    data = run_dot(text, fmt)
    written = []
    if dot_beside:
        written.append(write_text(target.with_suffix(".dot"), text, force=force, protect=protect))
    written.append(write_bytes(target, data, force=force, protect=protect))
    return written


def run_dot(text: str, fmt: str) -> bytes:
    """Lay out DOT text with graphviz's ``dot``; its failure becomes an OutputError."""
    require_dot(fmt)
    dot = shutil.which("dot")
    assert dot is not None
    try:
        proc = subprocess.run([dot, f"-T{fmt}"], input=text.encode("utf-8", "backslashreplace"), capture_output=True,
                              timeout=DOT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise OutputError(f"graphviz's dot took more than {DOT_TIMEOUT_S} s (the limit) to lay the graph out",
                          fix="draw less: drop --expand, or pass --depth 1") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OutputError(f"graphviz's dot failed (exit {proc.returncode}): {err[-1] if err else 'no message'}",
                          fix="write --format dot and report the DOT file")
    return proc.stdout


# -- building the drawing ----------------------------------------------------------------

def _parent(name: str) -> str:
    return name.rpartition(".")[0]


def _op(name: str) -> Op[Any] | None:
    """The registered op of a node; None for a hand-built node of an unknown op (drawn plain)."""
    return REGISTRY.get(name) if name in REGISTRY else None


def fmt_shape(shape: Shape | None) -> str:
    """A shape in a drawing: ``3×32×32``."""
    return fmt(shape, "×")


def fmt_count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


class _Builder:
    def __init__(self, graph: Graph, expand: Iterable[str] | str, depth: int | None, fold: bool,
                 max_nodes: int) -> None:
        self.g = graph
        self.idx = graph.index()
        self.fold = fold
        self.depth = depth
        self.max_nodes = max_nodes
        self.scopes: dict[str, Scope] = {s.path: s for s in graph.scopes}
        repeats = [s.path for s in graph.scopes if s.kind == "repeat"]
        if isinstance(expand, str):
            expand = [expand]
        expand = list(expand)
        if "all" in expand:
            self.expand = set(repeats)
        else:
            for name in expand:
                if name not in repeats:
                    listed = ", ".join(repeats) if repeats else "none (the spec has no repeat)"
                    raise ArchSpecError(f"--expand '{name}' is not a repeat of '{graph.name}'"
                                        f"{close_matches(name, repeats)}", expected=f"one of: {listed}, or all", option="--expand")
            self.expand = set(expand)
        if depth is not None and depth < 0:
            raise ArchSpecError(f"--depth must be 0 or more, got {depth}", option="--depth")
        self.shapes: dict[str, Shape | None] = {k: tuple(v) for k, v in graph.inputs.items()}
        for n in graph.nodes:
            self.shapes[n.name] = n.shape
        self.consumers = graph.consumers()
        self._lifts: dict[int, _ChainMin] = {}
        self._chains: dict[str, list[str]] = {}
        self.members_of: dict[str, list[Node]] = {path: [] for path in self.scopes}  # scope -> nodes under it
        for n in graph.nodes:
            for sc in self.scope_chain(n.name):
                self.members_of[sc].append(n)

    # - helpers over the IR -
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

    def params_of(self, n: Node) -> int:
        if n.shape is None:
            return 0
        try:
            return self.g.params_of(n, self.shapes)
        except (AttributeError, ArchSpecError):  # a hand-built node whose attributes the op refuses
            return 0

    # - steps -
    def build(self) -> Drawing:
        g = self.g
        edges = sum(len(n.inputs) for n in g.nodes)
        if edges > MAX_RENDER_EDGES:  # before any work: each edge is looked at several times
            raise LimitError(f"'{g.name}' has {edges} edges, more than the {MAX_RENDER_EDGES} a drawing reads",
                             fix="draw a smaller configuration of the spec (fewer repeats, smaller dense blocks)")
        self.param = {n.name: self.params_of(n) for n in g.nodes}
        self._roles()
        self._groups()
        self._collapse()
        self._map()
        d = Drawing(name=g.name, title=self._title(), nodes={}, edges=[], clusters={},
                    resolutions=self._resolutions(), u_layout=self.u_layout, errors=g.errors())
        self._nodes(d)
        if len(d.nodes) > self.max_nodes:
            raise LimitError(
                f"the drawing of '{g.name}' has {len(d.nodes)} nodes, more than the limit of {self.max_nodes}",
                fix="collapse repeats (drop --expand), pass --depth 1, or raise the limit with --max-render-nodes")
        self._edges(d)
        self._clusters(d)
        if d.u_layout:
            self._ranked(d)
            for e in d.edges:
                a, b = d.level(d.nodes[e.src].shape), d.level(d.nodes[e.dst].shape)
                e.back = a is not None and b is not None and a > b
        return d

    def _roles(self) -> None:
        """Depth (longest path, in ops) of every node; the role and span of every input."""
        depth: dict[str, int] = dict.fromkeys(self.g.inputs, 0)
        self.main_in: dict[str, int] = {}
        self.roles: dict[tuple[str, int], tuple[Role, int | None]] = {}
        self.u_layout = False
        self.u_skips: list[tuple[str, str]] = []
        data_slots: dict[str, list[int]] = {}
        for n in self.g.nodes:  # depths and main inputs first: _dips looks up the chains
            op = _op(n.op)
            # An input read only for its size (crop, upsample to a node's size) carries no data:
            # it neither deepens the node nor can be its main input.
            data = [k for k in range(len(n.inputs)) if op is None or k not in op.size_inputs]
            data_slots[n.name] = data
            ins = {k: depth.get(n.inputs[k], 0) for k in data}
            w = 0 if n.provenance == "auto" or n.disabled else 1
            depth[n.name] = w + max(ins.values(), default=0)
            if len(data) >= 2:
                self.main_in[n.name] = max(data, key=lambda k: (ins[k], -k))
        for n in self.g.nodes:
            if len(n.inputs) < 2:
                continue
            main = self.main_in.get(n.name)
            for slot, src in enumerate(n.inputs):
                if slot not in data_slots[n.name]:
                    self.roles[(n.name, slot)] = ("size", None)
                    continue
                if main is None or slot == main:
                    continue
                real = self.origin(src)
                span = depth[n.inputs[main]] - depth.get(real, 0)
                if span < 1:
                    self.roles[(n.name, slot)] = ("branch", None)
                    continue
                op = _op(n.op)
                self.roles[(n.name, slot)] = (op.skip if op is not None else "residual", span)
                if self._dips(real, n, n.inputs[main], depth):
                    self.u_layout = True
                    self.u_skips.append((real, n.name))
        self.depth_of = depth

    def _ranked(self, d: Drawing) -> None:
        """The U's rows: the ends of every U skip, and every node in a cluster holding one."""
        ends = {x for pair in self.u_skips for name in pair if (x := self.draw_id.get(self.resolve(name))) in d.nodes}
        clusters = {d.nodes[x].cluster for x in ends} - {None}
        # Every instance of a repeat that holds a row is a row too (U-Net's bottleneck).
        repeats = {_parent(c) for c in clusters if c is not None and _parent(c) in self.instances}
        clusters |= {i for r in repeats for i in self.instances[r] if i in d.clusters}
        d.ranked = ends | {n.id for n in d.nodes.values() if n.cluster in clusters and n.kind != "output"}

    def _dips(self, src: str, merge: Node, main: str, depth: dict[str, int]) -> bool:
        """Does the main path from ``src`` to ``merge`` go through a lower resolution and back?

        The main path is walked down from ``main`` while its depth exceeds ``src``'s; the
        walk is answered in O(log n) steps by :class:`_ChainMin` (binary lifting over the
        main-input chains), so dense repeats and long skips stay near-linear."""
        a, b = self.shapes.get(src), merge.shape
        if a is None or b is None or len(a) < 2 or a[1:] != b[1:]:
            return False
        lift = self._lifts.get(len(a))
        if lift is None:
            lift = self._lifts[len(a)] = _ChainMin(self, len(a), depth)
        return lift.below(main, depth.get(src, 0)) < _prod(a[1:])

    def _groups(self) -> None:
        """Fold norms/activations into the op before them; one group per auto projection."""
        self.group: dict[str, str] = {}
        proj: dict[tuple[str, int], str] = {}
        for n in self.g.nodes:
            if n.disabled:
                continue
            if n.provenance == "auto":
                key = (n.projection.merge, n.projection.slot) if n.projection is not None else ("", 0)
                self.group[n.name] = proj.setdefault(key, n.name)
                continue
            head = n.name
            op = _op(n.op)
            if self.fold and op is not None and op.foldable and len(n.inputs) == 1 and n.error is None:
                p = n.inputs[0]
                pn = self.idx.get(p)
                if (pn is not None and pn.provenance != "auto" and not pn.disabled
                        and self.consumers.get(p) == [n.name] and p not in self.g.outputs
                        and _parent(p) == _parent(n.name) and pn.error is None):
                    head = self.group[p]
            self.group[n.name] = head
        # Dense repeats: each concat whose other inputs are exactly the previous concat's.
        self.bus: dict[str, str] = {}
        last: dict[str, Node] = {}
        for n in self.g.nodes:
            r = n.dense
            if r is None or n.op != "concat":
                continue
            before = last.get(r)
            main = self.main_in.get(n.name)
            if before is not None and main == len(n.inputs) - 1 and tuple(n.inputs[:-1]) == tuple(before.inputs):
                self.bus[n.name] = before.name
            last[r] = n
        self.members: dict[str, list[str]] = {}
        for name, head in self.group.items():
            self.members.setdefault(head, []).append(name)

    def _collapse(self) -> None:
        """Which repeats draw collapsed (as their first instance) without hiding an edge."""
        g = self.g
        self.instances: dict[str, list[str]] = {}
        for s in g.scopes:
            if s.kind == "block" and self.scopes.get(_parent(s.path), None) is not None \
                    and self.scopes[_parent(s.path)].kind == "repeat":
                self.instances.setdefault(_parent(s.path), []).append(s.path)
        self.instance_no = {r: {inst: k for k, inst in enumerate(insts)} for r, insts in self.instances.items()}
        self.collapsed: set[str] = set()
        self.reps: dict[str, int] = {}  # collapsed repeat -> instances drawn: the first, or first and second
        self.dense_loops: dict[str, int] = {}
        for s in g.scopes:
            if s.kind != "repeat" or s.path in self.expand or len(self.instances.get(s.path, [])) < 2:
                continue
            if self._collapsible(s):
                self.collapsed.add(s.path)
                self.reps[s.path] = 1 if s.connect == "dense" or self._alike(s.path) else 2

    def _alike(self, r: str) -> bool:
        """Are the first and second instance the same ops with the same attributes?"""
        def signature(inst: str) -> list[tuple[str, str, str, str]]:
            return [(n.name[len(inst):], n.op, n.provenance, repr(sorted(n.attrs.items())))
                    for n in self.members_of[inst]]

        first, second = self.instances[r][:2]
        return signature(first) == signature(second)

    def _where(self, r: str, name: str) -> int | None:
        """Instance index of ``name`` in repeat ``r``; -1 for r's own nodes (dense concats); None outside."""
        if not name.startswith(r + "."):
            return None
        first = name[len(r) + 1:].split(".", 1)[0]  # an instance's name is one identifier
        k = self.instance_no[r].get(f"{r}.{first}")
        return -1 if k is None or "." not in name[len(r) + 1:] else k

    def _kept_extra(self, r: str, name: str) -> bool:
        """A repeat's own node (a dense concat) that feeds outside the repeat, or an output."""
        return name in self.g.outputs or any(self._where(r, c) is None for c in self.consumers.get(name, []))

    def _collapsible(self, s: Scope) -> bool:
        r, last = s.path, len(self.instances[s.path]) - 1
        r_input: set[str] = set()
        for n in self.members_of[r]:
            w = self._where(r, n.name)
            if w != 0 and n.error is not None:
                return False  # never hide an error
            shown_end = w == last or (w == -1 and self._kept_extra(r, n.name))
            if n.name in self.g.outputs and not shown_end:
                return False
            for src in n.inputs:
                src = self.resolve(src)
                if self._where(r, src) is None:  # entering r
                    if w == 0 or (w == -1 and self._kept_extra(r, n.name)):
                        r_input.add(src)
                    elif w == -1 and s.connect == "dense" and src in r_input:
                        pass  # the block input to a dense concat: the loop stands for it
                    else:
                        return False
            if not shown_end and any(self._where(r, c) is None for c in self.consumers.get(n.name, [])):
                return False  # leaving r from an instance that will not be drawn
        if s.connect == "dense":
            hidden = [n for n in self.members_of[r] if self._where(r, n.name) == -1 and not self._kept_extra(r, n.name)]
            self.dense_loops[r] = sum(len(n.inputs) - 1 for n in hidden)  # all but each concat's main input
        return True

    def _map(self) -> None:
        """Every IR name -> the drawn id standing for it (None: not drawn)."""
        self.draw_id: dict[str, str | None] = {k: k for k in self.g.inputs}
        self.hidden_rep: dict[str, bool] = {}
        for n in self.g.nodes:
            self.draw_id[n.name] = self._map_one(n.name)

    def _rep(self, name: str) -> tuple[str | None, bool]:
        """The name in the drawn (first) instance of each collapsed repeat around ``name``."""
        mapped = False
        chain = self.scope_chain(name)
        for r in chain:
            if r not in self.collapsed or not name.startswith(r + "."):
                continue
            w = self._where(r, name)
            if w == -1:
                if not self._kept_extra(r, name):
                    return None, True
            elif w is not None and w >= self.reps[r]:
                # Instances past the drawn ones map onto the last drawn one.
                shown = self.instances[r][self.reps[r] - 1]
                name = shown + name[len(self.instances[r][w]):]
                mapped = True
                if name not in self.idx:
                    return None, True
        return name, mapped

    def _map_one(self, name: str) -> str | None:
        n = self.idx[name]
        if n.disabled:
            return None
        rep, mapped = self._rep(name)
        self.hidden_rep[name] = mapped
        if rep is None:
            return None
        if self.depth is not None:
            chain = self.scope_chain(rep)
            if len(chain) > self.depth:
                return "scope:" + chain[self.depth]
        return self.group.get(rep, rep)

    # - nodes -
    def _nodes(self, d: Drawing) -> None:
        g = self.g
        for name, shape in g.inputs.items():
            loc = g.input_locs.get(name)
            d.nodes[name] = DNode(id=name, kind="input", head=name, name="input", shape=tuple(shape),
                                  tooltip=f"input {name}: {fmt_shape(tuple(shape))}" + (f"\n{loc}" if loc else ""))
        for n in g.nodes:
            did = self.draw_id[n.name]
            if did is None:
                continue
            if did.startswith("scope:"):
                if did not in d.nodes:
                    d.nodes[did] = self._box_node(did)
                continue
            if did in d.nodes or self.hidden_rep.get(n.name):
                continue
            d.nodes[did] = self._op_node(did)
        for k, out in enumerate(g.outputs):
            src = self.draw_id.get(self.resolve(out)) if out not in g.inputs else out
            if src is None:
                continue
            oid = f"output:{out}"
            loc = g.output_locs.get(out)
            d.nodes[oid] = DNode(id=oid, kind="output", head=f"output {k}" if len(g.outputs) > 1 else "output",
                                 name=out, shape=self.shapes.get(out),
                                 tooltip=f"output {out}: {fmt_shape(self.shapes.get(out))}"
                                 + (f"\n{loc}" if loc else ""))
        for node in d.nodes.values():
            if node.kind in ("op", "merge", "proj"):
                node.cluster = self._cluster_of(node.id)
            elif node.kind == "box":
                chain = self.scope_chain(node.id[len("scope:"):] + ".x")
                node.cluster = self._drawn_cluster(chain[:-1])

    def _op_node(self, head: str) -> DNode:
        members = self.members.get(head, [head])
        nodes = [self.idx[m] for m in members]
        first, last = nodes[0], nodes[-1]
        params = sum(self.param[m] for m in members)
        error = next((m.error for m in nodes if m.error is not None), None)
        if first.provenance == "auto":
            kind: Literal["op", "merge", "proj"] = "proj"
            headline = first.projection.label if first.projection is not None else "projection (auto)"
            extra = [" + ".join(m.op for m in nodes)]
            why = first.projection.rule if first.projection is not None else ""
        else:
            op = _op(first.op)
            kind = "merge" if op is not None and op.role == "merge" else "op"
            headline = self._summary(first)
            extra = ["+ " + " + ".join(m.op for m in nodes[1:])] if len(nodes) > 1 else []
            if first.share is not None:
                extra.append(f"weights of {first.share}")
            why = ""
        tip = [f"{first.name} ({first.op})" + (f" — {first.loc}" if first.loc else "")]
        if why:
            tip.append(f"auto projection: {why}")
            tip.append("nodes: " + ", ".join(f"{m.name} ({m.op})" for m in nodes))
        elif len(nodes) > 1:
            tip.append("folded: " + ", ".join(f"{m.name} ({m.op}, line {m.loc.line})" if m.loc else m.name
                                              for m in nodes[1:]))
        if first.path:
            tip.append(f"spec path: {first.path}")
        if first.share is not None:
            tip.append(f"shares the module of {first.share}")
        tip.append(f"output {fmt_shape(last.shape)}, {params:,} parameters")
        if error is not None:
            tip.append(error.render())
        return DNode(id=head, kind=kind, head=headline, name=first.name if kind != "proj" else _parent(first.name)
                     or first.name, extra=extra, params=params, shape=last.shape, tooltip="\n".join(tip),
                     error=error.message if error is not None else None, unknown=last.shape is None and error is None)

    def _box_node(self, did: str) -> DNode:
        """One box for a whole scope (``depth=``): every instance of a collapsed repeat counts."""
        path = did[len("scope:"):]
        s = self.scopes[path]
        node = DNode(id=did, kind="box", head=path, name="")
        members = [n for n in self.members_of[path] if not n.disabled]
        outs = [m for m in members if m.name in self.g.outputs
                or any(not c.startswith(path + ".") for c in self.consumers.get(m.name, []))]
        what = s.block or s.kind
        node.extra = [f"{what} ×{s.count}" if s.kind == "repeat" else what]
        node.params = sum(self.param[m.name] for m in members)
        node.shape = outs[-1].shape if outs else members[-1].shape
        errs = [m.error for m in members if m.error is not None]
        node.error = errs[0].message if errs else None
        node.tooltip = (f"{path}: {s.kind} of {len(members)} nodes" + (f" — {s.loc}" if s.loc else "")
                        + f"\n{node.params:,} parameters" + (f"\n{errs[0].render()}" if errs else ""))
        return node

    def _summary(self, n: Node) -> str:
        """The op and its telling attributes (``conv 3×3/2 64→128``): the op's own label."""
        op = _op(n.op)
        if op is None:
            return n.op
        try:
            return op.label(n.attrs, [self.shapes.get(i) for i in n.inputs])
        except (AttributeError, ArchSpecError):  # a hand-built node whose attributes the op refuses
            return n.op

    def _drawn_cluster(self, chain: list[str]) -> str | None:
        drawn = [c for c in chain if self._is_cluster(c)]
        return drawn[-1] if drawn else None

    def _cluster_of(self, did: str) -> str | None:
        return self._drawn_cluster(self.scope_chain(did))

    def _is_cluster(self, path: str) -> bool:
        """Repeats, groups, top-level blocks, and the instances of an expanded repeat."""
        s = self.scopes[path]
        parent = self.scopes.get(_parent(path))
        if s.kind in ("repeat", "group"):
            return True
        if parent is None:
            return True
        if parent.kind == "repeat":
            return parent.path not in self.collapsed or self.reps[parent.path] > 1
        return parent.kind == "group"

    # - edges -
    def _edges(self, d: Drawing) -> None:
        g = self.g
        seen: dict[tuple[str, str, str], DEdge] = {}
        for n in g.nodes:
            v = self.draw_id[n.name]
            if v is None or v not in d.nodes:
                continue
            prev = self.bus.get(n.name)
            bus = prev is not None and self.draw_id.get(prev) in d.nodes
            for slot, src in enumerate(n.inputs):
                carried = 1
                if bus and slot != self.main_in.get(n.name):
                    # A dense concat's other inputs are exactly the previous concat's: draw
                    # that one edge (the running concat) instead of one per earlier layer.
                    assert prev is not None
                    src, carried = prev, len(n.inputs) - 1
                src_r = self.resolve(src)
                u = self.draw_id.get(src_r)
                if u is None or u == v or u not in d.nodes:
                    continue
                if self._inter_instance(src_r, n.name):
                    continue
                role, span = self._role(n, slot)
                if carried > 1:
                    span = self.depth_of[n.inputs[self.main_in[n.name]]] - self.depth_of[prev]  # type: ignore[index]  # prev is set when carried > 1
                key = (u, v, role)
                if key in seen:
                    seen[key].count += 0 if carried > 1 else 1
                    if span is not None and (seen[key].span or 0) < span:
                        seen[key].span = span  # a collapsed repeat's skips: the longest
                    continue
                e = DEdge(u, v, role, self.shapes.get(src), span, error=n.error is not None, carried=carried)
                seen[key] = e
                d.edges.append(e)
        for out in g.outputs:
            oid = f"output:{out}"
            if oid in d.nodes:
                drawn = out if out in g.inputs else self.draw_id.get(self.resolve(out))
                if drawn is not None:
                    d.edges.append(DEdge(drawn, oid, "main", self.shapes.get(out)))
        for r, count in sorted(self.dense_loops.items()):
            inst0 = self.instances[r][0]
            ins = [x for x in d.nodes.values() if x.id.startswith(inst0 + ".")]
            if ins and count:
                d.edges.append(DEdge(ins[-1].id, ins[0].id, "concat", None, count=count, dense=True))

    def _role(self, n: Node, slot: int) -> tuple[Role, int | None]:
        if n.provenance == "auto":  # a projection sits on a skip: the edges into it are the skip's
            merge = self.idx.get(n.projection.merge) if n.projection is not None else None
            if merge is not None:
                assert n.projection is not None
                role, _ = self.roles.get((merge.name, n.projection.slot), ("residual", None))
                return role, None
        return self.roles.get((n.name, slot), ("main", None))

    def _inter_instance(self, src: str, dst: str) -> bool:
        """An edge between two instances of a collapsed repeat: the ×N stands for it."""
        common = set(self.scope_chain(src)) & set(self.scope_chain(dst)) & self.collapsed
        for r in sorted(common):
            a, b = self._where(r, src), self._where(r, dst)
            if a is not None and b is not None and a != b and -1 not in (a, b):
                return not (self.reps[r] == 2 and {a, b} == {0, 1})  # first -> second is drawn
            if a is not None and b is not None and (a == -1) != (b == -1):
                # instance <-> a hidden dense concat
                extra = src if a == -1 else dst
                if not self._kept_extra(r, extra):
                    return True
        return False

    # - clusters -
    def _clusters(self, d: Drawing) -> None:
        used: set[str] = set()
        for node in d.nodes.values():
            c = node.cluster
            while c is not None and c not in used:
                used.add(c)
                c = self._drawn_cluster(self.scope_chain(c + ".x")[:-1])
        for s in self.g.scopes:
            if s.path not in used:
                continue
            parent = self._drawn_cluster(self.scope_chain(s.path + ".x")[:-1])
            params = sum(self.param[m.name] for m in self.members_of[s.path])
            note = ""
            if s.kind == "repeat":
                label = f"{s.path} · {s.block} ×{s.count}" + (" · dense" if s.connect == "dense" else "")
                if self.reps.get(s.path) == 1:
                    note = f"\nthe first of {s.count} alike is drawn"
                elif self.reps.get(s.path) == 2 and s.count is not None and s.count > 2:
                    note = f"\nthe second stands for the {s.count - 1} after the first"
                kind = "repeat"
            elif s.kind == "group":
                label, kind = s.path, "group"
            else:
                label = f"{s.path} · {s.block}" if s.block else s.path
                kind = "instance" if parent is not None and self.scopes[parent].kind == "repeat" else "block"
                r = _parent(s.path)
                if kind == "instance" and self.reps.get(r) == 2 and self.instances[r].index(s.path) == 1:
                    count = len(self.instances[r]) - 1
                    label = f"{s.path} … {self.instances[r][-1]} · ×{count}" if count > 1 else label
                    params = sum(self.param[m.name] for i in self.instances[r][1:] for m in self.members_of[i])
            if params:
                label += f" · {fmt_count(params)} params"
            label += note
            what = {"repeat": f"repeat of block {s.block} ×{s.count}, connect: {s.connect}",
                    "block": f"instance of block {s.block}", "group": "group"}[s.kind]
            tip = f"{s.path}: {what}" + (f" — {s.loc}" if s.loc else "") + f"\n{params:,} parameters"
            d.clusters[s.path] = DCluster(s.path, kind, label, parent, tip)

    # - title, colours -
    def _title(self) -> str:
        g = self.g
        total = sum(self.param.values())
        ins = ", ".join(f"{k} {fmt_shape(tuple(v))}" for k, v in g.inputs.items())
        outs = ", ".join(fmt_shape(self.shapes.get(o)) for o in g.outputs)
        errs = len(g.errors())
        bad = f" · {errs} error{'s' if errs > 1 else ''}" if errs else ""
        return f"{g.name} · {total:,} params · {ins} → {outs}{bad}"

    def _resolutions(self) -> list[tuple[int, ...]]:
        sizes = {tuple(s[1:]) for s in self.shapes.values() if s is not None and len(s) >= 2}
        return sorted(sizes, key=lambda t: (-_prod(t), t))


class _ChainMin:
    """The smallest spatial size (of one rank) on a main-input chain above a depth.

    Each node's main input is its parent; ``up[k][v]`` is the node ``2**k`` steps up from
    ``v`` and ``low[k][v]``/``last[k][v]`` the smallest size and the depth of the last
    node among the ``2**k`` nodes starting at ``v``. Depth never grows up a chain, so the
    nodes deeper than a bound are a prefix of it, found in O(log n)."""

    INF = float("inf")

    def __init__(self, b: _Builder, rank: int, depth: dict[str, int]) -> None:
        names = [n.name for n in b.g.nodes]
        pos = {name: k for k, name in enumerate(names)}
        parent: list[int] = []
        for n in b.g.nodes:
            src = n.inputs[b.main_in.get(n.name, 0)] if n.inputs else None
            parent.append(pos.get(src, -1) if src is not None else -1)
        size = []
        for name in names:
            s = b.shapes.get(name)
            size.append(_prod(s[1:]) if s is not None and len(s) == rank else self.INF)
        self.pos = pos
        self.up = [parent]
        self.low = [size]
        self.last = [[depth.get(name, 0) for name in names]]
        while any(p >= 0 for p in self.up[-1]):
            up, low, last = self.up[-1], self.low[-1], self.last[-1]
            self.up.append([up[up[v]] if up[v] >= 0 else -1 for v in range(len(names))])
            self.low.append([min(low[v], low[up[v]]) if up[v] >= 0 else low[v] for v in range(len(names))])
            self.last.append([last[up[v]] if up[v] >= 0 else last[v] for v in range(len(names))])

    def below(self, start: str, stop: int) -> float:
        """The smallest size on the chain from ``start`` over nodes deeper than ``stop``."""
        v = self.pos.get(start, -1)
        best = self.INF
        for k in range(len(self.up) - 1, -1, -1):  # the prefix's length, bit by bit
            if v >= 0 and self.last[k][v] > stop:
                best = min(best, self.low[k][v])
                v = self.up[k][v]
        return best


def _prod(xs: Sequence[int]) -> int:
    p = 1
    for x in xs:
        p *= x
    return p


# -- DOT ---------------------------------------------------------------------------------

def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _h(text: str) -> str:
    """Text inside an HTML-like label."""
    return html.escape(text, quote=True)


def _colour(d: Drawing, shape: Shape | None) -> str:
    lvl = d.level(shape)
    if lvl is None:
        return VECTOR_COLOUR
    return RES_COLOURS[lvl % len(RES_COLOURS)]


def _node_label(n: DNode) -> str:
    rows = [f"<b>{_h(n.head)}</b>"]
    rows += [_h(x) for x in n.extra]
    small = " · ".join(x for x in (n.name, f"{fmt_count(n.params)} params" if n.params else "") if x)
    if small:
        rows.append(f'<font point-size="8" color="#546e7a">{_h(small)}</font>')
    if n.error:
        for line in textwrap.wrap(n.error, 44)[:6]:
            rows.append(f'<font point-size="9" color="{ERROR_LINE}">{_h(line)}</font>')
    return "<" + "<br/>".join(rows) + ">"


def _node_attrs(d: Drawing, n: DNode) -> str:
    attrs: list[str] = []
    if n.kind == "input":
        attrs += ['shape=oval', 'style=filled', 'fillcolor="#eceff1"',
                  f"label=<<b>{_h(n.head)}</b><br/>{_h(fmt_shape(n.shape))}>"]
    elif n.kind == "output":
        attrs += ['shape=oval', 'style=filled', 'fillcolor="#eceff1"',
                  f"label=<<b>{_h(n.head)}</b><br/>{_h(n.name)} {_h(fmt_shape(n.shape))}>"]
    else:
        attrs.append(f"label={_node_label(n)}")
        if n.kind == "merge":
            attrs += ['shape=box', 'style="rounded,filled"', 'fillcolor="#fff8e1"', 'color="#ffa000"']
        elif n.kind == "proj":
            attrs += ['style="rounded,filled,bold"', f'fillcolor="{AUTO_FILL}"', f'color="{AUTO_LINE}"',
                      'penwidth=2', 'peripheries=2']
        elif n.kind == "box":
            attrs += ['shape=box3d', 'style=filled', 'fillcolor="#e3f2fd"']
        if n.unknown:
            attrs += ['style="rounded,dashed"', 'fontcolor="#9e9e9e"', 'color="#bdbdbd"']
        if n.error:
            attrs += ['style="rounded,filled,bold"', f'fillcolor="{ERROR_FILL}"', f'color="{ERROR_LINE}"',
                      'penwidth=2.5']
    attrs.append(f"tooltip={_q(n.tooltip)}")
    if n.kind in ("op", "merge", "box") and not n.error and not n.unknown:
        attrs.append(f'color="{_colour(d, n.shape)}"')
    return ", ".join(attrs)


def _edge_attrs(d: Drawing, e: DEdge) -> str:
    shape = fmt_shape(e.shape)
    attrs: list[str]
    if e.dense:
        attrs = ["style=dashed", f'color="{SKIP_COLOURS["concat"]}"', "penwidth=1.6", "constraint=false",
                 f"label={_q(f'dense: {e.count} concat skips, each layer to every later one')}",
                 f'fontcolor="{SKIP_COLOURS["concat"]}"']
    elif e.role in ("residual", "concat"):
        colour = SKIP_COLOURS[e.role]
        if e.count > 1:  # several skips of a collapsed repeat drawn as one
            label = f"{e.count} skips, up to {e.span} ops" if e.span is not None else f"{e.count} skips"
        else:
            label = f"skip {e.span} ops" if e.span is not None else ""
        label = (label + "\n" if label else "") + shape
        if e.carried > 1:
            label += f"\ncarries {e.carried}"
        attrs = ["style=dashed", f'color="{colour}"', "penwidth=1.8", "weight=0", f"label={_q(label)}",
                 f'fontcolor="{colour}"', "arrowhead=empty"]
        if d.u_layout:
            attrs.append("constraint=false")
    elif e.role == "size":  # only the size is read: a thin dotted edge that does not pull the layout
        attrs = ["style=dotted", f'color="{SIZE_COLOUR}"', "penwidth=1.2", "weight=0", "constraint=false",
                 f"label={_q('size ' + shape)}", f'fontcolor="{SIZE_COLOUR}"', "arrowhead=odot"]
    elif e.role == "branch":
        attrs = [f'color="{_colour(d, e.shape)}"', "penwidth=1.2", "weight=1", f"label={_q(shape)}",
                 f'fontcolor="{_colour(d, e.shape)}"']
    else:
        # In a U, an edge between two rows (a pool, an up-sampling) must not pull the rows into a staircase.
        lvl = d.level(d.nodes[e.src].shape), d.level(d.nodes[e.dst].shape)
        weight = 0 if d.u_layout and lvl[0] != lvl[1] else MAIN_WEIGHT
        attrs = [f'color="{_colour(d, e.shape)}"', "penwidth=2.6", f"weight={weight}", f"label={_q(shape)}",
                 f'fontcolor="{_colour(d, e.shape)}"']
    if e.error:
        attrs = [a for a in attrs if not a.startswith(("color", "fontcolor"))]
        attrs += [f'color="{ERROR_LINE}"', f'fontcolor="{ERROR_LINE}"', "penwidth=2.6"]
    if e.back:
        attrs.append("dir=back")
    role = "dense" if e.dense else e.role
    attrs.append(f"class={_q(role)}")
    tip = f"{role}: {e.src} → {e.dst}, {shape}"
    if e.carried > 1:
        tip += f" (the running concat: it carries the block input and {e.carried - 1} earlier outputs)"
    attrs.append(f"tooltip={_q(tip)}")
    return ", ".join(attrs)


def _legend(d: Drawing) -> str:
    rows = ['<tr><td colspan="2" align="left"><b>legend</b></td></tr>']

    def row(sym: str, colour: str, text: str) -> None:
        rows.append(f'<tr><td align="left"><font color="{colour}">{sym}</font></td>'
                    f'<td align="left">{_h(text)}</td></tr>')

    row("━━━", RES_COLOURS[0], "main path (C×H×W)")
    row("╍╍▷", SKIP_COLOURS["residual"], "residual skip (add/mul/lerp)")
    row("╍╍▷", SKIP_COLOURS["concat"], "concat skip")
    if any(e.role == "size" for e in d.edges):
        row("┈┈○", SIZE_COLOUR, "size only (crop, upsample to a node's size)")
    row("■", AUTO_LINE, "projection inserted (auto)")
    if d.errors:
        row("■", ERROR_LINE, "shape error")
    for k, res in enumerate(d.resolutions[: len(RES_COLOURS)]):
        row("━━━", RES_COLOURS[k], "×".join(map(str, res)))
    return ("<<table border=\"0\" cellborder=\"0\" cellspacing=\"0\" cellpadding=\"1\">"
            + "".join(rows) + "</table>>")



def _tree(d: Drawing) -> tuple[dict[str | None, list[DNode]], dict[str | None, list[str]]]:
    """The drawing's nodes by cluster, and each cluster's child clusters (None: the top)."""
    by_cluster: dict[str | None, list[DNode]] = {}
    for n in d.nodes.values():
        by_cluster.setdefault(n.cluster, []).append(n)
    children: dict[str | None, list[str]] = {}
    for c in d.clusters.values():
        children.setdefault(c.parent, []).append(c.path)
    return by_cluster, children

DIRECTIONS = ("TB", "LR")


def dot_source(d: Drawing, direction: str = "TB") -> str:
    """The DOT text of a Drawing: deterministic, ids are IR names. ``direction`` is TB
    (top to bottom) or LR (left to right)."""
    _check_direction(direction)
    out = [f"digraph {_q(d.name)} {{",
           f"  graph [rankdir={direction}, newrank=true, compound=true, nodesep=0.3, ranksep=0.32, fontname=\"Helvetica\", "
           f"fontsize=12, labelloc=t, label={_q(d.title)}, tooltip={_q(d.title)}];",
           '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#78909c", fontname="Helvetica", '
           'fontsize=10, margin="0.1,0.03", height=0.3];',
           '  edge [fontname="Helvetica", fontsize=8, arrowsize=0.6, color="#455a64"];',
           "  \"legend:\" [shape=plaintext, style=\"\", label=" + _legend(d) + ", tooltip=\"legend\"];"]
    by_cluster, children = _tree(d)

    def emit(cluster: str | None, indent: str) -> None:
        for n in by_cluster.get(cluster, []):
            out.append(f"{indent}{_q(n.id)} [{_node_attrs(d, n)}];")
        for sub in children.get(cluster, []):
            c = d.clusters[sub]
            out.append(f"{indent}subgraph {_q('cluster_' + c.path)} {{")
            style = {"repeat": ('style="rounded,filled"', 'fillcolor="#f5f7fa"', 'color="#607d8b"', "penwidth=1.5"),
                     "instance": ('style="rounded,dashed"', 'color="#90a4ae"'),
                     "block": ('style="rounded,dashed"', 'color="#90a4ae"'),
                     "group": ('style="rounded"', 'color="#90a4ae"')}[c.kind]
            out.append(f"{indent}  {'; '.join(style)};")
            size = 11 if c.kind == "repeat" else 9
            label = '"' + "\\l".join(_q(x)[1:-1] for x in c.label.split("\n")) + '\\l"'  # \l: left-justified lines
            out.append(f"{indent}  label={label}; fontsize={size}; labeljust=l; tooltip={_q(c.tooltip)};")
            emit(sub, indent + "  ")
            out.append(f"{indent}}}")

    emit(None, "  ")
    for e in d.edges:
        a, b = (e.dst, e.src) if e.back else (e.src, e.dst)
        out.append(f"  {_q(a)} -> {_q(b)} [{_edge_attrs(d, e)}];")
    for ids in d.ranks():
        out.append("  {rank=same; " + " ".join(_q(i) + ";" for i in ids) + "}")
    out.append("}")
    return "\n".join(out) + "\n"


# -- Mermaid -------------------------------------------------------------------------------

def _m(text: str) -> str:
    """Text inside a Mermaid quoted label."""
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
            .replace("%", "#37;").replace("\n", "<br/>"))  # '%': no %%{init}%% directive from a spec


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ArchSpecError(f"unknown direction '{direction}'", expected="TB or LR")


def mermaid_source(d: Drawing, direction: str = "TB") -> str:
    """Mermaid ``flowchart TB`` (or ``LR``) text: GitHub and most markdown viewers draw it."""
    _check_direction(direction)
    ids = {nid: f"n{k}" for k, nid in enumerate(d.nodes)}
    out = ["%% " + " ".join(d.title.replace("%", "#37;").replace("{", "(").replace("}", ")").split()),
           f"flowchart {direction}",
           f"  classDef auto fill:{AUTO_FILL},stroke:{AUTO_LINE},stroke-width:3px",
           f"  classDef error fill:{ERROR_FILL},stroke:{ERROR_LINE},stroke-width:3px",
           "  classDef merge fill:#fff8e1,stroke:#ffa000",
           "  classDef io fill:#eceff1,stroke:#78909c"]
    by_cluster, children = _tree(d)
    cids = {path: f"c{k}" for k, path in enumerate(d.clusters)}

    def label(n: DNode) -> str:
        if n.kind in ("input", "output"):
            return f"{n.head}\n{n.name + ' ' if n.kind == 'output' else ''}{fmt_shape(n.shape)}"
        parts = [n.head, *n.extra]
        small = " · ".join(x for x in (n.name, f"{fmt_count(n.params)} params" if n.params else "") if x)
        if small:
            parts.append(small)
        if n.error:
            parts.append("✗ " + n.error)
        return "\n".join(parts)

    def emit(cluster: str | None, indent: str) -> None:
        for n in by_cluster.get(cluster, []):
            text = _m(label(n))
            if n.kind in ("input", "output"):
                out.append(f'{indent}{ids[n.id]}(["{text}"]):::io')
            else:
                cls = ":::error" if n.error else ":::auto" if n.kind == "proj" else ":::merge" if n.kind == "merge" else ""
                out.append(f'{indent}{ids[n.id]}["{text}"]{cls}')
        for sub in children.get(cluster, []):
            out.append(f'{indent}subgraph {cids[sub]}["{_m(d.clusters[sub].label)}"]')
            emit(sub, indent + "  ")
            out.append(f"{indent}end")

    emit(None, "  ")
    styles: list[str] = []
    for k, e in enumerate(d.edges):
        a, b = ids[e.src], ids[e.dst]
        if e.dense:
            text = f"dense: {e.count} concat skips"
        elif e.role in ("residual", "concat"):
            many = f"{e.count} skips, up to {e.span} ops · " if e.count > 1 else f"skip {e.span} ops · "
            text = (many if e.span is not None else "") + fmt_shape(e.shape)
        elif e.role == "size":
            text = "size " + fmt_shape(e.shape)
        else:
            text = fmt_shape(e.shape)
        arrow = "-.->" if e.role in ("residual", "concat", "size") or e.dense else "==>" if e.role == "main" else "-->"
        out.append(f'  {a} {arrow}|"{_m(text)}"| {b}')
        colour = ERROR_LINE if e.error else SIZE_COLOUR if e.role == "size" else SKIP_COLOURS.get(e.role, _colour(d, e.shape))
        styles.append(f"  linkStyle {k} stroke:{colour}")
    out += styles
    return "\n".join(out) + "\n"
