"""A block called many times is planned once and each distinct node's attributes are
validated once (archspec/passes/expand.py); what a call gets must still be its own."""

from __future__ import annotations

import pytest

import archspec
from archspec.errors import SpecValidationError

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
