"""Every failure is one ArchSpecError (exit 2), never an internal error (exit 1)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT

import archspec
from archspec.errors import GraphError, LimitError, ShapeError, SpecValidationError, fmt_int

SPEC = "archspec: 1\nname: t\nparams: {w: 4, l: [1]}\ninputs: {x: [3, 8, 8]}\nnodes:\n  c: {op: conv, in: x, out: $w, k: 3}\noutputs: [c]\n"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archspec.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, errors="replace")


def _deep(n: int) -> list[Any]:
    root: list[Any] = []
    cur = root
    for _ in range(n):
        nxt: list[Any] = []
        cur.append(nxt)
        cur = nxt
    return root


@pytest.mark.parametrize(("params", "cls", "match"), [
    ({1: 4}, SpecValidationError, "param names must be strings, got 1"),
    ({"w": 10 ** 5000}, LimitError, "param 'w' is an integer of more than 20 digits"),
    ({"l": _deep(100_000)}, LimitError, "param 'l' nests deeper than 64 levels"),
    ([("w", 4)], SpecValidationError, "params must be a mapping of names to values, got list"),
    ({"w": object()}, SpecValidationError, "param 'w' is a object: params are numbers"),
    ({"l": ["x" * 5000]}, LimitError, "param 'l.0' is a string of 5000 characters"),
    ({"l": [{(1, 2): 3}]}, SpecValidationError, r"param 'l.0' has a key \(1, 2\)"),
])
def test_the_python_api_refuses_params_a_spec_could_not_hold(params: Any, cls: type, match: str) -> None:
    with pytest.raises(cls, match=match):
        archspec.check(SPEC, params)


def test_a_hand_built_graph_without_shapes_is_refused() -> None:
    g = archspec.load(SPEC)
    bare = g.replace(nodes=tuple(dataclasses.replace(n, shape=None) for n in g.nodes))
    with pytest.raises(GraphError, match="node 'c' has no shape: the graph was not inferred"):
        archspec.compile(bare)


@pytest.mark.parametrize(("scale", "cls", "match"), [
    ("1e308", ShapeError, "upsample: scale 1e\\+308 makes the input 3x8x8 larger than any size a float can hold"),
    ("[1e308, 1e308]", ShapeError, "larger than any size a float can hold"),
    ("1e300", LimitError, "node 'u' outputs about 10\\^602 elements per sample"),
])
def test_a_float_scale_that_overflows_is_one_error(scale: str, cls: type, match: str) -> None:
    text = f"archspec: 1\nname: t\ninputs: {{x: [3, 8, 8]}}\nnodes:\n  u: {{op: upsample, in: x, scale: {scale}}}\noutputs: [u]\n"
    with pytest.raises(cls, match=match):
        archspec.check(text)


def test_sizes_past_the_int_to_str_limit_are_one_error(tmp_path: Path) -> None:
    dims = ", ".join(["9223372036854775807"] * 600)  # a product of 11 000 digits
    (tmp_path / "big.yaml").write_text(f"archspec: 1\nname: t\ninputs: {{x: [{dims}]}}\nnodes:\n"
                                       "  r: {op: relu, in: x}\noutputs: [r]\n")
    (tmp_path / "sym.yaml").write_text("archspec: 1\nname: t\ninputs: {x: [3, H, W]}\nnodes:\n"
                                       "  r: {op: relu, in: x}\noutputs: [r]\n")
    huge = "9" * 5000
    for args in (["check", "big.yaml"], ["summary", "big.yaml"], ["render", "big.yaml", "--format", "dot", "-o", "-"],
                 ["check", "sym.yaml", "--input", f"3x{huge}x4"], ["summary", "sym.yaml", "--input", f"3x{huge}x4"],
                 ["check", "sym.yaml", "-p", f"H={huge}", "-p", "W=4"]):
        r = _cli(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr[-500:])
        assert "internal error" not in r.stderr and len(r.stderr) < 4000
    assert "about 10^11378 elements" in _cli("check", "big.yaml", cwd=tmp_path).stderr
    assert fmt_int(10 ** 40) == "about 10^40" and fmt_int(12345) == "12345"


@pytest.mark.parametrize("name", ['"t\\0x"', '"t\\ud800x"', '"' + "é" * 3000 + '"', '"a/../../b\\e]0;x\\a"'])
def test_hostile_names_never_make_an_internal_error(tmp_path: Path, name: str) -> None:
    from click.testing import CliRunner

    from archspec.cli import main

    spec = tmp_path / "net.yaml"
    spec.write_text(f"archspec: 1\nname: {name}\ninputs: {{x: [3, 8, 8]}}\nnodes:\n"
                    "  c: {op: conv, in: x, out: 4, k: 3}\noutputs: [c]\n")
    for args in (["check", spec], ["summary", spec], ["render", spec, "--format", "dot", "-o", tmp_path / "n.dot"],
                 ["render", spec, "-o", tmp_path / "n.svg"], ["build", spec, "-o", tmp_path / "out"],
                 ["export", spec, "--to", "python", "-o", tmp_path / "m.py"]):
        r = CliRunner().invoke(main, [str(a) for a in args])
        assert r.exit_code in (0, 2) and "internal error" not in r.output, (args, r.output[-500:])
    assert all(p.resolve().is_relative_to(tmp_path) for p in tmp_path.rglob("*"))
