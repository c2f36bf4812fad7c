"""``memory_efficient: true`` on a dense repeat: recompute instead of storing.

In a dense block every layer starts with ``concat -> bn -> relu -> conv`` over all earlier
features; stored for backward, the concat and its normalised copies grow quadratically
with depth. As torchvision's ``DenseNet(memory_efficient=True)`` does, each layer's
*segment* — its concat (when it has one) and the chain of nodes after it, up to and
including the first weighted op (an op with MACs: conv, linear) — runs under
``torch.utils.checkpoint`` (non-reentrant): backward recomputes it from the features.

The layer's module (``features.denseblock1.denselayer1``) becomes a
:class:`Recompute` holding the same children in the same order, so ``state_dict`` keys
do not change and torchvision's weights load strictly. Batch norm running statistics are
restored after the recomputation, so a training step updates them once, exactly as
without the option. This module imports torch; emit calls it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .ir import Graph, Node
from .ops import REGISTRY


class Recompute(nn.Module):
    """A dense layer whose first segment is checkpointed. Its children are the layer's
    modules; ``segment`` (not a child: no second copy of the weights in ``state_dict``)
    is the fx program of the segment, reading those same children."""

    def __init__(self, layer: nn.Module, segment: fx.GraphModule) -> None:
        super().__init__()
        for name, child in layer.named_children():
            self.add_module(name, child)
        self.__dict__["segment"] = segment

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        segment = self.__dict__["segment"]
        if torch.is_grad_enabled() and any(f.requires_grad for f in features):
            return torch.utils.checkpoint.checkpoint(
                segment, *features, use_reentrant=False, context_fn=self._contexts)
        return segment(*features)

    def _contexts(self) -> tuple[Any, Any]:
        return contextlib.nullcontext(), _keep_running_stats(self)


@contextlib.contextmanager
def _keep_running_stats(module: nn.Module) -> Iterator[None]:
    """Undo the running-statistics update of the recomputation (the forward did it once)."""
    saved = [(b, b.detach().clone()) for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
             for b in m.buffers(recurse=False)]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, v in saved:
                b.copy_(v)


def segments(graph: Graph) -> list[tuple[str, list[Node]]]:
    """Per instance of every memory-efficient dense repeat: (instance module path, the IR
    nodes of its segment in order). Empty when no weighted op follows the concat in a chain."""
    consumers = graph.consumers()
    by_name = graph.index()
    shapes = {k: tuple(v) for k, v in graph.inputs.items()}
    shapes.update({n.name: n.shape for n in graph.nodes if n.shape is not None})
    out = []
    for rep in graph.scopes:
        if rep.kind != "repeat" or not rep.memory_efficient:
            continue
        for inst in graph.scopes:
            if inst.kind != "block" or inst.path.rpartition(".")[0] != rep.path:
                continue
            first = next((n for n in graph.nodes if n.name.startswith(inst.path + ".")), None)
            if first is None or len(first.inputs) != 1:
                continue
            chain: list[Node] = []
            src = by_name.get(first.inputs[0])
            if src is not None and src.op == "concat" and src.meta.get("dense") == rep.path \
                    and consumers[src.name] == [first.name]:
                chain.append(src)
            node = first
            while True:
                chain.append(node)
                op = REGISTRY.get(node.op)
                attrs = op.Attrs.model_validate(dict(node.attrs))
                if op.macs(attrs, [shapes[i] for i in node.inputs], node.shape) > 0:  # type: ignore[arg-type]
                    out.append((inst.path, chain))
                    break
                nxt = consumers[node.name]
                if len(nxt) != 1 or not nxt[0].startswith(inst.path + ".") or node.name in graph.outputs:
                    break
                node = by_name[nxt[0]]
                if node.inputs != (chain[-1].name,):
                    break
    return out


def apply(gm: fx.GraphModule, graph: Graph) -> int:
    """Checkpoint every segment of ``graph``'s memory-efficient repeats in ``gm``; returns
    how many segments."""
    fx_of = {n.meta["archspec"]["node"]: n for n in gm.graph.nodes if "archspec" in n.meta}
    done = 0
    for path, chain in segments(graph):
        nodes = [fx_of[n.name] for n in chain]
        if any(n.op not in ("call_module", "call_function") for n in nodes):
            continue
        inside = set(nodes)
        external: list[fx.Node] = []
        for n in nodes:
            for a in n.all_input_nodes:
                if a not in inside and a not in external:
                    external.append(a)
        sub = fx.Graph()
        env: dict[fx.Node, fx.Node] = {a: sub.placeholder(f"feature{k}") for k, a in enumerate(external)}
        for n in nodes:
            copy = sub.node_copy(n, env.__getitem__)
            if n.op == "call_module":
                if not n.target.startswith(path + "."):
                    break
                copy.target = n.target[len(path) + 1:]
            env[n] = copy
        else:
            sub.output(env[nodes[-1]])
            layer = gm.get_submodule(path)
            segment = fx.GraphModule(layer, sub, class_name="Segment")
            parent, _, leaf = path.rpartition(".")
            (gm.get_submodule(parent) if parent else gm)._modules[leaf] = Recompute(layer, segment)
            last = nodes[-1]
            with gm.graph.inserting_before(last):
                call = gm.graph.call_module(path, tuple(external))
            call.meta = dict(last.meta)
            last.replace_all_uses_with(call)
            for n in reversed(nodes):
                gm.graph.erase_node(n)
            done += 1
    gm.graph.lint()
    gm.recompile()
    return done
