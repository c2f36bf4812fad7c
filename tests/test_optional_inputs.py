"""Optional block inputs (`inputs: [x, {skip: optional}]`): a U-Net's last decoder block
has no skip. Against a hand-written torch module; every error message asserted."""

from __future__ import annotations

import pytest
import torch
from helpers import one_thread, run_passes  # noqa: F401  (one_thread: autouse fixture)
from torch import nn

import archspec
from archspec.errors import GraphError, SpecValidationError

SPEC = """
archspec: 1
name: t
inputs: {x: [3, 16, 16]}
blocks:
  up:
    params: [out]
    inputs: [x, {skip: optional}]
    nodes:
      up: {op: upsample, scale: 2, in: x}
      cat: {op: concat, in: [up, skip]}
      conv: {op: conv, out: "${out if skip != null else out + 1}", k: 3}
nodes:
  e1: {op: conv, out: 4, k: 3}
  e2: {op: maxpool, k: 2}
  d1: {block: up, in: {x: e2, skip: e1}, args: {out: 4}}
  p: {op: maxpool, k: 2}
  d2: {block: up, in: [p], args: {out: 2}}
  d3: {block: up, in: {x: d2, skip: null}, args: {out: 2}}
outputs: [d3]
"""


class Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], 1)
        return self.conv(x)


class Ref(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.e1 = nn.Conv2d(3, 4, 3, padding=1)
        self.d1 = Up(8, 4)
        self.d2 = Up(4, 3)
        self.d3 = Up(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.e1(x)
        d1 = self.d1(nn.functional.max_pool2d(e1, 2), e1)
        return self.d3(self.d2(nn.functional.max_pool2d(d1, 2)))


def test_a_call_may_leave_an_optional_input_out():
    model = archspec.compile(SPEC)
    ref = Ref()
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    g = run_passes(SPEC)
    assert "d2.cat" not in [n.name for n in g.nodes]  # a concat left with one input passes it on
    assert g.node("d2.conv").inputs == ("d2.up",)


def _spec(block: str, call: str) -> str:
    return f"""
archspec: 1
name: t
inputs: {{x: [3, 8, 8]}}
blocks:
{block}
nodes:
  a: {{op: relu}}
{call}
outputs: [c]
"""


B = """  b:
    inputs: [x, {skip: optional}]
    nodes:
      s: {op: relu, in: skip}
      m: {op: add, in: [x, s]}"""


@pytest.mark.parametrize(("block", "call", "cls", "message"), [
    (B, "  c: {block: b, in: [a]}", GraphError,
     r"node 's' reads only the optional input 'skip', which this call leaves out"),
    (B, "  c: {block: b, in: {skip: a}}", GraphError, r"block 'b' input 'x' is not connected"),
    (B, "  c: {block: b, in: [a, a, a]}", GraphError, r"block 'b' takes 1 to 2 inputs \(x, skip\), got 3"),
    (B, "  c: {op: add, in: [a, null]}", GraphError,
     r"node 'c' has null in in:; only a block call may pass null \(for an optional input\)"),
    ("  b:\n    inputs: [x, {skip: optional, y: optional}]\n    nodes: {r: {op: relu}}", "  c: {block: b, in: [a]}",
     SpecValidationError, r"block 'b': an input entry is a name or \{name: optional\}, got 2 keys"),
    ("  inner:\n    inputs: [x, y]\n    nodes: {m: {op: add, in: [x, y]}}\n" + B.replace(
        "s: {op: relu, in: skip}", "s: {block: inner, in: [x, skip]}"), "  c: {block: b, in: [a]}", GraphError,
     r"block 'inner' input 'y' is not connected \(it reads 'skip', an optional input left out\)"),
    ("  b:\n    inputs: [x, {skip: optional}]\n    nodes: {r: {op: relu, in: x}}\n    output: skip",
     "  c: {block: b, in: [a]}", GraphError,
     r"output 'c' is missing: it passes on an optional input that a call leaves out"),
])
def test_optional_input_mistakes(block: str, call: str, cls: type[Exception], message: str):
    with pytest.raises(cls, match=message):
        run_passes(_spec(block, call))


def test_a_node_skipped_with_when_when_the_input_is_missing():
    g = run_passes(_spec(B.replace("s: {op: relu, in: skip}", 's: {op: relu, in: skip, when: "${skip != null}"}')
                         .replace("m: {op: add, in: [x, s]}", "m: {op: concat, in: [x, s]}"),
                         "  c: {block: b, in: [a]}"))
    assert [n.name for n in g.nodes] == ["a"] and g.outputs == ("a",)
