"""Emit: a checked :class:`~archspec.ir.Graph` becomes a ``torch.fx.GraphModule``.

The fx graph is built directly, node by node, with no tracing. Ops with parameters or
state are ``call_module`` nodes whose targets are the dotted IR names
(``layer2.0.conv1``); stateless ops are ``call_function`` nodes (``torch.relu``,
``operator.add``, ``torch.cat``), made in place (``torch.relu_``, ``+=``) where the graph
proves autograd allows it (archspec/passes/inplace.py). Modules are created in node order,
so ``state_dict`` keys come out in the order a hand-written model gives. Every fx node
carries ``meta["stack_trace"]`` (the YAML line) and ``meta["archspec"]``.

This is the only module, with the ops' builders, that imports torch.
"""

from __future__ import annotations

import operator
import re
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.overrides import TorchFunctionMode

from .errors import GraphError
from .findings import residual_norms
from .ir import Graph, Node
from .names import check_names
from .ops import REGISTRY
from .passes.inplace import make_inplace


def emit(graph: Graph, *, inplace: bool = True) -> fx.GraphModule:
    """Build the GraphModule of a checked graph (shapes known, no errors).

    ``inplace=False`` keeps every op out of place (the reference the in-place pass is
    tested against)."""
    check_names(graph)  # fx writes names into code it runs: never trust a hand-built Graph
    root = nn.Module()
    g = fx.Graph()
    values: dict[str, Any] = {}
    shapes = {k: tuple(v) for k, v in graph.inputs.items()}
    lines = re.split(r"\r\n|\r|\n", graph.source or "")  # YAML line breaks: no U+2028 or U+0085
    # Weights that the init policy overwrites are not drawn twice: such modules are built
    # with torch.nn.init's initialisers skipped, then _initialise fills them.
    redraw = graph.init.get("scheme", "default") == "kaiming_normal"

    for name, shape in graph.inputs.items():
        ph = g.placeholder(name)
        loc = graph.input_locs.get(name)
        ph.meta["archspec"] = {"node": name, "op": "input", "shape": tuple(shape), "provenance": "spec",
                               "loc": str(loc) if loc else None}
        values[name] = ph

    for n in graph.nodes:
        op = REGISTRY.get(n.op)
        attrs = n.attrs
        in_shapes = [shapes[i] for i in n.inputs]
        args = [values[i] for i in n.inputs]
        if n.output is not None:  # output k of a multi-output node (split): an index into its tuple
            result = g.call_function(operator.getitem, (args[0], n.output))
        elif n.module is not None:
            if n.owns_module or n.module == n.name:
                if redraw and op.init_kind == "fan_out":
                    with _NoDefaultInit():
                        module = op.module(attrs, in_shapes)
                else:
                    module = op.module(attrs, in_shapes)
                _install(root, n, module)
            # Named at creation: fx would derive a name from the target, only to be renamed.
            result = g.create_node("call_module", n.module, tuple(args), {}, name=n.name.replace(".", "_"))
        else:
            result = op.emit(g, attrs, in_shapes, args)
        if isinstance(result, fx.Node) and result not in args:
            result._rename(n.name.replace(".", "_"))
            result.meta["stack_trace"] = _trace(graph, n, lines)
            result.meta["archspec"] = {
                "node": n.name, "op": n.op, "shape": n.shape, "provenance": n.provenance,
                "loc": str(n.loc) if n.loc else None, "path": n.path, "attrs": n.attrs,
            }
        values[n.name] = result
        assert n.shape is not None
        shapes[n.name] = n.shape

    outs = [values[o] for o in graph.outputs]
    if graph.output_keys is not None:  # outputs: {out: head}
        g.output(dict(zip(graph.output_keys, outs, strict=True)))
    else:
        g.output(outs[0] if len(outs) == 1 else tuple(outs))
    if inplace:
        make_inplace(g)
    g.lint()
    gm = _graph_module(root, g, _class_name(graph.name))
    _initialise(gm, graph)
    if any(s.memory_efficient for s in graph.scopes):
        from . import recompute

        recompute.apply(gm, graph)
    gm.meta = {"archspec_graph": graph}
    return gm


def _graph_module(root: nn.Module, g: fx.Graph, class_name: str) -> fx.GraphModule:
    """``fx.GraphModule(root, g)`` without its copy of the module tree: fx walks every
    call_module target's dotted path and builds fresh containers on the way (a quarter of
    the emit time of a DenseNet); ``root`` was built for this model, so its children are
    adopted as they are, in their order."""
    gm = fx.GraphModule(root, fx.Graph(), class_name=class_name)
    for name, child in root._modules.items():
        gm._modules[name] = child
    gm.graph = g  # generates and compiles forward()
    return gm


class _NoDefaultInit(TorchFunctionMode):
    """While active, the ``torch.nn.init`` initialisers that PyTorch lets a mode override
    (``kaiming_uniform_``, ``uniform_``, ``normal_``, ``constant_``: what ``nn.Conv*``
    resets with) leave their tensor as allocated, so a module whose weights the ``init:``
    policy draws afterwards is built without drawing them first. Everything else runs as
    usual (``zeros_`` or ``xavier_uniform_`` have no such hook: at worst a draw is spent)."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if getattr(func, "__module__", None) == "torch.nn.init" and name.endswith("_") and not name.startswith("_"):
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def _install(root: nn.Module, n: Node, module: nn.Module) -> None:
    """Put ``module`` at the dotted path ``n.module``, creating containers on the way."""
    assert n.module is not None
    parent = root
    *scopes, leaf = n.module.split(".")
    for part in scopes:
        child = parent._modules.get(part)
        if child is None:
            child = nn.Module()
            parent.add_module(part, child)
        parent = child
    if leaf in parent._modules:
        raise GraphError(f"module path '{n.module}' is used twice", loc=n.loc)
    if hasattr(parent, leaf):
        raise GraphError(f"node name '{leaf}' would shadow an attribute of nn.Module", loc=n.loc,
                         fix="rename the node")
    parent.add_module(leaf, module)


def _trace(graph: Graph, n: Node, lines: list[str]) -> str:
    if n.loc is None:
        return ""
    text = lines[n.loc.line - 1].strip() if 0 < n.loc.line <= len(lines) else ""
    origin = " (auto projection)" if n.provenance == "auto" else ""
    return f'  File "{n.loc.file}", line {n.loc.line}, in {n.name}{origin}\n    {text}\n'


def _class_name(name: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name)
    cls = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    return cls if cls[0].isalpha() else "Model" + cls


def _initialise(gm: fx.GraphModule, graph: Graph) -> None:
    """Apply the spec's ``init:`` policy (PyTorch's defaults are already in place).

    Each op says what the policy does to its module (``Op.init_kind``); modules are
    visited in registration order, so the random draws are those of a hand-written model.
    """
    kaiming = graph.init.get("scheme", "default") == "kaiming_normal"
    zero_bias = graph.init.get("zero_linear_bias", False)
    if kaiming or zero_bias:
        mode = graph.init.get("mode", "fan_out")
        kinds = {n.module: REGISTRY.get(n.op).init_kind for n in graph.nodes if n.module is not None}
        for path, m in gm.named_modules():
            kind = kinds.get(path)
            if kind == "fan_out" and kaiming:
                nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif kind == "norm" and kaiming and getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif kind == "linear" and zero_bias and m.bias is not None:
                nn.init.zeros_(m.bias)
    if graph.init.get("zero_init_residual"):
        for norm in residual_norms(graph):
            m = gm.get_submodule(norm)
            if getattr(m, "weight", None) is not None:
                with torch.no_grad():
                    m.weight.zero_()
