"""The colours of a drawing, shared by DOT and Mermaid: one per resolution for the main
path, one per skip kind, and the markers for projections and errors."""

from __future__ import annotations

from ..ir import Shape
from .model import Drawing

# Colours: one per resolution for the main path, one per skip kind, and the markers.
RES_COLOURS = ("#1a237e", "#0277bd", "#00838f", "#6a1b9a", "#ad1457", "#4e342e", "#37474f", "#283593")
VECTOR_COLOUR = "#616161"
SKIP_COLOURS = {"residual": "#e65100", "concat": "#2e7d32"}
SIZE_COLOUR = "#9e9e9e"  # an input read only for its size
AUTO_FILL, AUTO_LINE = "#f3e5f5", "#8e24aa"
ERROR_FILL, ERROR_LINE = "#ffebee", "#d32f2f"
MAIN_WEIGHT = 8  # dot's edge weight of the main path: it keeps the path straight


def shape_colour(d: Drawing, shape: Shape | None) -> str:
    """The colour of a tensor of ``shape``: its resolution's, or grey for a vector."""
    lvl = d.level(shape)
    if lvl is None:
        return VECTOR_COLOUR
    return RES_COLOURS[lvl % len(RES_COLOURS)]
