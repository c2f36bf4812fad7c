"""Multi-output ops: `split` and `chunk`, their outputs addressed as `name.0`, against
torch.split / torch.chunk in a hand-written module."""

from __future__ import annotations

import pytest
import torch
from helpers import one_thread, run_passes  # noqa: F401  (one_thread: autouse fixture)
from torch import nn

import archspec
from archspec.errors import GraphError, ShapeError

SPEC = """
archspec: 1
name: t
inputs: {x: [6, 8, 8]}
nodes:
  s: {op: split, sizes: [2, 4]}
  a: {op: conv, out: 4, k: 1, in: s.0}
  b: {op: relu, in: s.1}
  m: {op: add, in: [a, b]}
  c: {op: chunk, chunks: 4, dim: 1, in: m}
  cat: {op: concat, in: [c.2, c.0, c.1], dim: 1}
outputs: [cat, c.3]
"""


class Ref(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0, s1 = torch.split(x, [2, 4], dim=1)
        c = torch.chunk(self.a(s0) + torch.relu(s1), 4, dim=2)
        return torch.cat([c[2], c[0], c[1]], dim=2), c[3]


def test_split_and_chunk_outputs_match_torch():
    model, ref = archspec.compile(SPEC), Ref()
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 6, 8, 8)
    with torch.no_grad():
        got, want = model(x), ref(x)
    assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
    g = run_passes(SPEC)
    assert [(n.name, n.shape) for n in g.nodes if n.name.startswith("s")] == [
        ("s", (6, 8, 8)), ("s.0", (2, 8, 8)), ("s.1", (4, 8, 8))]
    assert g.param_count() == 12


def test_chunk_gives_as_many_outputs_as_torch():
    g = run_passes("archspec: 1\nname: t\ninputs: {x: [6]}\nnodes:\n  c: {op: chunk, chunks: 4}\n"
                   "outputs: [c.0, c.1, c.2]\n")
    assert [g.node(f"c.{k}").shape for k in range(3)] == [(2,), (2,), (2,)]
    assert [tuple(t.shape) for t in torch.chunk(torch.zeros(1, 6), 4, dim=1)] == [(1, 2)] * 3


def test_split_is_drawn(tmp_path):
    (path,) = archspec.render(SPEC, tmp_path / "t.dot")
    dot = path.read_text()
    assert "split 2/4" in dot and "chunk 4 dim 1" in dot


@pytest.mark.parametrize(("body", "cls", "message"), [
    ("  s: {op: split, sizes: [2, 4]}\n  r: {op: relu}\noutputs: [r]", GraphError,
     r"node 'r' reads 's', which has 2 outputs: pick one \(s.0, s.1\)"),
    ("  s: {op: split, sizes: [2, 4]}\noutputs: [s]", GraphError,
     r"output 's' has 2 outputs: pick one \(s.0, ...\)"),
    ("  s: {op: split, sizes: [2, 4]}\n  r: {op: relu, in: s.2}\noutputs: [r]", GraphError,
     r"unknown node 's.2': 's' has no node '2' \(it has 0, 1\)"),
    ("  s: {op: split, sizes: [2, 3]}\noutputs: [s.0]", ShapeError,
     r"node 's' \(split\): split: sizes \[2, 3\] add up to 5, but dim 0 of the input 6x8x8 is 6"),
])
def test_split_mistakes(body: str, cls: type[Exception], message: str):
    with pytest.raises(cls, match=message) as e:
        run_passes(f"archspec: 1\nname: t\ninputs: {{x: [6, 8, 8]}}\nnodes:\n{body}\n")
    assert e.value.loc is not None and e.value.loc.line >= 5
