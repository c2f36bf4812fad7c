"""Check: raise the first error that inference or projection recorded, then the limits.

Inference and projection annotate nodes with errors so that a drawing of a broken graph
can still be made; ``check`` is where a broken graph stops.
"""

from __future__ import annotations

from ..errors import GraphError, LimitError
from ..ir import Graph, lint
from ..loader import DEFAULT_LIMITS, Limits
from ..ops import REGISTRY


def check(graph: Graph, limits: Limits = DEFAULT_LIMITS) -> Graph:
    errors = graph.errors()
    if errors:
        raise errors[0].with_others(errors[1:])
    check_names(graph)
    total = 0
    shapes = {k: tuple(v) for k, v in graph.inputs.items()}
    for n in graph.nodes:
        assert n.shape is not None, f"node {n.name} has no shape and no error"
        shapes[n.name] = n.shape
        if n.shape and len(n.shape) > 1 and n.shape[0] > limits.max_channels:
            raise LimitError(f"node '{n.name}' has {n.shape[0]} channels, more than the limit of {limits.max_channels}",
                             loc=n.loc, path=n.path, source=graph.source, fix="raise the limit with --max-channels")
        elems = 1
        for d in n.shape:
            elems *= d
        if elems > limits.max_elements:
            raise LimitError(f"node '{n.name}' outputs {elems} elements per sample, more than the limit of "
                             f"{limits.max_elements}", loc=n.loc, path=n.path, source=graph.source,
                             fix="raise the limit with --max-elements")
        if n.module is not None and "share" not in n.meta:
            op = REGISTRY.get(n.op)
            total += op.params(op.Attrs.model_validate(dict(n.attrs)), [shapes[i] for i in n.inputs])
            if total > limits.max_params:
                raise LimitError(f"the model has more than {limits.max_params} parameters (reached at '{n.name}')",
                                 loc=n.loc, path=n.path, source=graph.source, fix="raise the limit with --max-params")
    return graph


def check_names(graph: Graph) -> None:
    """torch.fx writes input names, node names and module paths into the code it generates
    and runs: a Graph built by hand (``archspec.compile(graph)``) skips the checks of the
    expand pass, so its names are checked again here, before anything is emitted."""
    import keyword
    import re

    from .expand import _FX_GLOBALS

    ident = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
    lint(graph)
    for name in graph.inputs:
        if not ident.match(name) or keyword.iskeyword(name) or name in _FX_GLOBALS:
            raise GraphError(f"input name {name!r} cannot be an argument of the generated forward()",
                             loc=graph.input_locs.get(name), source=graph.source,
                             fix="name inputs with plain identifiers, e.g. 'x' or 'image'")
    for n in graph.nodes:
        for what, dotted in (("node name", n.name), ("module path", n.module)):
            parts = dotted.split(".") if dotted is not None else []
            if any(not (p.isdigit() or (ident.match(p) and not keyword.iskeyword(p))) for p in parts) \
                    or dotted == "self":
                raise GraphError(f"{what} {dotted!r} is not a dotted identifier", loc=n.loc, path=n.path,
                                 source=graph.source, fix="names are letters, digits and '_'")
