"""render stays near-linear on hostile layouts: dense repeats, long residual chains.

``_dips`` (does a skip span a dip to a lower resolution?) walked the main path once per
skip: quadratic on long chains of skips and cubic on a dense repeat. It now answers by
binary lifting; a graph with more edges than a drawing reads is refused before any work.
"""

from __future__ import annotations

import importlib
import shutil
from typing import Any

import pytest
from bounded import bounded
from helpers import ROOT

from archspec.api import graph_of
from archspec.errors import LimitError, OutputError

R: Any = importlib.import_module("archspec.render")  # `archspec.render` is also the function
from archspec.render.model import prod  # noqa: E402
from archspec.render.roles import dips, skip_roles  # noqa: E402
from archspec.render.view import view  # noqa: E402


def _old_dips(b: Any, main_in: dict[str, int], src: str, merge: Any, main: str, depth: dict[str, int]) -> bool:
    """The walk ``_dips`` replaced: the reference it must agree with."""
    a, m = b.shapes.get(src), merge.shape
    if a is None or m is None or len(a) < 2 or a[1:] != m[1:]:
        return False
    size = prod(a[1:])
    cur = main
    while cur in b.idx and depth.get(cur, 0) > depth.get(src, 0):
        s = b.shapes.get(cur)
        if s is not None and len(s) == len(a) and prod(s[1:]) < size:
            return True
        n = b.idx[cur]
        if not n.inputs:
            break
        cur = n.inputs[main_in.get(cur, 0)]
    return False


LADDER = """archspec: 1
name: ladder
inputs: {x: [4, 32, 32]}
blocks:
  ud:
    nodes:
      p: {op: maxpool, k: 2}
      c: {op: relu}
      u: {op: upsample, scale: 2}
      a: {op: add, in: [u, input]}
  flat:
    nodes:
      c: {op: relu}
      a: {op: add, in: [c, input]}
nodes:
  s: {op: relu, in: x}
  f: {block: flat, repeat: 3}
  m: {block: ud, repeat: 3}
  g: {block: flat, repeat: 2}
  e: {op: add, in: [g, s]}
  p: {op: maxpool, k: 2}
  u: {op: upsample, scale: 2}
  z: {op: add, in: [u, f]}
outputs: [z]
"""


@pytest.mark.parametrize(("source", "params"), [(LADDER, {}), (ROOT / "specs" / "unet.yaml", {}),
                                                (ROOT / "specs" / "densenet.yaml", {}),
                                                (ROOT / "specs" / "resnet.yaml", {"depth": 50})])
def test_dips_agrees_with_the_walk(source: object, params: dict) -> None:
    g = graph_of(source, params)
    v = view(g)
    roles = skip_roles(v)
    asked = 0
    for n in g.nodes:
        if len(n.inputs) < 2:
            continue
        main = roles.main_in[n.name]
        for slot, src in enumerate(n.inputs):
            if slot != main:
                real = v.origin(src)
                got = dips(v, real, n, n.inputs[main], roles.depth, roles.main_in)
                assert got == _old_dips(v, roles.main_in, real, n, n.inputs[main], roles.depth)
                asked += 1
    assert asked > 0
    if source == LADDER:
        assert roles.u_layout and {m for _, m in roles.u_skips} >= {"m.0.a", "m.1.a", "m.2.a", "z"}
        assert "e" in {m for _, m in roles.u_skips} and not {"f.0.a", "g.1.a"} & {m for _, m in roles.u_skips}


def _residual_chain(n: int, adds: int) -> str:
    """``n`` repeats of 1000 relu-add blocks, then a repeat of ``adds`` adds that each
    take the first node as a skip over the whole chain (no dip: each walk went to the end)."""
    return ("archspec: 1\nname: chain\ninputs: {x: [4, 16, 16]}\nblocks:\n  res:\n    nodes:\n"
            "      r: {op: relu}\n      a: {op: add, in: [r, input]}\n"
            "  tail:\n    inputs: [h, k]\n    nodes:\n      a: {op: add, in: [h, k]}\n"
            "nodes:\n  s: {op: relu, in: x}\n" + "".join(f"  m{k}: {{block: res, repeat: 1000}}\n" for k in range(n))
            + f"  e: {{block: tail, in: [prev, s], repeat: {adds}}}\noutputs: [e]\n")


def test_long_chains_of_skips_draw_fast() -> None:
    # 1 000 skips over a 16 000-node main path: the walks were 1.6 x 10^7 steps in all.
    g = graph_of(_residual_chain(8, 1000))
    d = bounded(lambda: R.drawing(g, max_render_nodes=2000), cpu=10)
    assert not d.u_layout and 1000 < len(d.nodes) < 2000


def test_dense_repeat_with_too_many_edges_is_refused_first() -> None:
    text = ("archspec: 1\nname: t\ninputs: {x: [4, 8, 8]}\nblocks:\n  l:\n    nodes:\n      c: {op: conv, out: 1, k: 1}\n"
            "nodes:\n  d: {block: l, in: x, repeat: 500, connect: dense}\noutputs: [d]\n")
    g = graph_of(text)
    edges = sum(len(n.inputs) for n in g.nodes)
    with pytest.raises(LimitError, match=f"'t' has {edges} edges, more than the {R.MAX_RENDER_EDGES} a drawing reads"):
        bounded(lambda: R.drawing(g), cpu=3)


def test_dot_time_limit_is_short_and_said(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    seen: dict[str, object] = {}

    def slow(*a: object, **k: object) -> None:
        seen.update(k)
        raise subprocess.TimeoutExpired("dot", 1)

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr(subprocess, "run", slow)
    with pytest.raises(OutputError, match=r"graphviz's dot took more than 20 s \(the limit\)"):
        R.run_dot("digraph {}", "svg")
    assert seen["timeout"] == R.DOT_TIMEOUT_S == 20
