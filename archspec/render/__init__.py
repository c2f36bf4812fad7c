"""Render: draw a Graph's skip topology as graphviz DOT (then SVG/PNG/PDF) or Mermaid.

No torch here: a drawing needs only the IR, its shapes and the op registry's parameter
counts. The work is done in two steps:

1. :func:`drawing` turns a :class:`~archspec.ir.Graph` (checked, or from
   :func:`~archspec.api.analyse` with errors left on its nodes) into a :class:`Drawing`:
   the nodes, edges and clusters that will be drawn, with every edge's *role*;
2. :func:`dot_source` and :func:`mermaid_source` write a Drawing as text.

The package, one job a module:

- ``model.py``: the Drawing and its nodes, edges and clusters (plain data);
- ``view.py``: the facts about a Graph every step looks up, computed once;
- ``roles.py``: skip roles and the U layout (pure functions returning values);
- ``collapse.py``: folding, collapsed repeats, which drawn node stands for each IR node;
- ``drawing.py``: :func:`drawing`, which strings those steps together;
- ``style.py``: the colours; ``dot.py``: DOT text; ``mermaid.py``: Mermaid text;
- ``output.py``: formats, graphviz's ``dot`` process, files, Jupyter.

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

from .dot import dot_source, to_dot
from .drawing import MAX_RENDER_EDGES, MAX_RENDER_NODES, drawing
from .mermaid import mermaid_source, to_mermaid
from .model import DIRECTIONS, DCluster, DEdge, DNode, Drawing, Role, fmt_count, fmt_shape
from .output import (
    DOT_TIMEOUT_S,
    FORMATS,
    IMAGE_FORMATS,
    INSTALL_GRAPHVIZ,
    SUFFIXES,
    repr_markdown,
    repr_svg,
    require_dot,
    resolve_format,
    run_dot,
    source_text,
    to_svg,
    write_drawing,
)

__all__ = [
    "DIRECTIONS", "DOT_TIMEOUT_S", "FORMATS", "IMAGE_FORMATS", "INSTALL_GRAPHVIZ", "MAX_RENDER_EDGES",
    "MAX_RENDER_NODES", "SUFFIXES", "DCluster", "DEdge", "DNode", "Drawing", "Role", "dot_source", "drawing",
    "fmt_count", "fmt_shape", "mermaid_source", "repr_markdown", "repr_svg", "require_dot", "resolve_format",
    "run_dot", "source_text", "to_dot", "to_mermaid", "to_svg", "write_drawing",
]
