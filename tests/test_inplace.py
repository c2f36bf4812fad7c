"""In-place emission (archspec/passes/inplace.py): which ops run in place, decided from the
graph, and for every zoo model the in-place model equals the out-of-place one: the same
outputs, the same gradients, and autograd's check for a tensor overwritten after it was
saved for backward never fires."""

from __future__ import annotations

import operator
from typing import Any

import pytest
import torch
from helpers import one_thread  # noqa: F401 - an autouse fixture
from test_zoo import SPECS, entries, small_params

import archspec
from archspec.emit import emit

INPLACE = {torch.relu_, torch.sigmoid_, torch.tanh_, operator.iadd}


def inplace_nodes(model: Any) -> set[str]:
    """The archspec nodes whose fx node overwrites its input."""
    out = set()
    for n in model.graph.nodes:
        if n.op == "call_function" and (n.target in INPLACE or n.kwargs.get("inplace")):
            out.add(n.meta["archspec"]["node"])
    return out


def compiled(text: str) -> Any:
    return archspec.compile(text)


SPEC = """
archspec: 1
name: t
inputs: {x: [4, 6, 6]}
nodes:
  pre:   {op: relu, in: x}                 # a graph input: never overwritten
  conv:  {op: conv, out: 4, k: 3}
  bn:    {op: bn}
  relu:  {op: relu}                        # bn output, read only here: in place
  relu2: {op: relu}                        # relu saves its output: out of place
  c2:    {op: conv, in: relu2, out: 4, k: 3}
  b2:    {op: bn}
  add:   {op: add, in: [relu2, b2]}        # relu2 is saved and read twice: overwrite b2 instead
  after: {op: relu}                        # the add's result: in place
  flat:  {op: flatten}
  r3:    {op: relu}                        # flatten gives a view: out of place
  c3:    {op: conv, in: after, out: 4, k: 1}
  b3:    {op: bn}
  sig:   {op: sigmoid}                     # bn output read only here: in place
  out:   {op: mul, in: [sig, after]}
  b4:    {op: bn, in: out}
  r4:    {op: relu}                        # in place: relu's result may be a graph output
  b5:    {op: bn, in: out}
  r5:    {op: relu}                        # b5 is also a graph output: out of place
outputs: [r3, r4, r5, b5]
"""


def test_pass_picks_exactly_the_safe_ops():
    model = compiled(SPEC)
    assert inplace_nodes(model) == {"relu", "add", "after", "sig", "r4"}
    (add,) = [n for n in model.graph.nodes if n.meta.get("archspec", {}).get("node") == "add"]
    assert [a.name for a in add.args] == ["b2", "relu2"]  # the operand overwritten comes first


def test_inplace_false_emits_every_op_out_of_place():
    assert inplace_nodes(archspec.compile(SPEC, inplace=False)) == set()


def test_activations_whose_gradient_needs_the_input_stay_out_of_place():
    text = """
archspec: 1
name: s
inputs: {x: [3]}
nodes:
  a: {op: linear, out: 3}
  b: {op: leaky_relu, slope: -0.5}
  c: {op: linear, out: 3}
  d: {op: leaky_relu, slope: 0.2}
  e: {op: linear, out: 3}
  f: {op: elu}
  g: {op: linear, out: 3}
  h: {op: tanh}
outputs: [h]
"""
    model = compiled(text)
    assert inplace_nodes(model) == {"d", "h"}
    check_equal_to_out_of_place(archspec.load(text), model)


def test_relu6_and_hardtanh_run_in_place_as_torchvision_writes_them():
    text = """
archspec: 1
name: s
inputs: {x: [3, 6, 6]}
nodes:
  a: {op: conv, out: 4, k: 3}
  b: {op: bn}
  c: {op: relu6}
  d: {op: conv, out: 4, k: 3}
  e: {op: hardtanh, min: -0.5, max: 0.5}
  f: {op: conv, out: 4, k: 3}
  g: {op: hardsigmoid}
outputs: [g]
"""
    model = compiled(text)
    assert inplace_nodes(model) == {"c", "e"}
    with torch.no_grad():
        model.b.weight.mul_(4)  # reach past 6, so the clamp's upper edge is crossed too
    check_equal_to_out_of_place(archspec.load(text), model)


def check_equal_to_out_of_place(graph: Any, model: Any, batch: int = 2) -> None:
    """Training mode: equal outputs and equal gradients of every parameter and input; the
    backward pass would raise if an in-place op overwrote a tensor saved for it."""
    ref = emit(graph, inplace=False)
    ref.load_state_dict(model.state_dict(), strict=True)
    model.train()
    ref.train()
    results = []
    for m in (model, ref):
        g = torch.Generator().manual_seed(0)
        xs = [torch.randn(batch, *s, generator=g, requires_grad=True) for s in graph.inputs.values()]
        torch.manual_seed(0)  # dropout draws the same masks
        outs = m(*xs)
        outs = tuple(outs.values()) if isinstance(outs, dict) else outs if isinstance(outs, tuple) else (outs,)
        sum((o.float() * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs).backward()
        grads = [x.grad for x in xs] + [p.grad for p in m.parameters()]
        results.append((outs, grads))
    (outs, grads), (ref_outs, ref_grads) = results
    assert all(torch.equal(a, b) for a, b in zip(outs, ref_outs, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(grads, ref_grads, strict=True))


# Narrow versions of every zoo entry: the same graph (so the same in-place decisions) with
# fewer channels and pixels, to keep the suite fast.
NARROW: dict[str, dict[str, Any]] = {
    "resnet.yaml": {"width": 16, "num_classes": 10, "H": 32, "W": 32},
    "resnet18.yaml": {"width": 8, "num_classes": 10},
    "plain18.yaml": {"width": 8, "num_classes": 10},
    "resnet18_cifar.yaml": {"width": 16},
    "densenet.yaml": {"growth": 8, "init_features": 16, "num_classes": 10, "H": 32, "W": 32},
    "unet.yaml": {"base": 8, "H": 32, "W": 32},
    "densenet_cifar.yaml": {"depth": 40},
    "unetpp.yaml": {"base": 8, "H": 32, "W": 32},
    "monai_basicunet.yaml": {"features": [8, 8, 16, 32, 64, 8], "H": 32, "W": 32},
    "resnetd.yaml": {"stem_width": 8, "width": 16, "num_classes": 10, "H": 32, "W": 32},
    "quickstart.yaml": {"hidden": 32},
    "seresnet.yaml": {"width": 16, "num_classes": 10, "H": 32, "W": 32},
    "se_resnet18.yaml": {"width": 16, "num_classes": 10, "H": 32, "W": 32},
    "mobilenet_v2.yaml": {"num_classes": 10, "H": 32, "W": 32},
    "segmentation.yaml": {"width": 16, "num_classes": 3, "H": 32, "W": 32},
    "smp_unet.yaml": {"decoder_channels": [32, 16, 8, 8, 8], "H": 32, "W": 32},
    "attention_unet.yaml": {"base": 8, "H": 32, "W": 32},
    "unet_tutorial.yaml": {"base": 8, "H": 32, "W": 32},
    "monai_unet.yaml": {"channels": [4, 8, 8, 16, 16], "H": 32, "W": 32},
    "wrn.yaml": {"depth": 16, "widen": 2},
}
@pytest.mark.parametrize("entry", entries())
def test_zoo_inplace_equals_out_of_place(entry):
    graph = archspec.load(SPECS / entry["spec"], {**small_params(entry), **NARROW.get(entry["spec"], {})})
    model = emit(graph)
    # highway's relus follow linears with a second reader; MONAI's activations follow a
    # dropout, whose result may be its input (an alias), so none may be overwritten.
    if graph.name not in ("highway", "siamese", "monai_basicunet", "monai_unet"):
        assert inplace_nodes(model), "the pass found nothing to run in place"
    check_equal_to_out_of_place(graph, model)
