"""The node table: name, op, output shape, parameter count and provenance of every node of a
graph, as ``archspec build`` prints it and writes it into ``<name>.json``.

>>> from archspec.api import load
>>> node_table(load("specs/resnet18_cifar.yaml"))[0]
{'name': 'conv1', 'op': 'conv', 'shape': [64, 32, 32], 'params': 1728, 'auto': False}
"""

from __future__ import annotations

from typing import Any

from .ir import Graph


def node_table(graph: Graph) -> list[dict[str, Any]]:
    """One row a node, in graph order: ``name``, ``op``, ``shape`` (a list; empty when
    unknown), ``params`` (the one parameter count) and ``auto`` (an inserted projection)."""
    shapes = graph.shapes()
    return [{"name": n.name, "op": n.op, "shape": list(n.shape or ()), "params": graph.params_of(n, shapes),
             "auto": n.provenance == "auto"} for n in graph.nodes]
