"""A block sees its inputs' shapes in expressions (``${input[0]}``: the channel count),
against hand-written torch modules; the size analysis stays right when blocks use them."""

from __future__ import annotations

import pytest
import torch
from helpers import one_thread, run_passes  # noqa: F401  (one_thread: autouse fixture)
from torch import nn

import archspec
from archspec.analyse import input_constraints, summary
from archspec.errors import ShapeError, SpecValidationError

SPEC = """
archspec: 1
name: dw
params: {C: 8}
inputs: {x: [C, H, W]}
blocks:
  dwsep:
    params: [{mult: 2}]
    nodes:
      dw: {op: conv, out: "${input[0]}", k: 3, groups: "${input[0]}"}
      pw: {op: conv, out: "${input[0] * mult}", k: 1}
  squeeze:
    doc: An SE-style bottleneck on a feature vector.
    params: [{ratio: 4}]
    nodes:
      fc1: {op: linear, out: "${input[0] // ratio}"}
      act: {op: relu}
      fc2: {op: linear, out: "${input[0]}"}
nodes:
  b1: {block: dwsep}
  b2: {block: dwsep, args: {mult: 3}}
  pool: {op: adaptive_avgpool, size: 1}
  flat: {op: flatten}
  se: {block: squeeze}
outputs: [se]
"""


class DwSep(nn.Module):
    def __init__(self, c: int, mult: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.pw = nn.Conv2d(c, c * mult, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class Ref(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.b1 = DwSep(c, 2)
        self.b2 = DwSep(2 * c, 3)
        self.se = nn.Module()
        self.se.fc1 = nn.Linear(6 * c, 6 * c // 4)
        self.se.fc2 = nn.Linear(6 * c // 4, 6 * c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.flatten(nn.functional.adaptive_avg_pool2d(self.b2(self.b1(x)), 1), 1)
        return self.se.fc2(torch.relu(self.se.fc1(f)))


@pytest.mark.parametrize("c", [8, 12])
def test_depthwise_and_squeeze_sizes_follow_the_input(c: int):
    model = archspec.compile(SPEC, params={"C": c, "H": 10, "W": 12})
    ref = Ref(c)
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, c, 10, 12)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))


def test_the_input_option_reexpands_with_the_new_shape():
    s = summary(SPEC, {"H": 16, "W": 16}, input_shapes={"x": (4, 16, 16)})
    assert s.graph.node("b1.dw").attrs.groups == 4 and s.rows[-1].shape == (24,)


def test_channel_only_expressions_keep_symbolic_sizes():
    c = input_constraints(SPEC)
    assert [str(r) for r in c.rules] == ["H >= 1", "W >= 1"]
    assert not c.structure_changes and not any("changes with" in line for line in c.lines())


def test_an_expression_reading_a_spatial_size_is_said_clearly():
    c = input_constraints("""
archspec: 1
name: sp
inputs: {x: [4, H, W]}
blocks:
  pool_all:
    nodes:
      p: {op: avgpool, k: "${[input[1], input[2]]}"}
nodes:
  a: {op: conv, out: 4, k: 3, stride: 2}
  b: {block: pool_all}
outputs: [b]
""")
    assert c.structure_changes == ("H", "W")
    assert [str(r) for r in c.rules] == ["H >= 1", "W >= 1"]  # a pool over the whole map fits every size
    assert ("note: the graph itself changes with H, W: block 'pool_all' reads the shape of its input 'input' in "
            "an expression, and reads a size that follows H, W (each size was expanded anew to find these rules)"
            in c.lines())


def test_two_inputs_by_name():
    g = run_passes("""
archspec: 1
name: t
inputs: {a: [3, 8, 8], b: [5, 8, 8]}
blocks:
  fuse:
    inputs: [x, y]
    nodes:
      cat: {op: concat, in: [x, y]}
      mix: {op: conv, out: "${x[0] + y[0]}", k: 1, groups: "${x[0] + y[0]}"}
      size: {op: avgpool, k: "${x[2] // 4}"}
nodes:
  f: {block: fuse, in: {x: a, y: b}}
outputs: [f]
""")
    assert g.node("f.mix").attrs.out == 8 and g.node("f.size").shape == (8, 4, 4)


def test_a_param_named_like_an_input_is_an_error():
    with pytest.raises(SpecValidationError, match=r"block 'b' has a param and an input both named 'x'") as e:
        run_passes("""
archspec: 1
name: t
inputs: {a: [3]}
blocks:
  b:
    params: [{x: 1}]
    inputs: [x]
    nodes: {l: {op: linear, out: $x}}
nodes:
  c: {block: b}
outputs: [c]
""")
    assert e.value.loc is not None and e.value.loc.line == 6


def test_reading_a_shape_that_cannot_be_inferred_names_the_cause():
    with pytest.raises(ShapeError, match=r"node 'p' \(maxpool\): .*") as e:
        run_passes("""
archspec: 1
name: t
inputs: {x: [3, 4, 4]}
blocks:
  b:
    nodes: {c: {op: conv, out: "${input[0]}", k: 1}}
nodes:
  p: {op: maxpool, k: 8}
  c: {block: b}
outputs: [c]
""")
    assert e.value.loc is not None and e.value.loc.line == 8
