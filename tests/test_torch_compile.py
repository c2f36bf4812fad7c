"""``torch.compile(fullgraph=True)`` captures every zoo spec's models whole: no graph break (a
break raises with fullgraph=True). The eager backend runs the captured graph with the
same kernels, so outputs and gradients equal the uncompiled model's. Narrow versions of
the zoo (tests/test_inplace.py) keep this fast."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_inplace import NARROW
from test_zoo import SPECS, entries, small_params

import archspec


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    torch._dynamo.reset()


def check_fullgraph(model: Any, graph: Any) -> None:
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(2, *s, generator=g) for s in graph.inputs.values()]
    model.eval()  # dropout off, so both runs draw nothing
    want = model(*xs)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    got = compiled(*xs)
    if isinstance(want, dict):  # outputs by name
        assert list(got) == list(want)
        want, got = tuple(want.values()), tuple(got.values())
    want, got = (want, got) if isinstance(want, tuple) else ((want,), (got,))
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    sum(o.sum() for o in got).backward()
    assert all(p.grad is not None for p in model.parameters())


def first_of_each_spec(e: dict[str, Any], seen: set[str] = set()) -> bool:  # noqa: B006 - on purpose
    """The first zoo entry of each spec file and each spec's variants that change the ops
    (U-Net's bilinear and residual forms); the others differ only in repeat counts and widths,
    which give dynamo the same code to trace, more often."""
    key = e["spec"] + repr(sorted((k, v) for k, v in e["params"].items() if k in ("upsampling", "residual")))
    if key in seen:
        return False
    seen.add(key)
    return True


@pytest.mark.parametrize("entry", entries(where=first_of_each_spec))
def test_zoo_model_compiles_without_a_graph_break(entry):
    graph = archspec.load(SPECS / entry["spec"], {**small_params(entry), **NARROW.get(entry["spec"], {})})
    check_fullgraph(archspec.compile(graph), graph)

