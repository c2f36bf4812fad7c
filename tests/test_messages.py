"""The error messages that the larger suites do not reach: each asserted once here."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from helpers import ROOT, run_passes

import archspec
from archspec.errors import (
    ExpressionError,
    GraphError,
    LimitError,
    OutputError,
    ShapeError,
    SpecValidationError,
)
from archspec.expr import evaluate, evaluate_value
from archspec.ops import REGISTRY

VEC = "archspec: 1\nname: t\ninputs: {x: [4]}\n"


@pytest.mark.parametrize("src, message", [
    ("${'a' * 3000}${'b' * 3000}", r"interpolated string is longer than 4096 characters"),
])
def test_expression_string_bounds(src, message):
    with pytest.raises(ExpressionError, match=message):
        evaluate_value(src, {})


@pytest.mark.parametrize("src, message", [
    ("+".join(["1"] * 150), r"expression has more than 200 parts"),
    ("10.0 ** 60 * 10.0 ** 60 * 10.0 ** 60 * 10.0 ** 60 * 10.0 ** 60 * 100000.0", r"float result is too large"),
    ("[1] * 4000 + [1] * 4000", r"result is longer than 4096"),
])
def test_expression_value_bounds(src, message):
    with pytest.raises(ExpressionError, match=message):
        evaluate(src, {})


def test_params_cannot_be_applied_to_a_built_graph():
    g = archspec.load(ROOT / "specs/resnet18_cifar.yaml")
    with pytest.raises(archspec.ArchSpecError, match="params cannot be applied to an already built graph"):
        archspec.check(g, {"num_classes": 3})


def test_references_must_be_names():
    with pytest.raises(SpecValidationError, match=r"a reference must evaluate to a node name, got 3"):
        run_passes(VEC + "nodes:\n  a: {op: relu, in: '${1 + 2}'}\noutputs: [a]\n")


def test_block_expression_must_give_a_name():
    with pytest.raises(SpecValidationError, match=r"block: must evaluate to a block name, got 7"):
        run_passes(VEC + "blocks: {b: {nodes: {r: {op: relu}}}}\nnodes:\n  s: {block: '${7}'}\noutputs: [s]\n")


def test_sharing_an_op_takes_a_list_of_inputs():
    with pytest.raises(GraphError, match=r"node 'q' shares op 'linear', which takes a list of inputs"):
        run_passes(VEC + "nodes:\n  p: {op: linear, out: 4}\n  q: {share: p, in: {a: x}}\noutputs: [q]\n")


def test_emit_refuses_a_module_name_that_shadows_nn_module():
    from archspec.emit import emit
    from archspec.ir import Graph, Node

    g = Graph(name="g", inputs={"x": (4,)}, outputs=("forward",),
              nodes=(Node("forward", "linear", {"out": 2}, ("x",), shape=(2,), module="forward"),))
    with pytest.raises(GraphError, match="node name 'forward' would shadow an attribute of nn.Module"):
        emit(g)


@pytest.mark.parametrize("op, attrs, shape, message", [
    ("groupnorm", {"groups": 1}, (), r"groupnorm expects a \(C, \*\) per-sample input, got scalar"),
    ("zero_pad", {"out": 4}, (), r"zero_pad expects a \(C, \*spatial\) input, got scalar"),
    ("zero_pad", {"out": 2}, (4, 8, 8), r"zero_pad: out=2 is fewer than the 4 input channels"),
    ("linear", {"out": 2}, (), r"linear expects a \(\.\.\., F\) per-sample input, got scalar"),
])
def test_op_rank_errors(op, attrs, shape, message):
    o = REGISTRY.get(op)
    with pytest.raises(ShapeError, match=message):
        o.infer(o.Attrs.model_validate(attrs), [shape])


def test_elementwise_merge_names_the_mismatch():
    add = REGISTRY.get("add")
    with pytest.raises(ShapeError, match=r"add inputs cannot broadcast: input 0 is 3x4, input 1 is 3x5: dim 1 is 4 "
                                         r"against 5, and neither is 1"):
        add.infer(add.Attrs(), [(3, 4), (3, 5)])


def test_weights_with_non_string_keys(tmp_path):
    from archspec.weights import load_weights, save_weights

    path = tmp_path / "w.pt"
    torch.save({1: torch.zeros(1)}, path)
    with pytest.raises(archspec.WeightsError, match=r"has non-string keys, e.g. 1"):
        load_weights(archspec.compile(ROOT / "specs/resnet18_cifar.yaml"), path)
    with pytest.raises(archspec.WeightsError, match=r"cannot save weights to '.*w.txt': unknown suffix '.txt'"):
        save_weights(torch.nn.Linear(1, 1), tmp_path / "w.txt")


def test_a_failing_dot_is_one_clear_error(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    dot = fake / "dot"
    dot.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 3\n")
    dot.chmod(dot.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(OutputError, match=r"graphviz's dot failed \(exit 3\): Error: syntax error in line 1"):
        archspec.render(ROOT / "specs/resnet18_cifar.yaml", tmp_path / "r.svg")


def test_recursion_in_the_yaml_parser_is_a_limit_error(monkeypatch):
    from archspec import loader

    def boom(self):
        raise RecursionError

    monkeypatch.setattr(loader._Loader, "get_single_node", boom)
    monkeypatch.setattr(loader, "_CParser", None)  # the LibYAML path hands its errors to this one
    with pytest.raises(LimitError, match="YAML nesting is too deep to parse"):
        loader.load_text("a: 1\n")


def test_emit_refuses_one_module_path_twice():
    from archspec.emit import emit
    from archspec.ir import Graph, Node

    nodes = (Node("a", "linear", {"out": 4}, ("x",), shape=(4,), module="m", provenance="auto"),
             Node("b", "linear", {"out": 4}, ("a",), shape=(4,), module="m", provenance="auto"))
    with pytest.raises(GraphError, match="module path 'm' is used twice"):
        emit(Graph(name="g", inputs={"x": (4,)}, nodes=nodes, outputs=("b",)))
