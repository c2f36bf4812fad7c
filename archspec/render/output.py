"""Output: formats and file names, graphviz's ``dot`` process, writing a drawing to a file,
and the drawings Jupyter shows.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ArchSpecError, OutputError, close_matches
from ..io import write_bytes, write_text
from ..ir import Graph
from .dot import dot_source, to_dot
from .drawing import drawing
from .mermaid import mermaid_source
from .model import Drawing

FORMATS = ("svg", "png", "pdf", "dot", "mermaid")
IMAGE_FORMATS = frozenset({"svg", "png", "pdf"})
SUFFIXES = {"svg": ".svg", "png": ".png", "pdf": ".pdf", "dot": ".dot", "gv": ".dot", "mermaid": ".mmd",
            "mmd": ".mmd"}
DOT_TIMEOUT_S = 20  # seconds; a drawing within --max-render-nodes takes a few
INSTALL_GRAPHVIZ = ("install graphviz (apt-get install graphviz, brew install graphviz, or conda install "
                    "-c conda-forge graphviz), or write --format dot or --format mermaid, which need no graphviz")


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
