"""The op registry: strict, extensible from Python and entry points, reflected in the spec models."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
import torch.fx as fx
from helpers import run_passes

import archspec
from archspec.errors import ArchSpecError, OpDefinitionError, UnknownOpError
from archspec.ops import REGISTRY, Op, OpAttrs
from archspec.passes.expand import MODULE_ATTRS
from archspec.spec import json_schema

SPEC = """
archspec: 1
name: t
inputs: {x: [3, 8, 8]}
nodes:
  s: {op: scaled, factor: 3}
outputs: [s]
"""


class ScaledAttrs(OpAttrs):
    factor: int = 2


class Scaled(Op):
    """Multiply by a constant: ``(*S) -> (*S)``."""

    name = "scaled"
    Attrs = ScaledAttrs

    def infer(self, a: ScaledAttrs, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
        return shapes[0]

    def call(self, a, shapes, args):
        return torch.mul, (args[0], a.factor), {}


@pytest.fixture
def scaled():
    archspec.register_op(Scaled)
    yield
    REGISTRY.unregister("scaled")


def test_an_op_registered_from_python_works_end_to_end(scaled):
    g = run_passes(SPEC)
    assert g.node("s").attrs == {"factor": 3}
    model = archspec.compile(SPEC)
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(model(x), x * 3)
    assert "scaled_node" in str(json_schema())


def test_its_attributes_are_strict(scaled):
    with pytest.raises(archspec.SpecValidationError, match=r"nodes.s.factor: Input should be a valid integer"):
        run_passes(SPEC.replace("factor: 3", "factor: '3'"))


def test_without_registration_it_is_unknown():
    with pytest.raises(UnknownOpError, match=r"t.yaml:5:11: unknown op 'scaled' \(did you mean 'scale'\?\) \(at nodes.s\)"):
        run_passes(SPEC)


def test_registering_a_name_twice_is_an_error(scaled):
    with pytest.raises(ArchSpecError, match="op 'scaled' is already registered"):
        archspec.register_op(Scaled)
    with pytest.raises(ArchSpecError, match="op 'conv' is already registered"):
        archspec.register_op(type("Conv2", (Scaled,), {"name": "conv"}))


def test_names_and_attrs_are_checked_on_registration():
    with pytest.raises(ArchSpecError, match="op name 'not valid' is not an identifier"):
        archspec.register_op(type("Bad", (Scaled,), {"name": "not valid"}))
    with pytest.raises(ArchSpecError, match="Attrs must subclass archspec.OpAttrs"):
        archspec.register_op(type("Bad", (Scaled,), {"name": "bad_attrs", "Attrs": dict}))


def test_registry_lookup_suggests():
    with pytest.raises(UnknownOpError, match=r"unknown op 'maxpol' \(did you mean 'maxpool'"):
        REGISTRY.get("maxpol")


def test_entry_point_ops_are_loaded(monkeypatch):
    class EP:
        name = "scaled"

        def load(self):
            return Scaled

    import importlib.metadata as md

    monkeypatch.setattr(md, "entry_points", lambda group: [EP()] if group == "archspec.ops" else [])
    monkeypatch.setattr(REGISTRY, "_entry_points_loaded", False)
    try:
        assert "scaled" in REGISTRY.names()
        assert run_passes(SPEC).node("s").shape == (3, 8, 8)
    finally:
        REGISTRY.unregister("scaled")


def test_module_attrs_cover_every_graphmodule_attribute():
    public = {n for n in dir(fx.GraphModule) if not n.startswith("_")}
    assert public <= MODULE_ATTRS, sorted(public - MODULE_ATTRS)


def test_docs_ops_md_matches_the_registry():
    from helpers import ROOT

    from archspec.ops.reference import markdown

    assert (ROOT / "docs/ops.md").read_text() == markdown(), "regenerate: python -m archspec.ops.reference > docs/ops.md"


def test_an_attribute_named_like_a_node_key_is_refused():
    class KindAttrs(OpAttrs):
        kind: int = 1

    bad = type("Kinded", (Scaled,), {"name": "kinded", "Attrs": KindAttrs})
    # Refused by register_op itself, pointing at the attribute model's definition...
    with pytest.raises(OpDefinitionError, match="op 'kinded' has an attribute named 'kind', which is reserved for nodes") as e:
        archspec.register_op(bad)
    assert e.value.loc is not None and e.value.loc.file == __file__
    assert "kinded" not in REGISTRY
    # ...so the broken op never breaks a later check of a spec that does not use it.
    assert run_passes(SPEC.replace("{op: scaled, factor: 3}", "{op: relu}")).node("s").shape == (3, 8, 8)


def test_packaged_templates_are_the_shipped_specs():
    from helpers import ROOT

    templates = sorted((ROOT / "archspec/templates").glob("*.yaml"))
    assert [t.name for t in templates] == [s.name for s in sorted((ROOT / "specs").glob("*.yaml")) if s.name != "zoo.yaml"]
    for t in templates:
        assert t.read_text() == (ROOT / "specs" / t.name).read_text(), f"run `make templates`: {t.name} is stale"
