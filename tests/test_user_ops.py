"""An op registered from Python is a first-class op: everything archspec knows about it
comes from its class, so a user merge and a user pointwise op are drawn, emitted,
exported and summarised as the built-in ones are, with no table to edit anywhere else."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import archspec
from archspec.export import python_source
from archspec.ops import REGISTRY, Op, OpAttrs
from archspec.ops.base import Call, Shape, same_shapes
from archspec.render import to_dot, to_mermaid


class MaxMerge(Op[OpAttrs]):
    """Element-wise maximum of two tensors of one shape."""

    name = "maxmerge"
    family = "merge"  # nothing else: its family makes it a merge wherever archspec looks
    arity = (2, 2)
    torch_names = ("torch.maximum",)

    def infer(self, a: OpAttrs, shapes: Sequence[Shape]) -> Shape:
        return same_shapes(self.name, shapes)

    def call(self, a: OpAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        return torch.maximum, (args[0], args[1]), {}


class SoftplusAttrs(OpAttrs):
    beta: float = 1.0


class SoftplusB(Op[SoftplusAttrs]):
    """Softplus with a slope ``beta``. Shape kept."""

    name = "softplus_b"
    family = "activation"  # pointwise: folded into the node before it when drawn
    Attrs = SoftplusAttrs
    torch_names = ("torch.nn.functional.softplus",)

    def infer(self, a: SoftplusAttrs, shapes: Sequence[Shape]) -> Shape:
        return shapes[0]

    def call(self, a: SoftplusAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        return F.softplus, (args[0],), {"beta": a.beta}

    def label(self, a: SoftplusAttrs, shapes: Sequence[Shape | None]) -> str:
        return f"softplus β={a.beta}"

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Any = None) -> dict[str, Any]:
        return {"beta": (kwargs or {}).get("beta", 1.0)}


SPEC = """
archspec: 1
name: user_ops
inputs: {x: [3, 8, 8]}
nodes:
  a:   {op: conv, in: x, out: 3, k: 3}
  act: {op: softplus_b, beta: 2.0}
  b:   {op: conv, out: 3, k: 3}
  top: {op: maxmerge, in: [b, x]}
  sp:  {op: softplus_b}
outputs: [top, sp]
"""


@pytest.fixture
def user_ops():
    archspec.register_op(MaxMerge)
    archspec.register_op(SoftplusB)
    yield
    REGISTRY.unregister("maxmerge")
    REGISTRY.unregister("softplus_b")


def reference(model: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The network written by hand with the compiled model's weights."""
    h = F.conv2d(x, model.a.weight, model.a.bias, padding=1)
    h = F.softplus(h, beta=2.0)
    h = F.conv2d(h, model.b.weight, model.b.bias, padding=1)
    return torch.maximum(h, x), F.softplus(torch.maximum(h, x), beta=1.0)


def test_a_user_merge_and_pointwise_op_are_drawn_as_built_in_ones(user_ops):
    dot = to_dot(archspec.check(SPEC).graph)
    # The merge is drawn as a merge, and its other input as a residual skip into it.
    top = next(line for line in dot.splitlines() if line.strip().startswith('"top" ['))
    assert 'fillcolor="#fff8e1"' in top and "<b>maxmerge</b>" in top
    assert any(line.strip().startswith('"x" -> "top"') and 'class="residual"' in line for line in dot.splitlines())
    # The pointwise op folds into the conv before it, and draws its own label when it stands alone.
    a = next(line for line in dot.splitlines() if line.strip().startswith('"a" ['))
    assert "+ softplus_b" in a
    sp = next(line for line in dot.splitlines() if line.strip().startswith('"sp" ['))
    assert "softplus β=1.0" in sp
    assert '"act" [' not in dot
    mermaid = to_mermaid(archspec.check(SPEC).graph)
    assert any("maxmerge" in line and line.endswith(":::merge") for line in mermaid.splitlines())


def test_a_user_merge_and_pointwise_op_are_emitted_and_exported_exactly(user_ops):
    model = archspec.compile(SPEC).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = reference(model, x)
        got = model(x)
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))
        ns: dict[str, Any] = {}
        exec(compile(python_source(archspec.check(SPEC).graph, model), "model.py", "exec"), ns)  # noqa: S102
        clone = ns["Model"]().eval()
        clone.load_state_dict(model.state_dict())
        assert all(torch.equal(g, w) for g, w in zip(clone(x), want, strict=True))
    # The reverse mapping finds the ops from the torch functions they call.
    assert REGISTRY.for_torch(torch.maximum) is REGISTRY.get("maxmerge")
    # F.softplus is also the built-in softplus's function: the op registered first is found.
    assert REGISTRY.for_torch(F.softplus) is REGISTRY.get("softplus")
    assert "torch.nn.functional.softplus" in REGISTRY.get("softplus_b").torch_names


def test_a_user_merge_and_pointwise_op_are_summarised(user_ops):
    s = archspec.summary(SPEC)
    rows = {r.name: r for r in s.rows}
    assert [(r.name, r.op, r.shape) for r in s.rows] == [
        ("a", "conv", (3, 8, 8)), ("act", "softplus_b", (3, 8, 8)), ("b", "conv", (3, 8, 8)),
        ("top", "maxmerge", (3, 8, 8)), ("sp", "softplus_b", (3, 8, 8))]
    model = archspec.compile(SPEC)
    assert s.params == sum(p.numel() for p in model.parameters()) == 2 * (3 * 3 * 9 + 3)
    assert rows["top"].params == rows["act"].params == 0
    # The skip into the merge carries the input's receptive field, the main path the convs'.
    assert rows["top"].field is not None and rows["top"].field.size == (5, 5)


def test_torch_names_are_looked_up_never_imported() -> None:
    import operator

    import torch

    from archspec.ops.base import torch_object

    assert torch_object("torch.nn.Conv2d") is torch.nn.Conv2d
    assert torch_object("operator.add") is operator.add
    with pytest.raises(AttributeError, match="'os.system' is not under torch, operator or archspec"):
        torch_object("os.system")
