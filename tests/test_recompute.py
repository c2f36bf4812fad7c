"""``memory_efficient: true`` on dense repeats (archspec/recompute.py): each layer's
concat-bn-relu-conv is recomputed in backward, and nothing else changes: equal outputs,
gradients and running statistics, the same state_dict keys (torchvision's weights load
strictly), and the option is refused where it means nothing."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from helpers import one_thread  # noqa: F401 - an autouse fixture
from test_zoo import SPECS

import archspec
from archspec.recompute import Recompute

NARROW = {"growth": 8, "init_features": 16, "num_classes": 10, "H": 32, "W": 32}



def train_step(model: Any, x: torch.Tensor) -> tuple[Any, ...]:
    model.train()
    x = x.clone().requires_grad_(True)
    torch.manual_seed(0)
    out = model(x)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out, x.grad, [p.grad for p in model.parameters()], model.state_dict()


@pytest.mark.parametrize("spec", ["densenet.yaml", "densenet_cifar.yaml"])
def test_memory_efficient_equals_the_plain_model(spec: str):
    text = (SPECS / spec).read_text()
    if spec == "densenet_cifar.yaml":  # the option through the spec language, without a param
        text = text.replace('connect: dense', 'connect: dense, memory_efficient: true')
        params: dict[str, Any] = {"depth": 40}
        plain = archspec.compile((SPECS / spec).read_text(), params)
    else:
        params = NARROW
        plain = archspec.compile(SPECS / spec, params)
        text = text.replace("memory_efficient: false", "memory_efficient: true", 1)
    lean = archspec.compile(text, params)
    layers = [m for m in lean.modules() if isinstance(m, Recompute)]
    assert len(layers) == sum(1 for s in lean.meta["archspec_graph"].scopes if s.kind == "block"
                              and s.path.rpartition(".")[0] in {r.path for r in lean.meta["archspec_graph"].scopes
                                                                if r.kind == "repeat" and r.connect == "dense"})
    assert not any(isinstance(m, Recompute) for m in plain.modules())
    assert list(lean.state_dict()) == list(plain.state_dict())
    lean.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    a, b = train_step(plain, x), train_step(lean, x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert all(torch.equal(p, q) for p, q in zip(a[2], b[2], strict=True))
    assert all(torch.equal(a[3][k], b[3][k]) for k in a[3])  # running statistics updated once
    plain.eval()
    lean.eval()
    with torch.no_grad():
        assert torch.equal(plain(x), lean(x))


def test_checkpointed_segments_are_concat_bn_relu_conv():
    from archspec.recompute import segments

    g = archspec.load(SPECS / "densenet.yaml", {**NARROW, "memory_efficient": True})
    found = dict(segments(g))
    assert len(found) == 6 + 12 + 24 + 16
    assert [n.name for n in found["features.denseblock1.denselayer1"]] == [
        f"features.denseblock1.denselayer1.{k}" for k in ("norm1", "relu1", "conv1")]
    assert [n.name for n in found["features.denseblock2.denselayer3"]] == [
        "features.denseblock2.cat2", *(f"features.denseblock2.denselayer3.{k}" for k in ("norm1", "relu1", "conv1"))]


def test_torchvision_weights_load_strictly():
    import torchvision

    ref = torchvision.models.densenet121(memory_efficient=True)
    model = archspec.compile(SPECS / "densenet.yaml", {"memory_efficient": True, "H": 64, "W": 64})
    model.load_state_dict(ref.state_dict(), strict=True)
    ref.eval()
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))


BAD = """
archspec: 1
name: bad
inputs: {x: [4, 8, 8]}
blocks:
  layer: {nodes: {conv: {op: conv, out: 4, k: 3}}}
nodes:
  body: {block: layer, repeat: 2, EXTRA}
outputs: [body]
"""


@pytest.mark.parametrize("extra", ["memory_efficient: true", "connect: chain, memory_efficient: true"])
def test_memory_efficient_needs_a_dense_repeat(extra: str):
    with pytest.raises(archspec.SpecValidationError, match="memory_efficient: true applies only to a dense repeat") as e:
        archspec.load(BAD.replace("EXTRA", extra))
    assert e.value.loc is not None and e.value.loc.line == 8
    assert "connect: dense" in (e.value.fix or "")


def test_memory_efficient_must_be_a_boolean():
    with pytest.raises(archspec.SpecValidationError, match="memory_efficient: must be true or false, got 3"):
        archspec.load(BAD.replace("EXTRA", 'connect: dense, memory_efficient: "${1 + 2}"'))
