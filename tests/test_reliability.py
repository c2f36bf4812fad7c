"""Bounded time and memory for specs that pass validation at the default limits.

Each test builds the hostile input that used to take minutes or gigabytes and runs the
command in a forked child under CPU-time and memory limits (tests/bounded.py): a
regression fails in seconds instead of hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bounded import bounded
from helpers import ROOT

from archspec import Limits, check
from archspec.analyse import MAX_PATHS, SEARCH_WORK, input_constraints, receptive_fields
from archspec.errors import LimitError, SpecSyntaxError


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


def _use_files(tmp_path: Path, n_files: int, fill: int) -> Path:
    """A spec that includes ``n_files`` block files, each ``fill`` bytes of comment."""
    for k in range(n_files):
        (tmp_path / f"b{k}.yaml").write_text(f"archspec: 1\nblocks:\n  b{k}:\n    nodes:\n      r: {{op: relu}}\n"
                                            + "#" * fill + "\n")
    uses = ", ".join(f"b{k}.yaml" for k in range(n_files))
    top = tmp_path / "net.yaml"
    top.write_text(f"archspec: 1\nname: t\nuse: [{uses}]\ninputs: {{x: [3, 8, 8]}}\n"
                   "nodes:\n  s: {block: b0, in: x}\noutputs: [s]\n")
    return top


def test_use_files_share_one_byte_limit(tmp_path: Path) -> None:
    # Each file is under the 1 MiB limit alone; three of them are not, together.
    top = _use_files(tmp_path, 3, 400_000)
    with pytest.raises(LimitError, match=r"use: 'b2.yaml' takes the spec and its use: files past 1048576 bytes in all") \
            as e:
        check(top)
    assert e.value.loc is not None and (e.value.loc.file, e.value.loc.line) == (str(top), 3)
    assert "--max-bytes" in (e.value.fix or "")
    assert len(check(top, limits=Limits().replace(max_bytes=2 << 20)).graph.nodes) == 1


def test_use_files_share_one_yaml_value_limit(tmp_path: Path) -> None:
    for k in range(2):
        (tmp_path / f"b{k}.yaml").write_text(f"archspec: 1\nblocks:\n  b{k}:\n    doc: x\n"
                                            "    nodes:\n      r: {op: relu}\n")
    (tmp_path / "net.yaml").write_text("archspec: 1\nname: t\nuse: [b0.yaml, b1.yaml]\ninputs: {x: [3, 8, 8]}\n"
                                       "nodes:\n  s: {block: b0, in: x}\noutputs: [s]\n")
    small = Limits().replace(max_yaml_nodes=30)  # each file alone is under it
    with pytest.raises(LimitError, match=r"use: 'b[01].yaml' takes the spec and its use: files past 30 YAML values in all"):
        check(tmp_path / "net.yaml", limits=small)
    assert len(check(tmp_path / "net.yaml", limits=Limits().replace(max_yaml_nodes=40)).graph.nodes) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are a POSIX thing")
def test_a_fifo_spec_path_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "net.yaml"
    os.mkfifo(fifo)

    def go() -> str:
        with pytest.raises(SpecSyntaxError, match="cannot read spec .*: it is not a regular file") as e:
            check(fifo)
        return e.value.fix or ""
    assert bounded(go, cpu=5, wall=20) == "give the path of a .yaml file"
    r = subprocess.run([sys.executable, "-m", "archspec.cli", "check", str(fifo)], capture_output=True, text=True,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "it is not a regular file" in r.stderr


def _symbolic(nodes: str) -> str:
    return "archspec: 1\nname: t\ninputs: {x: [3, H, W]}\nnodes:\n" + nodes + "outputs: [c]\n"


def test_size_search_with_a_huge_stride_is_bounded() -> None:
    # The search used to try every size in 1..4*stride: 400 000 inferences here.
    text = _symbolic("  c: {op: conv, in: x, out: 8, k: 1, stride: 100000}\n")
    rules = bounded(lambda: [str(r) for r in input_constraints(text).rules], cpu=6)
    assert rules == ["H >= 1", "W >= 1"]


def test_size_search_cost_is_bounded_by_node_count(tmp_path: Path) -> None:
    # 3 000 nodes: trying 64 sizes of each symbol was 400 000 node inferences.
    text = ("archspec: 1\nname: t\ninputs: {x: [3, H, W]}\nblocks:\n  b:\n    nodes:\n      r: {op: relu}\n"
            "nodes:\n  c: {op: conv, in: x, out: 8, k: 3, stride: 2}\n  s: {block: b, repeat: 1000}\n"
            "  t: {block: b, repeat: 1000}\n  u: {block: b, repeat: 999}\noutputs: [u]\n")
    with pytest.raises(LimitError, match=f"finding the valid input sizes of this 3000-node graph would take more "
                                         f"than {SEARCH_WORK} node inferences") as e:
        bounded(lambda: input_constraints(text), cpu=8)
    assert "--input" in (e.value.fix or "")
    (tmp_path / "net.yaml").write_text(text)
    r = subprocess.run([sys.executable, "-m", "archspec.cli", "check", str(tmp_path / "net.yaml"), "--input", "3x64x64"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def _diamonds(k: int) -> tuple[str, int]:
    """``k`` diamonds whose branches widen H and W with growing dilations: the paths
    that no other path dominates double at every diamond. Returns the spec and the
    exact receptive field of the output (every H branch, in both dims)."""
    lines = ["archspec: 1", "name: t", "inputs: {x: [4, 64, 64]}", "nodes:", "  s0: {op: relu, in: x}"]
    total = 1
    for i in range(k):
        d = 2 ** (i % 12) + i
        total += 2 * d
        lines.append(f"  a{i}: {{op: conv, in: s{i}, out: 4, k: [3, 1], dilation: [{d}, 1], padding: [{d}, 0]}}")
        lines.append(f"  b{i}: {{op: conv, in: s{i}, out: 4, k: [1, 3], dilation: [1, {d}], padding: [0, {d}]}}")
        lines.append(f"  s{i + 1}: {{op: add, in: [a{i}, b{i}]}}")
    lines.append(f"outputs: [s{k}]")
    return "\n".join(lines) + "\n", total


@pytest.mark.parametrize("k", [4, 60])
def test_receptive_fields_of_many_diamonds_are_bounded(k: int) -> None:
    # 2^k paths: 60 diamonds never finished; 4 stay under MAX_PATHS and are exact.
    text, total = _diamonds(k)

    def field() -> tuple[int, ...]:
        f = receptive_fields(check(text).graph)[f"s{k}"]
        assert f is not None
        return f.size
    assert bounded(field, cpu=6) == (total, total)
    assert 2 ** 4 <= MAX_PATHS < 2 ** 60
