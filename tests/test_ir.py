"""The IR's invariants: lint() catches each way a pass could break them."""

from __future__ import annotations

import networkx as nx
import pytest
from helpers import ROOT

import archspec
from archspec.errors import GraphError
from archspec.ir import Graph, Node, lint


def graph(*nodes: Node, outputs=("b",), inputs=None) -> Graph:
    return Graph(name="g", inputs=inputs if inputs is not None else {"x": (3,)}, nodes=nodes, outputs=outputs)


def test_a_good_graph_lints():
    lint(graph(Node("a", "relu", inputs=("x",)), Node("b", "linear", inputs=("a",), module="b")))


@pytest.mark.parametrize("g, message", [
    (graph(Node("b", "add", inputs=("x", "a")), Node("a", "relu", inputs=("x",))),
     "node 'b' uses 'a' before it is defined; nodes must be in topological order"),
    (graph(Node("b", "relu", inputs=("x",)), Node("b", "tanh", inputs=("x",))), "node 'b' is defined twice"),
    (graph(Node("x", "relu", inputs=("x",)), outputs=("x",)), "node 'x' is defined twice"),
    (graph(Node("a", "linear", inputs=("x",), module="m"), Node("b", "linear", inputs=("a",), module="m")),
     "module path 'm' is used by both 'a' and 'b'"),
    (graph(Node("b", "linear", inputs=("x",), module="m", share="m")),
     "node 'b' shares module 'm', which no node owns"),
    (graph(Node("b", "relu", inputs=("x",)), outputs=()), "the graph has no outputs"),
    (graph(Node("b", "relu", inputs=("x",)), outputs=("c",)), "output 'c' is not a node or input"),
    (graph(Node("a-b", "relu", inputs=("x",)), outputs=("a-b",)), "node name 'a-b' is not a dotted identifier"),
    (graph(Node("b", "relu", inputs=("x",)), inputs={"1x": (3,)}), "input name '1x' is not a dotted identifier"),
])
def test_lint_names_the_broken_invariant(g, message):
    with pytest.raises(GraphError, match=message.replace("(", r"\(").replace(")", r"\)")):
        lint(g)


def test_networkx_view_has_one_edge_per_input_slot():
    g = archspec.load(ROOT / "specs/resnet18.yaml")
    nxg = g.to_networkx()
    assert nx.is_directed_acyclic_graph(nxg)
    assert nxg.number_of_nodes() == len(g.nodes) + len(g.inputs)
    assert nxg.number_of_edges() == sum(len(n.inputs) for n in g.nodes)
    add = g.node("layer2.0.add")
    slots = {d["slot"]: u for u, _, d in nxg.in_edges(add.name, data=True)}
    assert slots == dict(enumerate(add.inputs))
