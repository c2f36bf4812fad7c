"""Fuzzing the hostile-input classes: expressions (cost and errors) and the names that
reach files, Mermaid and terminals. ``make fuzz`` runs these for FUZZ_MINUTES too."""

from __future__ import annotations

import importlib
import os
import re
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archspec import ArchSpecError, check
from archspec.errors import terminal_safe
from archspec.expr import MAX_CELLS, MAX_STR, evaluate, work_budget
from archspec.io import MAX_STEM_BYTES, safe_stem

R: Any = importlib.import_module("archspec.render")
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
ENV = {"w": 64, "xs": [1, 2, 3], "s": "ab", "big": [[1] * 64] * 64, "t": {"a": 1}}

# Expressions: small leaves combined by every operator, call and container the
# evaluator allows, with the big numbers and repeats that used to blow up.
_leaf = st.sampled_from(["1", "0", "-1", "64", "4096", "10**9", "1e308", "0.5", "'ab'", "'%999d'", "'%s'", "w",
                         "xs", "s", "big", "t", "true", "null", "[]", "[1]", "[[1]*64]"])


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    two = st.tuples(children, children)
    return st.one_of(
        two.flatmap(lambda ab: st.sampled_from([f"({ab[0]} {op} {ab[1]})" for op in
                                                ("+", "-", "*", "/", "//", "%", "**", "==", "<", "in", "and", "or")])),
        children.map(lambda a: f"(not {a})"), children.map(lambda a: f"(-{a})"),
        two.flatmap(lambda ab: st.sampled_from([f"{f}({ab[0]}, {ab[1]})" for f in ("min", "max", "round")])),
        children.flatmap(lambda a: st.sampled_from([f"{f}({a})" for f in ("len", "abs", "int", "ceil", "floor")])),
        two.map(lambda ab: f"[{ab[0]}, {ab[1]}]"), two.map(lambda ab: f"{ab[0]}[{ab[1]}]"),
        st.tuples(children, children, children).map(lambda abc: f"({abc[0]} if {abc[1]} else {abc[2]})"),
    )


EXPRESSIONS = st.recursive(_leaf, _combine, max_leaves=12)


def _cells(v: Any) -> int:
    if isinstance(v, (list, dict)):
        items = [x for kv in v.items() for x in kv] if isinstance(v, dict) else v
        return 1 + sum(_cells(x) for x in items)
    return 1


def _expression_property(src: str) -> None:
    try:
        with work_budget():
            v = evaluate(src, ENV)
    except ArchSpecError as e:
        assert len(str(e)) < 2000
        return
    assert not isinstance(v, complex)
    assert _cells(v) <= MAX_CELLS + 1
    assert not isinstance(v, str) or len(v) <= MAX_STR


@settings(FAST, max_examples=300)
@given(EXPRESSIONS)
def test_expressions_give_a_bounded_value_or_one_error(src: str) -> None:
    _expression_property(src)


# Names: what a spec's name: can hold, reaching a file name, a Mermaid drawing and a terminal.
NAMES = st.lists(st.text(st.characters(min_codepoint=0, max_codepoint=0x2FFF), max_size=20) | st.sampled_from(
    ["%%{init: {'theme': 'dark'}}%%", "\x1b]0;t\x07", "\x1b]52;c;eA==\x07", "/", "..", "\\", "\ud800", "\u202e"]),
    max_size=15).map("".join)


def _name_property(name: str) -> None:
    stem = safe_stem(name)
    assert stem and all(c.isalnum() or c in "_.-" for c in stem) and not stem.startswith(".")
    assert len(stem.encode()) <= MAX_STEM_BYTES
    # A YAML double-quoted string holding exactly ``name`` (every unusual character as an escape).
    quoted = '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in name) + '"'
    text = (f"archspec: 1\nname: {quoted}\ninputs: {{x: [3, 8, 8]}}\nnodes:\n"
            "  c: {op: conv, in: x, out: 4, k: 3}\noutputs: [c]\n")
    try:
        g = check(text).graph
    except ArchSpecError as e:
        assert not RAW.search(terminal_safe(e.render()))
        return
    mermaid = R.to_mermaid(g)
    assert "%%{" not in mermaid and "}%%" not in mermaid
    assert not RAW.search(terminal_safe(mermaid))


@settings(FAST, max_examples=150)
@given(NAMES)
def test_hostile_names_reach_files_drawings_and_terminals_safely(name: str) -> None:
    _name_property(name)


@pytest.mark.skipif(not os.environ.get("FUZZ_MINUTES"), reason="set FUZZ_MINUTES (make fuzz) to run")
def test_fuzz_for_minutes() -> None:
    """``make fuzz``: expressions and names, with fresh seeds, for FUZZ_MINUTES minutes."""
    stop = time.monotonic() + float(os.environ["FUZZ_MINUTES"]) * 60
    rounds = 0
    exprs = settings(FAST, max_examples=3000)(given(EXPRESSIONS)(_expression_property))
    names = settings(FAST, max_examples=1000)(given(NAMES)(_name_property))
    while time.monotonic() < stop:
        exprs()
        names()
        rounds += 1
    print(f"fuzzed {rounds} rounds of 3000 expressions and 1000 names")
