"""Render: a checked (or failing) Graph as graphviz DOT and SVG. No torch."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from .errors import OutputError
from .io import write_bytes, write_text
from .ir import Graph


def _fmt(shape: tuple[int, ...] | None) -> str:
    return "×".join(str(d) for d in shape) if shape else "?"


def to_dot(graph: Graph) -> str:
    """DOT text of the graph: one box per node labelled with op and shape."""
    lines = [f'digraph "{graph.name}" {{', "  rankdir=TB;", '  node [shape=box, fontname="Helvetica", fontsize=10];']
    for name, shape in graph.inputs.items():
        lines.append(f'  "{name}" [label="{name}\\n{_fmt(tuple(shape))}", shape=oval];')
    for n in graph.nodes:
        style = ', style="filled,bold", fillcolor="#f3e5f5", color="#8e24aa"' if n.provenance == "auto" else ""
        lines.append(f'  "{n.name}" [label="{n.name}\\n{n.op}\\n{_fmt(n.shape)}"{style}];')
        for i, src in enumerate(n.inputs):
            skip = ', style=dashed, color="#1e88e5"' if i > 0 and n.op in ("add", "mul", "lerp") else ""
            lines.append(f'  "{src}" -> "{n.name}"{skip};')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(graph: Graph, path: str | Path, *, force: bool = False, protect: Iterable[str | Path] = ()) -> list[Path]:
    """Write ``path`` (.svg) and the DOT beside it; without `dot`, only the DOT."""
    path = Path(path)
    dot_text = to_dot(graph)
    written = [write_text(path.with_suffix(".dot"), dot_text, force=force, protect=protect)]
    if path.suffix == ".dot":
        return written
    if shutil.which("dot") is None:
        raise OutputError("cannot write SVG: graphviz's 'dot' program is not installed (the DOT file was written)",
                          fix="apt-get install graphviz (or brew install graphviz)")
    import graphviz

    svg = graphviz.Source(dot_text).pipe(format=path.suffix.lstrip(".") or "svg")
    written.append(write_bytes(path, svg, force=force, protect=protect))
    return written
