"""Findings: what a valid spec says that is probably not what its author meant.

A finding never stops a build. Each is a located :class:`~archspec.ir.Finding` kept on the
graph (``Graph.warnings``) and on the check result; ``check`` and ``build`` print them as
``warning: file:line:col: message``. They are never Python ``warnings.warn``. No torch.

>>> [str(f) for f in spec_findings(load_graph("x: [1, 3, 32, 32]"), doc)]  # doctest: +SKIP
['warning: net.yaml:3:11: input 'x' [1, 3, 32, 32] looks like it includes the batch ...']
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import Loc
from .ir import Finding, Graph, Shape
from .ops import REGISTRY

PathT = tuple[str | int, ...]


def spec_findings(graph: Graph, loc: Callable[[PathT], Loc | None]) -> list[Finding]:
    """The findings about an expanded graph; ``loc`` locates a spec path (``Document.loc``)."""
    out = [f for name, shape in graph.inputs.items() if (f := batch_like(name, tuple(shape), graph)) is not None]
    if graph.init.get("zero_init_residual") and not residual_norms(graph):
        out.append(Finding(
            "init.zero_init_residual is true, but no residual add has a norm as its input 0, so nothing is zeroed",
            loc(("init", "zero_init_residual")), "init.zero_init_residual",
            fix="list the branch's last norm first in the add (in: [bn2, input]), or drop zero_init_residual"))
    if graph.init.get("mode", "fan_out") != "fan_out" and graph.init.get("scheme", "default") != "kaiming_normal":
        out.append(Finding(
            f"init.mode is {graph.init['mode']}, but init.scheme is default: only kaiming_normal draws from the "
            "fan, so mode changes nothing", loc(("init", "mode")), "init.mode",
            fix="add scheme: kaiming_normal to init, or drop mode"))
    if graph.init.get("zero_linear_bias") and not any(REGISTRY.get(n.op).init_kind == "linear" for n in graph.nodes):
        out.append(Finding(
            "init.zero_linear_bias is true, but the graph has no linear layer, so nothing is zeroed",
            loc(("init", "zero_linear_bias")), "init.zero_linear_bias", fix="drop zero_linear_bias"))
    return out


def batch_like(name: str, shape: Shape, graph: Graph) -> Finding | None:
    """An input shape that looks like it starts with the batch: ``[1, 3, 32, 32]``.

    Shapes are per sample, so that is a one-channel 3x32x32 volume (3-d convs). Said when
    the first size is 1 and the second is a channel count (1 to 4) smaller than every size
    after it; a real one-channel volume ``[1, 64, 64, 64]`` is not reported.
    """
    if len(shape) < 4 or shape[0] != 1 or not 1 <= shape[1] <= 4 or min(shape[2:]) <= shape[1]:
        return None
    text = ", ".join(map(str, shape))
    rest = ", ".join(map(str, shape[1:]))
    return Finding(f"input '{name}' [{text}] looks like it includes the batch: shapes are per sample (no batch "
                   f"dim), so this is a {shape[0]}-channel {'x'.join(map(str, shape[1:]))} volume",
                   graph.input_locs.get(name), f"inputs.{name}",
                   fix=f"write {name}: [{rest}] if the leading 1 is the batch size")


def residual_norms(graph: Graph) -> list[str]:
    """Module paths of the last norm on each residual branch: the spec node feeding
    input 0 of every residual sum (``Op.residual``) written in the spec, looking through
    ops that pass their input on (``Op.passthrough``); ``zero_init_residual`` zeroes them."""
    by_name = graph.index()
    out = []
    for n in graph.nodes:
        op = REGISTRY.get(n.op)
        if not op.residual or n.provenance != "spec" or n.disabled:
            continue
        src = by_name.get(n.inputs[0])
        while src is not None and REGISTRY.get(src.op).passthrough:
            src = by_name.get(src.inputs[0])
        if src is not None and REGISTRY.get(src.op).init_kind == "norm" and src.module is not None:
            out.append(src.module)
    return out


def unused(graph: Graph) -> list[str]:
    """Nodes from which no output can be reached: computed, then thrown away. A node that
    a false ``when:`` turned off is not computed, so it is not reported."""
    live = set(graph.outputs)
    for n in reversed(graph.nodes):
        if n.name in live:
            live.update(n.inputs)
    return [n.name for n in graph.nodes if n.name not in live and not n.disabled]


def unused_finding(graph: Graph) -> Finding | None:
    names = unused(graph)
    if not names:
        return None
    first = graph.node(names[0])
    return Finding(f"{', '.join(names)} reach{'es' if len(names) == 1 else ''} no output (computed, then unused)",
                   first.loc, first.path, fix="use them, list them under outputs:, or remove them")
