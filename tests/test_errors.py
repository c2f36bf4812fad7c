"""Every error the core compiler raises for a bad spec: class, message, line and column."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import run_passes, spec_text

import archspec
from archspec.errors import (
    ExpressionError,
    GraphError,
    ShapeError,
    SpecSyntaxError,
    SpecValidationError,
    UnknownOpError,
)

HEAD = """
archspec: 1
name: t
inputs: {x: [3, 32, 32]}
"""


def fails(body: str, cls: type, match: str, params: dict | None = None) -> archspec.ArchSpecError:
    with pytest.raises(cls, match=match) as info:
        run_passes(HEAD + spec_text(body), params)
    err = info.value
    assert err.loc is not None and err.loc.file == "t.yaml", err
    return err


def test_unknown_op_suggests_the_close_match():
    e = fails("""
        nodes:
          c: {op: cnv, out: 8, k: 3}
        outputs: [c]
        """, UnknownOpError, r"unknown op 'cnv' \(did you mean 'conv'\?\)")
    assert (e.loc.line, e.loc.col) == (5, 11)


def test_unknown_field_lists_the_allowed_ones():
    e = fails("""
        nodes:
          c: {op: conv, out: 8, kernel: 3}
        outputs: [c]
        """, SpecValidationError, r"unknown field 'kernel'")
    assert (e.loc.line, e.loc.col) == (5, 25)
    assert "k, stride" in e.expected


def test_unknown_top_level_field():
    fails("""
        nodes:
          c: {op: relu}
        output: [c]
        """, SpecValidationError, r"unknown field 'output' \(did you mean 'outputs'\?\)")


def test_missing_required_attribute():
    e = fails("""
        nodes:
          c: {op: conv, out: 8}
        outputs: [c]
        """, SpecValidationError, r"missing required field 'k'")
    assert e.loc.line == 5


def test_mistyped_attribute_is_not_coerced():
    e = fails("""
        nodes:
          c: {op: conv, out: "8", k: 3}
        outputs: [c]
        """, SpecValidationError, r"nodes.c.out: Input should be a valid integer")
    assert e.got == "'8'"


def test_missing_block_param():
    fails("""
        blocks:
          b:
            params: [out]
            nodes:
              c: {op: conv, out: $out, k: 3}
        nodes:
          s: {block: b}
        outputs: [s]
        """, SpecValidationError, r"block 'b' needs param 'out'")


def test_unknown_block_param_suggests():
    fails("""
        blocks:
          b:
            params: [out]
            nodes:
              c: {op: conv, out: $out, k: 3}
        nodes:
          s: {block: b, args: {outt: 3}}
        outputs: [s]
        """, SpecValidationError, r"block 'b' has no param 'outt' \(did you mean 'out'\?\)")


def test_mistyped_param_after_evaluation():
    e = fails("""
        params: {width: 2.5}
        nodes:
          c: {op: conv, out: $width, k: 3}
        outputs: [c]
        """, SpecValidationError, r"op 'conv', out: Input should be a valid integer")
    assert e.loc.line == 6


def test_unknown_param_override():
    with pytest.raises(SpecValidationError, match=r"unknown param 'widht' \(did you mean 'width'\?\)"):
        run_passes(HEAD + "params: {width: 8}\nnodes: {c: {op: relu}}\noutputs: [c]\n", {"widht": 3})


def test_param_override_of_the_wrong_type():
    with pytest.raises(SpecValidationError, match=r"param 'width' is an int, got 'wide'"):
        run_passes(HEAD + "params: {width: 8}\nnodes: {c: {op: relu}}\noutputs: [c]\n", {"width": "wide"})


def test_unknown_name_in_expression():
    fails("""
        params: {width: 8}
        nodes:
          c: {op: conv, out: "${2 * widht}", k: 3}
        outputs: [c]
        """, ExpressionError, r"unknown name 'widht' \(did you mean 'width'\?\)")


def test_dangling_reference():
    e = fails("""
        nodes:
          a: {op: relu}
          b: {op: relu, in: aa}
        outputs: [b]
        """, GraphError, r"unknown node 'aa' \(did you mean 'a'\?\)")
    assert e.loc.line == 6


def test_dangling_output():
    fails("""
        nodes:
          a: {op: relu}
        outputs: [b]
        """, GraphError, r"unknown node 'b'")


def test_cycle_is_named():
    fails("""
        nodes:
          a: {op: add, in: [x, c]}
          b: {op: relu, in: a}
          c: {op: relu, in: b}
        outputs: [c]
        """, GraphError, r"cycle: a -> b -> c -> a|cycle: c -> a -> b -> c|cycle: .*a.*b.*c")


def test_duplicate_node_name_is_a_duplicate_key():
    e = fails("""
        nodes:
          a: {op: relu}
          a: {op: tanh}
        outputs: [a]
        """, SpecSyntaxError, r"duplicate key 'a' \(first defined on line 5\)")
    assert (e.loc.line, e.loc.col) == (6, 3)


def test_duplicate_name_from_a_repeat_pattern():
    fails("""
        blocks:
          b: {nodes: {r: {op: relu}}}
        nodes:
          s: {block: b, repeat: 2, names: "blk"}
        outputs: [s]
        """, GraphError, r"names: 'blk' gives the same name twice")


def test_bad_expression_syntax():
    fails("""
        params: {width: 8}
        nodes:
          c: {op: conv, out: "${2 * (width}", k: 3}
        outputs: [c]
        """, ExpressionError, r"bad expression '2 \* \(width'")


def test_expression_cannot_call_arbitrary_code():
    fails("""
        nodes:
          c: {op: conv, out: "${__import__('os').getpid()}", k: 3}
        outputs: [c]
        """, ExpressionError, r"call '__import__\('os'\).getpid\(\)' is not allowed")


def test_concat_spatial_mismatch_names_both_producers():
    e = fails("""
        nodes:
          a: {op: conv, in: x, out: 8, k: 3}
          b: {op: conv, in: x, out: 8, k: 3, stride: 2}
          c: {op: concat, in: [a, b]}
        outputs: [c]
        """, ShapeError, r"node 'c' \(concat\): concat: input 1 is 8x16x16 but input 0 is 8x32x32")
    assert "'a' 8x32x32 (line 5)" in e.got and "'b' 8x16x16 (line 6)" in e.got
    assert e.loc.line == 7


def test_projection_ratio_must_be_whole():
    fails("""
        nodes:
          a: {op: conv, in: x, out: 8, k: 3, stride: 3}
          b: {op: conv, in: x, out: 8, k: 5, stride: 2, padding: 0}
          c: {op: add, in: [b, a]}
        outputs: [c]
        """, ShapeError, r"input 'a' is 8x11x11 but input 0 is 8x14x14: a projection would have to upsample 11 to 14")


def test_non_integer_ratio():
    fails("""
        nodes:
          a: {op: conv, in: x, out: 8, k: 3, stride: 3}
          b: {op: conv, in: x, out: 8, k: 3, stride: 2}
          c: {op: add, in: [a, b]}
        outputs: [c]
        """, ShapeError, r"input 'b' is 8x16x16 but input 0 is 8x11x11: the spatial ratio 16/11 is not a whole number")


def test_projection_would_need_upsampling():
    e = fails("""
        nodes:
          a: {op: conv, in: x, out: 8, k: 3, stride: 2}
          b: {op: conv, in: x, out: 8, k: 3}
          c: {op: add, in: [b, a]}
        outputs: [c]
        """, ShapeError, r"input 'a' is 8x16x16 but input 0 is 8x32x32: a projection would have to upsample 16 to 32")
    # Input 0 is already the larger: the old hint "put the larger input first" told users to do
    # what they had done; a projection only shrinks, so the fix is to upsample or swap.
    assert e.fix == ("a projection maps each input onto input 0 and can only shrink it: upsample 'a' to input 0's "
                     "size before the add (op: upsample), or, if input 0 is the one to shrink, list 'a' first")


def test_none_policy_meets_a_mismatch():
    e = fails("""
        defaults: {projection: {kind: none}}
        nodes:
          a: {op: conv, in: x, out: 8, k: 3}
          c: {op: add, in: [a, x]}
        outputs: [c]
        """, ShapeError, r"input 'x' is 3x32x32 but input 0 is 8x32x32, and the projection policy is 'none'")
    assert e.loc.line == 7


def test_zero_pad_cannot_drop_channels():
    fails("""
        defaults: {projection: {kind: zero_pad}}
        nodes:
          a: {op: conv, in: x, out: 2, k: 3}
          c: {op: add, in: [a, x]}
        outputs: [c]
        """, ShapeError, r"zero_pad cannot reduce 3 channels to 2")


def test_kernel_larger_than_input():
    fails("""
        nodes:
          a: {op: conv, in: x, out: 8, k: 40, padding: 0}
        outputs: [a]
        """, ShapeError, r"node 'a' \(conv\): conv: kernel 40x40 .* is larger than the input 32x32")


def test_node_without_kind():
    fails("""
        nodes:
          a: {out: 3}
        outputs: [a]
        """, SpecValidationError, r"node 'a' needs one of the keys op:, block:, nodes: or share:")


def test_block_recursion_is_reported():
    fails("""
        blocks:
          a: {nodes: {n: {block: b}}}
          b: {nodes: {n: {block: a}}}
        nodes:
          s: {block: a}
        outputs: [s]
        """, GraphError, r"block 'a' uses itself: a -> b -> a")


def test_reserved_and_shadowing_names():
    fails("""
        nodes:
          forward: {op: relu}
        outputs: [forward]
        """, SpecValidationError, r"name 'forward' would shadow an attribute of torch's nn.Module")
    fails("""
        nodes:
          prev: {op: relu}
        outputs: [prev]
        """, SpecValidationError, r"name 'prev' is reserved")


def test_cli_shows_caret_and_exits_2_without_traceback(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(spec_text(HEAD) + "nodes:\n  c: {op: cnv, out: 8, k: 3}\noutputs: [c]\n")
    r = subprocess.run([sys.executable, "-m", "archspec.cli", "check", str(spec)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert f"{spec}:5:11: unknown op 'cnv' (did you mean 'conv'?)" in r.stderr
    lines = r.stderr.splitlines()
    src = next(i for i, line in enumerate(lines) if "c: {op: cnv" in line)
    assert lines[src + 1].index("^") == lines[src].index("cnv")


def test_a_long_source_line_is_cut_around_the_caret():
    from archspec.errors import Loc

    line = "x: [" + "1, " * 2000 + "oops]"
    err = SpecSyntaxError("bad", loc=Loc("t.yaml", 1, line.index("oops") + 1), source=line)
    shown, caret = err.render().splitlines()[1:3]
    assert len(shown) < 140 and shown.endswith("oops]") and "…" in shown
    assert shown[caret.index("^"):].startswith("oops")


def test_format_version_is_the_integer_1():
    with pytest.raises(SpecValidationError, match=r"archspec: format version 1.0 is not supported; this archspec reads version 1"):
        run_passes("archspec: 1.0\nname: t\ninputs: {x: [3]}\nnodes: {a: {op: relu}}\noutputs: [a]\n")
