"""Expressions cost bounded time and memory: every operation is bounded before it runs.

Each hostile expression here passed the old length bounds and then walked or built
billions of cells (``str``, ``==``, ``%`` over shared lists), or allocated before a bound
applied (``round(1, -10**9)``, ``'%999999999d' % 1``). Each runs in a child under CPU and
memory limits (tests/bounded.py), so a regression fails fast instead of hanging.
"""

from __future__ import annotations

import pytest
from bounded import bounded

from archspec import check
from archspec.errors import ExpressionError, short_repr
from archspec.expr import MAX_CELLS, MAX_WORK, evaluate, work_budget

CUBE = "[[[1]*4096]*4096]*4096"


def spec(out: str, params: str = "") -> str:
    return (f"archspec: 1\nname: t\n{params}inputs: {{x: [3, 8, 8]}}\nnodes:\n"
            f"  c: {{op: conv, in: x, out: \"{out}\", k: 3}}\noutputs: [c]\n")


def _raises(src: str, env: dict | None = None) -> str:
    def go() -> str:
        with pytest.raises(ExpressionError) as e:
            evaluate(src, env or {})
        return str(e.value)
    return bounded(go, cpu=5, memory=1 << 30)


@pytest.mark.parametrize(("src", "match"), [
    (f"{CUBE} == {CUBE}", f"builds a value of more than {MAX_CELLS} cells"),
    ("[[1]*4096]*4096", f"more than {MAX_CELLS} cells"),
    ("'%s' % ([[1]*4096]*4096)", f"more than {MAX_CELLS} cells"),
    ("len('%999999999d' % 1)", "format width .* is larger than 4096"),
    ("len('%(a).999999999f' % {'a': 1})", "format width .* is larger than 4096"),
    ("round(1, -10**9)", "round\\(\\) to -1000000000 digits: at most 64"),
    ("round(1.5, 10**18)", "at most 64"),
    ("[[1]*4096] + [[1]*4096] + [[1]*4096] + [[1]*4096] + [[1]*4096]", f"more than {MAX_CELLS} cells"),
    ("{'a': [[1]*4096]*3, 'b': [[1]*4096]*2}", f"more than {MAX_CELLS} cells"),
    ("(-8) ** 0.5", "complex number"),
])
def test_expensive_operations_are_refused_before_they_run(src: str, match: str) -> None:
    import re

    assert re.search(match, _raises(src)), src


def test_values_in_messages_are_bounded() -> None:
    msg = _raises("{'a': 1}[s]", {"s": "x" * 4000})
    assert "…" in msg and len(msg) < 400
    msg = _raises("int(s)", {"s": "a" * 3000})
    assert "invalid literal" in msg and len(msg) < 400


def test_short_repr_never_walks_a_huge_value() -> None:
    inner = [1] * 4096
    cube = [[inner] * 4096] * 4096  # 68 billion cells if walked
    text = bounded(lambda: short_repr(cube), cpu=2, memory=1 << 30)
    assert text.startswith("[[[1, 1") and len(text) < 120
    assert short_repr(10 ** 5000) == "an integer of 16610 bits"
    assert short_repr("a" * 5000) == repr("a" * 80) + "…"


def test_the_work_of_all_expressions_is_bounded_together() -> None:
    p = list(range(4000))
    src = " and ".join(["p == p"] * 20)  # ~160 000 cells of comparison per evaluation

    def many() -> None:
        with work_budget():
            for _ in range(1000):
                evaluate(src, {"p": p})
    with pytest.raises(ExpressionError, match=f"expressions do more than {MAX_WORK} steps of work"):
        bounded(many, cpu=5)
    assert evaluate(src, {"p": p}) is True  # one evaluation is well inside the budget


def costly_repeat(when: str) -> str:
    return ("archspec: 1\nname: t\nparams: {p: \"${[[1]*64]*64}\"}\ninputs: {x: [3, 8, 8]}\n"
            "blocks:\n  b:\n    nodes:\n"
            f"      r: {{op: relu, when: \"${{{when}}}\"}}\n"
            "nodes:\n  s: {block: b, in: x, repeat: 1000}\noutputs: [s]\n")


def test_a_spec_with_costly_expressions_in_every_node_fails_fast() -> None:
    # Each instance reads its i, so each evaluates the expression again.
    eq = " and ".join(["p == p"] * 20)
    with pytest.raises(ExpressionError, match="steps of work") as e:
        bounded(lambda: check(costly_repeat(f"i >= 0 and {eq}")), cpu=8)
    assert e.value.loc is not None and e.value.loc.line == 8


def test_identical_instances_evaluate_a_costly_expression_once() -> None:
    # Instances that cannot differ are copied from the first: one evaluation in all.
    eq = " and ".join(["p == p"] * 20)
    assert len(bounded(lambda: check(costly_repeat(eq)), cpu=8).graph.nodes) == 1000


@pytest.mark.parametrize("out", [f"${{3 if {CUBE} == {CUBE} else 4}}", "${[[1]*4096]*4096}",
                                 "${len('%s' % [[[1]*4096]*4096])}", "${round(1, -10**9)}",
                                 "${len('%999999999d' % 1)}"])
def test_hostile_expressions_in_a_spec_are_one_error(out: str) -> None:
    with pytest.raises(ExpressionError) as e:
        bounded(lambda: check(spec(out)), cpu=5, memory=1 << 30)
    assert e.value.loc is not None and e.value.loc.line == 5
    assert len(e.value.render()) < 2000


def test_ordinary_expressions_still_work() -> None:
    assert evaluate("[[0] * 3] * 2", {}) == [[0, 0, 0], [0, 0, 0]]
    assert evaluate("'%03d-%(a)5s' % {'a': 'b'} if false else '%03d' % 7", {}) == "007"
    assert evaluate("round(2.345, 2)", {}) == 2.35
    assert evaluate("[1] * 4096 == [1] * 4096", {}) is True
    assert evaluate("len([[1, 2]] * 2000)", {}) == 2000
