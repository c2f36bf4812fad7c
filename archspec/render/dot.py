"""DOT: a :class:`~archspec.render.model.Drawing` as graphviz text.

Deterministic; node ids are IR names. Every string from a spec is quoted (``_q``) or
HTML-escaped (``_h``) here, and nowhere else.
"""

from __future__ import annotations

import html
import textwrap
from typing import Any

from ..ir import Graph
from .drawing import drawing
from .model import DEdge, DNode, Drawing, check_direction, fmt_count, fmt_shape
from .style import (
    AUTO_FILL,
    AUTO_LINE,
    ERROR_FILL,
    ERROR_LINE,
    MAIN_WEIGHT,
    RES_COLOURS,
    SIZE_COLOUR,
    SKIP_COLOURS,
    shape_colour,
)


def to_dot(graph: Graph, **options: Any) -> str:
    """DOT text of ``graph``; options as for :func:`~archspec.render.drawing.drawing`."""
    return dot_source(drawing(graph, **options))


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _h(text: str) -> str:
    """Text inside an HTML-like label."""
    return html.escape(text, quote=True)


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
        attrs.append(f'color="{shape_colour(d, n.shape)}"')
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
        attrs = [f'color="{shape_colour(d, e.shape)}"', "penwidth=1.2", "weight=1", f"label={_q(shape)}",
                 f'fontcolor="{shape_colour(d, e.shape)}"']
    else:
        # In a U, an edge between two rows (a pool, an up-sampling) must not pull the rows into a staircase.
        lvl = d.level(d.nodes[e.src].shape), d.level(d.nodes[e.dst].shape)
        weight = 0 if d.u_layout and lvl[0] != lvl[1] else MAIN_WEIGHT
        attrs = [f'color="{shape_colour(d, e.shape)}"', "penwidth=2.6", f"weight={weight}", f"label={_q(shape)}",
                 f'fontcolor="{shape_colour(d, e.shape)}"']
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






def dot_source(d: Drawing, direction: str = "TB") -> str:
    """The DOT text of a Drawing: deterministic, ids are IR names. ``direction`` is TB
    (top to bottom) or LR (left to right)."""
    check_direction(direction)
    out = [f"digraph {_q(d.name)} {{",
           f"  graph [rankdir={direction}, newrank=true, compound=true, nodesep=0.3, ranksep=0.32, fontname=\"Helvetica\", "
           f"fontsize=12, labelloc=t, label={_q(d.title)}, tooltip={_q(d.title)}];",
           '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", color="#78909c", fontname="Helvetica", '
           'fontsize=10, margin="0.1,0.03", height=0.3];',
           '  edge [fontname="Helvetica", fontsize=8, arrowsize=0.6, color="#455a64"];',
           "  \"legend:\" [shape=plaintext, style=\"\", label=" + _legend(d) + ", tooltip=\"legend\"];"]
    by_cluster, children = d.tree()

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
