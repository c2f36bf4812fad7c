"""Bounded time and memory for specs that pass validation at the default limits.

Each test builds the hostile input that used to take minutes or gigabytes and runs the
command in a forked child under CPU-time and memory limits (tests/bounded.py): a
regression fails in seconds instead of hanging the suite.
"""

from __future__ import annotations

from bounded import bounded

from archspec import check


def _many_params_spec(n_params: int, outer: int, inner: int) -> str:
    params = "".join(f"  p{i}: {i}\n" for i in range(n_params))
    return ("archspec: 1\nname: t\nparams:\n" + params + "inputs: {x: [3, 8, 8]}\nblocks:\n"
            "  c:\n    nodes:\n      r: {op: relu}\n"
            f"  b:\n    nodes:\n      s: {{block: c, repeat: {inner}}}\n"
            f"nodes:\n  s: {{block: b, in: x, repeat: {outer}}}\noutputs: [s]\n")


def test_block_calls_do_not_copy_the_params() -> None:
    # 8 000 params, 20 000 block calls: copying the params per call was 3 x 10^8 dict writes.
    text = _many_params_spec(8000, 1000, 19)
    result = bounded(lambda: len(check(text).graph.nodes), cpu=6)
    assert result == 1000 * 19
