"""Check: raise the first error that inference or projection recorded, then the limits.

Inference and projection annotate nodes with errors so that a drawing of a broken graph
can still be made; ``check`` is where a broken graph stops.
"""

from __future__ import annotations

from ..errors import GraphError, LimitError, fmt_int
from ..ir import Graph
from ..limits import DEFAULT_LIMITS, Limits
from ..names import check_names


def check(graph: Graph, limits: Limits = DEFAULT_LIMITS) -> Graph:
    errors = graph.errors()
    if errors:
        raise errors[0].with_others(errors[1:])
    check_names(graph)
    total = 0
    shapes = {k: tuple(v) for k, v in graph.inputs.items()}
    for n in graph.nodes:
        if n.shape is None:  # only a Graph built by hand gets here: the passes give every node one
            raise GraphError(f"node '{n.name}' has no shape: the graph was not inferred",
                             loc=n.loc, path=n.path, source=graph.source,
                             fix="pass the spec (or archspec.load(spec)) rather than a Graph built by hand, "
                                 "or run archspec.passes.infer on it first")
        shapes[n.name] = n.shape
        if n.shape and len(n.shape) > 1 and n.shape[0] > limits.max_channels:
            raise LimitError(f"node '{n.name}' has {fmt_int(n.shape[0])} channels, more than the limit of {limits.max_channels}",
                             loc=n.loc, path=n.path, source=graph.source, fix="raise the limit with --max-channels")
        elems = 1
        for d in n.shape:
            elems *= d
        if elems > limits.max_elements:
            raise LimitError(f"node '{n.name}' outputs {fmt_int(elems)} elements per sample, more than the limit of "
                             f"{limits.max_elements}", loc=n.loc, path=n.path, source=graph.source,
                             fix="raise the limit with --max-elements")
        if n.owns_module:
            total += graph.params_of(n, shapes)
            if total > limits.max_params:
                raise LimitError(f"the model has more than {limits.max_params} parameters (reached at '{n.name}')",
                                 loc=n.loc, path=n.path, source=graph.source, fix="raise the limit with --max-params")
    return graph


__all__ = ["check", "check_names"]
