"""Mermaid: a :class:`~archspec.render.model.Drawing` as ``flowchart`` text, which GitHub,
JupyterLab and most markdown viewers draw without graphviz.
"""

from __future__ import annotations

from typing import Any

from ..ir import Graph
from .drawing import drawing
from .model import DNode, Drawing, check_direction, fmt_count, fmt_shape
from .style import (
    AUTO_FILL,
    AUTO_LINE,
    ERROR_FILL,
    ERROR_LINE,
    SIZE_COLOUR,
    SKIP_COLOURS,
    shape_colour,
)


def to_mermaid(graph: Graph, **options: Any) -> str:
    """Mermaid ``flowchart`` text of ``graph``; options as for :func:`~archspec.render.drawing.drawing`."""
    return mermaid_source(drawing(graph, **options))


def _m(text: str) -> str:
    """Text inside a Mermaid quoted label."""
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
            .replace("%", "#37;").replace("\n", "<br/>"))  # '%': no %%{init}%% directive from a spec


def mermaid_source(d: Drawing, direction: str = "TB") -> str:
    """Mermaid ``flowchart TB`` (or ``LR``) text: GitHub and most markdown viewers draw it."""
    check_direction(direction)
    ids = {nid: f"n{k}" for k, nid in enumerate(d.nodes)}
    out = ["%% " + " ".join(d.title.replace("%", "#37;").replace("{", "(").replace("}", ")").split()),
           f"flowchart {direction}",
           f"  classDef auto fill:{AUTO_FILL},stroke:{AUTO_LINE},stroke-width:3px",
           f"  classDef error fill:{ERROR_FILL},stroke:{ERROR_LINE},stroke-width:3px",
           "  classDef merge fill:#fff8e1,stroke:#ffa000",
           "  classDef io fill:#eceff1,stroke:#78909c"]
    by_cluster, children = d.tree()
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
        colour = (ERROR_LINE if e.error else SIZE_COLOUR if e.role == "size"
                  else SKIP_COLOURS.get(e.role, shape_colour(d, e.shape)))
        styles.append(f"  linkStyle {k} stroke:{colour}")
    out += styles
    return "\n".join(out) + "\n"
