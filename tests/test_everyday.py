"""Everyday use: every problem at once, many files and stdin, help that fits a screen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import archspec
from archspec.cli import main
from archspec.errors import ShapeError, SpecValidationError, UnknownOpError

MULTI = """\
archspec: 1
name: multi
inputs: {x: [3, 8, 8]}
nodes:
  a: {op: conv, out: 4, k: 3, bogus: 1}
  b: {op: cnv, out: 4}
  c: {op: relu, inplace: 3}
  d: {op: conv, out: x, k: 3}
outputs: [d]
"""


def test_every_validation_problem_is_on_the_exception() -> None:
    with pytest.raises(UnknownOpError, match=r"unknown op 'cnv' \(did you mean 'conv'\?\) \(and 3 more problems\)") \
            as e:
        archspec.check(MULTI)
    errs = e.value.errors
    assert [(type(x).__name__, x.loc.line if x.loc else None, x.path) for x in errs] == [
        ("UnknownOpError", 6, "nodes.b"),
        ("SpecValidationError", 5, "nodes.a.bogus"),
        ("SpecValidationError", 7, "nodes.c.inplace"),
        ("SpecValidationError", 8, "nodes.d.out"),
    ]
    assert errs[1].message == "unknown field 'bogus'" and errs[2].message == "unknown field 'inplace'"
    assert errs[3].message == "nodes.d.out: Input should be a valid integer"


def test_every_problem_is_printed_with_its_caret(tmp_path: Path) -> None:
    spec = tmp_path / "multi.yaml"
    spec.write_text(MULTI)
    res = CliRunner().invoke(main, ["check", str(spec)])
    assert res.exit_code == 2
    out = res.output
    for line, text in ((6, "  b: {op: cnv, out: 4}"), (5, "  a: {op: conv, out: 4, k: 3, bogus: 1}"),
                       (7, "  c: {op: relu, inplace: 3}"), (8, "  d: {op: conv, out: x, k: 3}")):
        assert f"{line:>5} | {text}\n" in out
    assert out.count("^") == 4
    assert out.index("unknown op 'cnv'") < out.index("unknown field 'bogus'") < out.index("unknown field 'inplace'")
    res = CliRunner().invoke(main, ["check", str(spec), "--json"])
    report = json.loads(res.output)
    assert report["ok"] is False and report["error"] == "UnknownOpError"
    assert [(x["line"], x["col"], x["path"]) for x in report["errors"]] == [
        (6, 11, "nodes.b"), (5, 31, "nodes.a.bogus"), (7, 17, "nodes.c.inplace"), (8, 22, "nodes.d.out")]


def test_every_shape_error_of_independent_branches_is_reported() -> None:
    text = """\
archspec: 1
name: two
inputs: {x: [3, 8, 8], y: [5, 8, 8]}
nodes:
  a: {op: conv, in: x, out: 4, k: 3, groups: 2}
  b: {op: concat, in: [x, y], dim: 3}
outputs: [a, b]
"""
    with pytest.raises(ShapeError) as e:
        archspec.check(text)
    assert [x.path for x in e.value.errors] == ["nodes.a", "nodes.b"]
    assert all(isinstance(x, ShapeError) for x in e.value.errors)


def test_one_problem_is_a_list_of_one() -> None:
    with pytest.raises(SpecValidationError) as e:
        archspec.check(MULTI.replace("  b: {op: cnv, out: 4}\n", "").replace(", bogus: 1", "")
                       .replace("  c: {op: relu, inplace: 3}\n", ""))
    assert e.value.errors == [e.value] and "more problem" not in e.value.message
    assert e.value.to_dict()["errors"] == [{k: v for k, v in e.value.to_dict().items() if k != "errors"}]
