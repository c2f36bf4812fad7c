"""The IR's invariants: lint() catches each way a pass could break them."""

from __future__ import annotations

import copy
import pickle

import networkx as nx
import pytest
from helpers import ROOT

import archspec
from archspec.errors import GraphError
from archspec.frozen import FrozenMap, freeze
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


# -- immutable all the way down ------------------------------------------------------------

def test_frozen_map_is_a_value() -> None:
    m = FrozenMap({"x": (3, 32, 32), "y": (1,)})
    assert m == {"x": (3, 32, 32), "y": (1,)} and {"x": (3, 32, 32), "y": (1,)} == m
    assert m != {"x": (3, 32, 32)} and m != FrozenMap({"y": (1,), "x": (3, 32, 31)})
    assert hash(m) == hash(FrozenMap({"y": (1,), "x": (3, 32, 32)}))  # order-free, as == is
    assert list(m) == ["x", "y"] and m.get("z", 7) == 7 and "x" in m and len(m) == 2
    assert (m | {"z": (2,)})["z"] == (2,) and "z" not in m
    with pytest.raises(TypeError, match="does not support item assignment"):
        m["x"] = (1,)  # type: ignore[index]  # the point: no __setitem__
    with pytest.raises(AttributeError, match="is immutable"):
        m._d = {}  # type: ignore[misc]  # the point: no way in
    with pytest.raises(AttributeError):
        m.update({"x": (1,)})  # type: ignore[attr-defined]  # the point: no mutating method
    with pytest.raises(TypeError, match="unhashable"):
        hash(FrozenMap({"a": [1]}))  # hashes only when its values do, as a tuple
    for copied in (copy.deepcopy(m), copy.copy(m), pickle.loads(pickle.dumps(m))):
        assert type(copied) is FrozenMap and copied == m and hash(copied) == hash(m)


def test_freeze_goes_all_the_way_down() -> None:
    value = freeze({"a": [1, {"b": [2, 3]}], "c": {"d": {"e": []}}, "s": "text"})
    assert value == {"a": (1, {"b": (2, 3)}), "c": {"d": {"e": ()}}, "s": "text"}
    assert type(value) is FrozenMap and type(value["a"][1]) is FrozenMap and type(value["c"]["d"]) is FrozenMap


def test_graph_fields_are_frozen_and_the_graph_copies() -> None:
    g = archspec.load("archspec: 1\nname: t\nparams: {sizes: [1, 2], table: {a: [3]}}\ninputs: {x: [3, 8, 8]}\n"
                      "nodes:\n  c: {op: conv, in: x, out: 4, k: 3}\noutputs: [c]\n")
    for name in ("inputs", "params", "init", "input_locs", "output_locs"):
        field_value = getattr(g, name)
        assert isinstance(field_value, FrozenMap), name
        with pytest.raises(TypeError):
            field_value["new"] = 1
    assert g.params["sizes"] == (1, 2) and isinstance(g.params["table"], FrozenMap)
    assert isinstance(g.init["projection"], FrozenMap) and g.inputs["x"] == (3, 8, 8)
    assert isinstance(g.node("c").meta, FrozenMap)
    for copied in (copy.deepcopy(g), pickle.loads(pickle.dumps(g))):
        assert copied == g and copied.input_locs == g.input_locs and isinstance(copied.params, FrozenMap)
    # A graph built from plain dicts (as a pass or a user may) is frozen the same way.
    h = Graph(name="h", inputs={"x": [3]}, nodes=[Node("b", "relu", inputs=("x",))], outputs=["b"],
              params={"k": [1]})
    assert h.inputs == {"x": (3,)} and h.params == {"k": (1,)} and h.nodes[0].name == "b" and h.outputs == ("b",)
    assert h == h.replace() and hash(h.inputs) == hash(FrozenMap({"x": (3,)}))


def test_node_replace_keeps_every_field_and_changes_the_named_ones():
    import dataclasses

    from archspec.errors import Loc, ShapeError
    from archspec.ir import Projection

    # Every field away from its default, so a field that replace forgot would come back changed.
    full = Node("a.b", "conv", {"out": 4, "k": 3}, ("x",), shape=(4, 8, 8), module="a.c", provenance="auto",
                loc=Loc("f.yaml", 3, 5), path="nodes.b", error=ShapeError("bad"), share="a.c", disabled=True,
                dense="a", projection=Projection("conv_bn", "add", 1, "1x1 conv", "rule"), output=2)
    defaults = Node("n", "relu")
    for f in dataclasses.fields(Node):
        assert getattr(full, f.name) != getattr(defaults, f.name), f.name
    same = full.replace()
    assert [getattr(same, f.name) for f in dataclasses.fields(Node)] == [getattr(full, f.name) for f in dataclasses.fields(Node)]
    moved = full.replace(name="z", shape=(1,))
    assert (moved.name, moved.shape, moved.inputs, moved.error) == ("z", (1,), ("x",), full.error)
    assert full.replace(attrs={"out": 8, "k": 1}).attrs["out"] == 8  # a mapping is validated into the op's model
    with pytest.raises(TypeError, match="Node has no field 'colour'"):
        full.replace(colour="red")
