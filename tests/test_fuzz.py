"""Property tests: generated valid specs compile and agree with torch; broken ones fail cleanly.

- every generated spec compiles, its IR and fx graph lint, and every node's inferred
  shape equals the shape the real forward (batch of 2) and the ``device="meta"``
  forward produce; a projection is inserted exactly on the residual merges whose inputs cannot broadcast;
- every mutation of a valid spec (deleted keys, retyped values, swapped references,
  duplicated names, truncated text, random bytes) either checks or raises an
  ``ArchSpecError``: never a KeyError, TypeError, RecursionError...; and a mutation
  that checks also compiles and runs (meta device): nothing is left for torch to find.

``make fuzz`` (FUZZ_MINUTES=5 by default) runs the mutation property for that long.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.fx as fx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import GenSpec, mutated, specs

import archspec
from archspec.loader import load_text
from archspec.ops.base import broadcast
from archspec.passes import expand, infer

FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                database=None)


class _Shapes(fx.Interpreter):
    """Runs a GraphModule and records each archspec node's per-sample output shape."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.shapes: dict[str, tuple[int, ...]] = {}

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        info = n.meta.get("archspec")
        if info is not None and isinstance(out, torch.Tensor):
            self.shapes[info["node"]] = tuple(out.shape[1:])
        return out


def _forward_shapes(gm: fx.GraphModule, graph: archspec.Graph, device: str) -> dict[str, tuple[int, ...]]:
    x = {k: torch.randn(2, *v, device=device) if device != "meta" else torch.empty(2, *v, device="meta")
         for k, v in graph.inputs.items()}
    rec = _Shapes(gm)
    with torch.no_grad():
        rec.run(*x.values())
    return rec.shapes


def _assert_shapes(graph: archspec.Graph, seen: dict[str, tuple[int, ...]], where: str) -> None:
    shapes = {k: tuple(v) for k, v in graph.inputs.items()}
    for n in graph.nodes:
        shapes[n.name] = n.shape  # type: ignore[assignment]
        # Ops emitted as their input (identity) carry no fx node of their own.
        got = seen.get(n.name, shapes[n.inputs[0]] if n.inputs and n.name not in seen else None)
        assert got == n.shape, f"{where}: node {n.name} ({n.op}) inferred {n.shape}, torch gives {got}"


@pytest.mark.slow  # a parity/export sweep: `make test` runs it, `make quick` does not
@settings(FAST, max_examples=200)
@given(specs())
def test_generated_specs_compile_and_match_torch(g: GenSpec) -> None:
    gm = archspec.compile(g.text)
    graph: archspec.Graph = gm.meta["archspec_graph"]
    archspec.lint(graph)
    gm.graph.lint()
    gm.eval()
    _assert_shapes(graph, _forward_shapes(gm, graph, "cpu"), "cpu")
    _assert_shapes(graph, _forward_shapes(gm.to("meta"), graph, "meta"), "meta")
    for name, shape in g.shapes.items():
        assert graph.shape_of(name) == shape, f"{name}: inferred {graph.shape_of(name)}, expected {shape}"


@settings(FAST, max_examples=150)
@given(specs())
def test_projection_exactly_where_shapes_differ(g: GenSpec) -> None:
    doc = load_text(g.text, "gen.yaml")
    before = infer(expand(doc))
    archspec.lint(before)
    differ = {n.name for n in before.nodes if n.op in ("add", "mul", "lerp")
              and broadcast([before.shape_of(i) for i in n.inputs]) is None}
    assert differ == g.projected
    graph = archspec.load(g.text)
    archspec.lint(graph)
    projected = {n.meta["for"] for n in graph.nodes if n.provenance == "auto"}
    assert projected == g.projected
    kinds = {n.meta["auto"] for n in graph.nodes if n.provenance == "auto"}
    assert kinds <= {g.policy}
    for n in graph.nodes:
        if n.op == "add":
            ins = [graph.shape_of(i) for i in n.inputs]
            assert broadcast(ins) == n.shape, f"{n.name} still joins shapes that cannot broadcast: {ins}"


_DIR = Path(tempfile.mkdtemp(prefix="archspec-fuzz-"))


def _check_bytes(raw: bytes) -> None:
    path = _DIR / "spec.yaml"
    path.write_bytes(raw)
    try:
        archspec.check(path)
    except archspec.ArchSpecError as e:
        # The error must render (caret display, JSON) without failing in turn.
        e.render()
        e.to_dict()


@settings(FAST, max_examples=300)
@given(mutated())
def test_mutated_specs_raise_only_archspec_errors(raw: bytes) -> None:
    _check_bytes(raw)


def _params(graph: archspec.Graph) -> int:
    from archspec.table import node_table

    return sum(r["params"] for r in node_table(graph))


@settings(FAST, max_examples=100)
@given(mutated())
def test_mutations_that_check_also_compile(raw: bytes) -> None:
    """Whatever passes ``check`` compiles and runs (on the meta device): no error is left
    for torch.fx or torch to find."""
    path = _DIR / "compile.yaml"
    path.write_bytes(raw)
    try:
        graph = archspec.load(path)
    except archspec.ArchSpecError:
        return
    if _params(graph) > 2_000_000:
        return  # a shipped spec at full size: compiling it here is slow, not more telling
    model = archspec.compile(graph)
    model.to("meta")
    x = [torch.empty(2, *s, device="meta") for s in graph.inputs.values()]
    with torch.no_grad():
        model(*x)


@settings(FAST, max_examples=50)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_archspec_errors(raw: bytes) -> None:
    _check_bytes(raw)


@pytest.mark.skipif(not os.environ.get("FUZZ_MINUTES"), reason="set FUZZ_MINUTES (make fuzz) to run")
def test_fuzz_for_minutes() -> None:
    """``make fuzz``: the mutation property, with fresh seeds, for FUZZ_MINUTES minutes."""
    stop = time.monotonic() + float(os.environ["FUZZ_MINUTES"]) * 60
    rounds = 0
    run = settings(FAST, max_examples=2000)(given(mutated())(_check_bytes))
    run_gen = settings(FAST, max_examples=200)(given(specs())(test_generated_specs_compile_and_match_torch.hypothesis.inner_test))
    run_compile = settings(FAST, max_examples=200)(given(mutated())(test_mutations_that_check_also_compile.hypothesis.inner_test))
    while time.monotonic() < stop:
        run()
        run_gen()
        run_compile()
        rounds += 1
    print(f"fuzzed {rounds} rounds of 2000 mutations, 200 generated specs and 200 compiled mutations")
