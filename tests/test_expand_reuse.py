"""A block called many times is planned once and each distinct node's attributes are
validated once (archspec/passes/expand.py); what a call gets must still be its own."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

import archspec
import archspec.ir
from archspec.errors import SpecValidationError

SPECS = Path(__file__).resolve().parent.parent / "specs"

BLOCK = """archspec: 1
name: t
inputs: {x: [3, 8, 8]}
blocks:
  unit:
    params: [c, {k: 3}]
    nodes:
      conv: {op: conv, out: $c, k: $k, padding: same}
      relu: {op: relu}
      drop: {op: dropout, p: 0.1}
nodes:
%s
outputs: [last]
"""


def spec(*calls: str) -> str:
    lines = [f"  {name}: {{block: unit, args: {args}}}" for name, args in zip(("a", "b", "c", "last"), calls, strict=False)]
    return BLOCK % "\n".join(lines)


def test_each_call_gets_its_own_attributes():
    g = archspec.load(spec("{c: 16}", "{c: 8, k: 1}", "{c: 16}", "{c: 4}"))
    assert [(n.name, n.attrs["out"], n.attrs["k"]) for n in g.nodes if n.op == "conv"] == [
        ("a.conv", 16, 3), ("b.conv", 8, 1), ("c.conv", 16, 3), ("last.conv", 4, 3)]
    assert [n.inputs for n in g.nodes if n.op == "conv"] == [("x",), ("a.drop",), ("b.drop",), ("c.drop",)]


@pytest.mark.parametrize("value", ["16.0", "true"])
def test_a_value_equal_to_an_earlier_one_but_of_another_type_is_still_checked(value):
    # 16 == 16.0 and 1 == True in Python; the attribute models are strict, so a call
    # that passes 16.0 after one that passed 16 is refused, not served the earlier result.
    with pytest.raises(SpecValidationError, match=r"op 'conv', out: Input should be a valid integer"):
        archspec.check(spec("{c: 16}", "{c: 1}", f"{{c: {value}}}"))


def test_a_bad_value_in_a_later_call_is_reported():
    with pytest.raises(SpecValidationError, match=r"op 'conv', out: Input should be greater than or equal to 1 \(at blocks.unit.nodes.conv.out\)"):
        archspec.check(spec("{c: 16}", "{c: 16}", "{c: 0}"))


# -- a copied instance is the instance expanded again ------------------------------------

def expanded(source, params=None, *, reuse: bool, monkeypatch) -> archspec.ir.Graph:
    expand_module = importlib.import_module("archspec.passes.expand")  # the package exports its function
    with monkeypatch.context() as m:
        if not reuse:
            m.setattr(expand_module, "_reuse_key", lambda *a: None)
        return archspec.load(source, params)


def zoo_entries() -> list:
    models = yaml.safe_load((SPECS / "zoo.yaml").read_text())["models"]
    return [pytest.param(e, id=e["name"]) for e in models]


@pytest.mark.parametrize("entry", zoo_entries())
def test_every_zoo_model_expands_the_same_with_copied_instances(entry, monkeypatch):
    spec = SPECS / entry["spec"]
    copied = expanded(spec, entry["params"], reuse=True, monkeypatch=monkeypatch)
    assert copied == expanded(spec, entry["params"], reuse=False, monkeypatch=monkeypatch)
    assert [n.name for n in copied.nodes] == [n.name for n in expanded(
        spec, entry["params"], reuse=False, monkeypatch=monkeypatch).nodes]


CASES = {
    # The body reads the repeat's i: instance 0 differs from the rest.
    "repeat reads i": """archspec: 1
name: t
inputs: {x: [4, 8, 8]}
blocks:
  unit:
    nodes:
      conv: {op: conv, out: 4, k: 3, padding: 1, bias: "${i == 0}"}
      relu: {op: relu}
nodes:
  stage: {block: unit, repeat: 3}
outputs: [stage]
""",
    # An optional input left out by one call and given by the next.
    "optional input": """archspec: 1
name: t
inputs: {x: [4, 8, 8]}
blocks:
  unit:
    inputs: [input, {skip: optional}]
    nodes:
      conv: {op: conv, out: 4, k: 3, padding: 1}
      add: {op: add, in: [conv, skip]}
nodes:
  a: {block: unit, in: [x]}
  b: {block: unit, in: [a, x]}
  c: {block: unit, in: [b]}
  d: {block: unit, in: [c, a]}
outputs: [d]
""",
    # Nested calls, a group, a dense repeat and a share inside the copied block.
    "nested": """archspec: 1
name: t
inputs: {x: [4, 8, 8]}
blocks:
  layer:
    nodes:
      bn: {op: bn}
      conv: {op: conv, out: 2, k: 3, padding: 1}
  unit:
    nodes:
      dense: {block: layer, repeat: 2, connect: dense}
      g:
        nodes:
          conv: {op: conv, out: 8, k: 1}
          again: {share: conv, in: input}
      out: {op: relu}
nodes:
  a: {block: unit}
  b: {block: unit}
  tied: {share: b}
outputs: [tied]
""",
    # A block whose params read its input's shape: each call is expanded.
    "reads its input's shape": """archspec: 1
name: t
inputs: {x: [4, 8, 8]}
blocks:
  half:
    params: [{c: "${input[0] // 2}"}]
    nodes:
      conv: {op: conv, out: $c, k: 1}
nodes:
  a: {block: half}
  b: {block: half}
outputs: [b]
""",
}


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_copied_instances_equal_expanded_ones(text, monkeypatch):
    copied = expanded(text, reuse=True, monkeypatch=monkeypatch)
    assert copied == expanded(text, reuse=False, monkeypatch=monkeypatch)


def test_what_a_copy_changes():
    g = archspec.load(CASES["repeat reads i"])
    assert [n.attrs["bias"] for n in g.nodes if n.op == "conv"] == [True, False, False]
    g = archspec.load(CASES["optional input"])
    # a's add, left with one input, passes its conv on; b copies nothing from a.
    assert [n.inputs for n in g.nodes if n.op == "add"] == [("b.conv", "x"), ("d.conv", "a.conv")]
    g = archspec.load(CASES["nested"])
    assert g.node("b.g.again").share == "b.g.conv"
    assert g.node("b.g.again").module == "b.g.conv"
    assert g.node("b.dense.cat").inputs == ("a.out", "b.dense.0.conv", "b.dense.1.conv")
    assert g.node("tied.g.again").module == "b.g.conv"
    g = archspec.load(CASES["reads its input's shape"])
    assert [n.attrs["out"] for n in g.nodes if n.op == "conv"] == [2, 1]
