"""Op shape rules, attribute validation, and agreement with real torch.

Three layers: per-op tables of expected shapes and expected errors (pure Python), a
check over EVERY registered op that the emitted torch code runs on real and meta
tensors with the inferred shape, parameter count and MAC count, and property tests of
the pooling / interpolation size rules against torch itself.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from torch.utils.flop_counter import FlopCounterMode

from archspec.errors import ShapeError
from archspec.ops import REGISTRY, OpAttrs, Window
from archspec.ops.pool import pool_out

Shapes = list[tuple[int, ...]]


def op_attrs(name: str, attrs: dict[str, Any]) -> tuple[Any, Any]:
    op = REGISTRY.get(name)
    return op, op.Attrs.model_validate(attrs)


def infer(name: str, attrs: dict[str, Any], *shapes: tuple[int, ...]) -> tuple[int, ...]:
    op, a = op_attrs(name, attrs)
    return op.infer(a, list(shapes))


# --------------------------------------------------------------------------------------
# Shape tables: (op, attrs, input shapes, expected output shape)
# --------------------------------------------------------------------------------------

SHAPES: list[tuple[str, dict[str, Any], Shapes, tuple[int, ...]]] = [
    # activations keep the shape, on any rank
    *[(n, {}, [s], s) for n in ("relu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "elu", "leaky_relu",
                                "relu6", "hardsigmoid", "hardtanh", "softplus", "mish", "prelu")
      for s in [(7,), (3, 5), (4, 7, 9), (2, 3, 5, 7)]],
    ("prelu", {"num_parameters": 4}, [(4, 7, 9)], (4, 7, 9)),
    ("prelu", {"num_parameters": 7}, [(7,)], (7,)),
    ("prelu", {}, [()], ()),
    ("hardtanh", {"min": 0, "max": 6}, [(8, 5)], (8, 5)),
    ("softplus", {"beta": 2, "threshold": 10}, [(8, 5)], (8, 5)),
    ("leaky_relu", {"slope": 0.2}, [(8, 5, 5)], (8, 5, 5)),
    ("gelu", {"approximate": "tanh"}, [(8, 5, 5)], (8, 5, 5)),
    ("elu", {"alpha": 0.5}, [(8, 5)], (8, 5)),
    ("softmax", {}, [(10,)], (10,)),
    ("softmax", {"dim": -1}, [(4, 6, 6)], (4, 6, 6)),
    ("softmax", {"dim": 2}, [(4, 6, 6)], (4, 6, 6)),
    ("scale", {"factor": 0.5}, [(8, 5, 5)], (8, 5, 5)),
    ("shift", {"offset": -3}, [(7,)], (7,)),
    ("sub", {}, [(3, 5, 5), (3, 5, 5)], (3, 5, 5)),
    ("sub", {}, [(3, 5, 5), (1, 5, 5)], (3, 5, 5)),  # broadcast, as add and mul
    ("mul", {}, [(3, 1, 1), (3, 5, 5)], (3, 5, 5)),
    # norms keep the shape
    ("bn", {}, [(16,)], (16,)),
    ("bn", {}, [(16, 9)], (16, 9)),
    ("bn", {}, [(16, 7, 5)], (16, 7, 5)),
    ("bn", {"affine": False, "momentum": None}, [(4, 3, 5, 7)], (4, 3, 5, 7)),
    ("layernorm", {}, [(10,)], (10,)),
    ("layernorm", {"dims": 3}, [(4, 7, 7)], (4, 7, 7)),
    ("groupnorm", {"groups": 4}, [(8, 5, 5)], (8, 5, 5)),
    ("groupnorm", {"groups": 3}, [(9,)], (9,)),
    ("instancenorm", {}, [(3, 2)], (3, 2)),
    ("instancenorm", {"affine": True}, [(3, 1, 2, 1)], (3, 1, 2, 1)),
    # max/avg pool: floor rule, stride defaults to k
    ("maxpool", {"k": 2}, [(3, 32, 32)], (3, 16, 16)),
    ("maxpool", {"k": 2}, [(3, 7, 7)], (3, 3, 3)),
    ("maxpool", {"k": 3, "stride": 2, "padding": 1}, [(64, 112, 112)], (64, 56, 56)),
    ("maxpool", {"k": 3, "stride": 2, "padding": 1}, [(64, 7)], (64, 4)),
    ("maxpool", {"k": 2, "ceil_mode": True}, [(3, 7, 7)], (3, 4, 4)),
    ("maxpool", {"k": 3, "stride": 1, "dilation": 2}, [(3, 9, 9)], (3, 5, 5)),
    ("maxpool", {"k": [1, 2, 2]}, [(3, 5, 8, 9)], (3, 5, 4, 4)),
    ("maxpool", {"k": [3, 1], "stride": [1, 3]}, [(3, 5, 8)], (3, 3, 3)),
    ("maxpool", {"k": 1, "stride": 3}, [(3, 4, 4)], (3, 2, 2)),
    # ceil mode drops a last window that would start in the right padding
    ("maxpool", {"k": 2, "stride": 2, "padding": 1, "ceil_mode": True}, [(1, 5, 6)], (1, 3, 4)),
    ("maxpool", {"k": 3, "stride": 3, "padding": 1, "ceil_mode": True}, [(1, 4)], (1, 2)),
    ("avgpool", {"k": 2}, [(3, 9)], (3, 4)),
    ("avgpool", {"k": 2, "stride": 2, "padding": 1}, [(3, 7, 7)], (3, 4, 4)),
    ("avgpool", {"k": 2, "padding": 1, "ceil_mode": True}, [(3, 5, 6, 7)], (3, 3, 4, 4)),
    ("avgpool", {"k": 3, "stride": 1, "padding": 1, "count_include_pad": False}, [(3, 5, 5)], (3, 5, 5)),
    # adaptive pools: fixed output, larger than the input allowed
    ("adaptive_avgpool", {}, [(512, 7, 7)], (512, 1, 1)),
    ("adaptive_avgpool", {"size": [5, 7]}, [(3, 3, 3)], (3, 5, 7)),
    ("adaptive_avgpool", {"size": 4}, [(3, 10)], (3, 4)),
    ("adaptive_maxpool", {"size": [2, 3, 1]}, [(3, 5, 7, 9)], (3, 2, 3, 1)),
    ("adaptive_maxpool", {"size": 1}, [(3, 7)], (3, 1)),
    # upsample: floor(n * scale), or an explicit size
    ("upsample", {"scale": 2}, [(3, 7, 7)], (3, 14, 14)),
    ("upsample", {"scale": 1.5, "mode": "bilinear"}, [(3, 7, 7)], (3, 10, 10)),
    ("upsample", {"scale": 0.3}, [(3, 7, 7)], (3, 2, 2)),
    ("upsample", {"scale": [1.5, 2, 0.5], "mode": "trilinear"}, [(3, 4, 5, 6)], (3, 6, 10, 3)),
    ("upsample", {"scale": 3, "mode": "linear", "align_corners": True}, [(3, 5)], (3, 15)),
    ("upsample", {"size": [5, 9], "mode": "bicubic"}, [(3, 7, 7)], (3, 5, 9)),
    ("upsample", {"size": 4}, [(3, 2, 2, 2)], (3, 4, 4, 4)),
    # upsample to another node's size: input 1 gives only its spatial size
    ("upsample", {}, [(3, 7, 7), (5, 14, 15)], (3, 14, 15)),
    ("upsample", {"mode": "bilinear", "align_corners": True}, [(3, 7, 7), (1, 3, 3)], (3, 3, 3)),
    ("pixel_shuffle", {"factor": 2}, [(12, 5, 5)], (3, 10, 10)),
    ("pixel_shuffle", {"factor": 3}, [(9, 2, 4)], (1, 6, 12)),
    ("pixel_shuffle", {"factor": 1}, [(5, 2, 4)], (5, 2, 4)),
    # layout: F.pad's order (last dim first), crop to input 1's spatial size, permute, mean
    ("pad", {"padding": [1, 1]}, [(3, 5)], (3, 7)),
    ("pad", {"padding": [1, 2, 3, 4]}, [(3, 5, 5)], (3, 12, 8)),
    ("pad", {"padding": [0, 0, 0, 0, 1, 2], "value": -1}, [(3, 5, 5)], (6, 5, 5)),
    ("pad", {"padding": [1, 1]}, [(7,)], (9,)),
    ("pad", {"padding": [1, 1, 2, 2], "mode": "reflect"}, [(3, 5, 5)], (3, 9, 7)),
    ("pad", {"padding": [4, 0], "mode": "reflect"}, [(3, 5)], (3, 9)),
    ("pad", {"padding": [1, 0], "mode": "replicate"}, [(3, 1)], (3, 2)),
    ("pad", {"padding": [2, 2, 2, 2, 4, 4], "mode": "circular"}, [(1, 4, 4, 4)], (1, 12, 8, 8)),
    ("crop", {}, [(3, 20, 20), (5, 16, 16)], (3, 16, 16)),
    ("crop", {}, [(3, 9), (1, 9)], (3, 9)),
    ("crop", {}, [(2, 5, 6, 7), (1, 3, 6, 2)], (2, 3, 6, 2)),
    ("permute", {"dims": [0, 2, 1]}, [(3, 4, 5)], (3, 5, 4)),
    ("permute", {"dims": [1, 2, 0]}, [(3, 4, 5)], (4, 5, 3)),
    ("permute", {"dims": [-1, 0]}, [(3, 4)], (4, 3)),
    ("mean", {"dims": [1, 2]}, [(3, 4, 5)], (3,)),
    ("mean", {"dims": [1, 2], "keepdim": True}, [(3, 4, 5)], (3, 1, 1)),
    ("mean", {"dims": [0]}, [(3, 4)], (4,)),
    ("mean", {"dims": [-1], "keepdim": True}, [(3, 4, 5)], (3, 4, 1)),
    # linear family
    ("linear", {"out": 10}, [(512,)], (10,)),
    ("linear", {"out": 3, "bias": False}, [(4, 7)], (4, 3)),
    ("linear", {"out": 6}, [(2, 3, 5)], (2, 3, 6)),
    ("flatten", {}, [(64, 7, 7)], (3136,)),
    ("flatten", {}, [(10,)], (10,)),
    ("flatten", {"start": 1}, [(4, 5, 6)], (4, 30)),
    ("flatten", {"start": 0, "end": 1}, [(4, 5, 6)], (20, 6)),
    ("flatten", {"start": -2, "end": -2}, [(4, 5, 6)], (4, 5, 6)),
    ("reshape", {"shape": [4, 25]}, [(100,)], (4, 25)),
    ("reshape", {"shape": [-1, 5]}, [(4, 5, 5)], (20, 5)),
    ("reshape", {"shape": [2, -1, 3]}, [(6, 7)], (2, 7, 3)),
    ("dropout", {}, [(3, 5, 5)], (3, 5, 5)),
    ("dropout", {"p": 0}, [(10,)], (10,)),
    ("identity", {}, [(3, 5, 5)], (3, 5, 5)),
    # multi-output ops: infer gives the input's shape (the outputs put back together)
    ("split", {"sizes": [2, 4]}, [(6, 5, 5)], (6, 5, 5)),
    ("chunk", {"chunks": 4, "dim": 1}, [(3, 6)], (3, 6)),
]


@pytest.mark.parametrize(("name", "attrs", "shapes", "expected"), SHAPES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(SHAPES)])
def test_shape_rule(name: str, attrs: dict[str, Any], shapes: Shapes, expected: tuple[int, ...]) -> None:
    assert infer(name, attrs, *shapes) == expected


# --------------------------------------------------------------------------------------
# Failing cases: (op, attrs, input shapes, error type, message regex)
# ShapeError from the shape rule, ValidationError from the attributes.
# --------------------------------------------------------------------------------------

ERRORS: list[tuple[str, dict[str, Any], Shapes, type[Exception], str]] = [
    ("softmax", {"dim": 3}, [(4, 6, 6)], ShapeError, r"softmax: dim 3 is out of range for the 3-d input 4x6x6"),
    ("softmax", {"dim": -2}, [(10,)], ShapeError, r"dim -2 is out of range for the 1-d input 10"),
    ("bn", {}, [(2, 3, 4, 5, 6)], ShapeError, r"bn expects a 1-d \(C\) or 2-d \(C, L\) or .* got 2x3x4x5x6"),
    ("layernorm", {"dims": 2}, [(10,)], ShapeError, r"layernorm: dims=2 exceeds the rank of the 1-d input 10"),
    ("groupnorm", {"groups": 3}, [(8, 5, 5)], ShapeError, r"groupnorm: groups=3 does not divide the 8 input channels"),
    ("groupnorm", {"groups": 1}, [()], ShapeError, r"groupnorm expects a \(C, \*\) per-sample input, got scalar"),
    ("instancenorm", {}, [(16,)], ShapeError, r"instancenorm expects a 2-d \(C, L\) .* got 16"),
    ("instancenorm", {}, [(16, 1, 1)], ShapeError, r"instancenorm needs more than 1 spatial element per channel, got 16x1x1"),
    ("maxpool", {"k": 3, "padding": 2}, [(3, 9, 9)], ShapeError, r"maxpool: padding 2x2 is more than half the kernel 3x3"),
    # torch checks the plain kernel for max pool too, not the dilated one
    ("maxpool", {"k": 3, "padding": 2, "dilation": 2}, [(3, 9)], ShapeError, r"padding 2 is more than half the kernel 3"),
    ("avgpool", {"k": [2, 4], "padding": [1, 3]}, [(3, 9, 9)], ShapeError, r"avgpool: padding 1x3 is more than half the kernel 2x4"),
    ("maxpool", {"k": 3}, [(3, 2, 2)], ShapeError, r"maxpool: kernel 3x3 \(dilation 1x1, padding 0x0\) is larger than the input 2x2"),
    ("avgpool", {"k": 3, "stride": 1}, [(3, 8, 2)], ShapeError, r"avgpool: kernel 3x3 .* larger than the input 8x2"),
    ("maxpool", {"k": 2, "dilation": 3}, [(3, 3)], ShapeError, r"kernel 2 \(dilation 3, padding 0\) is larger than the input 3"),
    ("maxpool", {"k": 2}, [(10,)], ShapeError, r"maxpool expects a 2-d \(C, L\) or 3-d \(C, H, W\) or 4-d \(C, D, H, W\) per-sample input, got 10"),
    ("maxpool", {"k": [2, 2, 2]}, [(3, 8, 8)], ShapeError, r"k has 3 entries but the input has 2 spatial dims"),
    ("avgpool", {"k": 2, "stride": [1]}, [(3, 8, 8)], ShapeError, r"stride has 1 entries but the input has 2 spatial dims"),
    ("adaptive_avgpool", {"size": [2, 2]}, [(3, 8)], ShapeError, r"size has 2 entries but the input has 1 spatial dims"),
    ("adaptive_maxpool", {}, [(512,)], ShapeError, r"adaptive_maxpool expects .* got 512"),
    ("upsample", {"scale": 2, "mode": "bilinear"}, [(3, 8)], ShapeError, r"upsample: mode bilinear needs 2 spatial dims, but the input 3x8 has 1"),
    ("upsample", {"scale": 2, "mode": "linear"}, [(3, 8, 8)], ShapeError, r"upsample: mode linear needs 1 spatial dim, but the input 3x8x8 has 2"),
    ("upsample", {"size": 4, "mode": "trilinear"}, [(3, 8, 8)], ShapeError, r"mode trilinear needs 3 spatial dims"),
    ("upsample", {"scale": 2, "mode": "bicubic"}, [(3, 2, 8, 8)], ShapeError, r"mode bicubic needs 2 spatial dims, but the input 3x2x8x8 has 3"),
    ("upsample", {"scale": 0.1}, [(3, 7, 7)], ShapeError, r"upsample: scale 0.1 turns the input 3x7x7 into an empty output 0x0"),
    ("upsample", {"scale": [2, 2]}, [(3, 7)], ShapeError, r"scale has 2 entries but the input has 1 spatial dims"),
    ("upsample", {"size": [2, 2, 2]}, [(3, 7, 7)], ShapeError, r"size has 3 entries but the input has 2 spatial dims"),
    ("upsample", {"scale": 2}, [(3,)], ShapeError, r"upsample expects .* got 3"),
    ("linear", {"out": 3}, [()], ShapeError, r"linear expects a \(\.\.\., F\) per-sample input, got scalar"),
    ("flatten", {"start": 3}, [(4, 5, 6)], ShapeError, r"flatten: start 3 is out of range for the 3-d input 4x5x6"),
    ("flatten", {"end": -4}, [(4, 5, 6)], ShapeError, r"flatten: end -4 is out of range for the 3-d input 4x5x6"),
    ("flatten", {"start": 2, "end": 1}, [(4, 5, 6)], ShapeError, r"flatten: start 2 comes after end 1 in the input 4x5x6"),
    ("reshape", {"shape": [-1, 7]}, [(4, 5)], ShapeError, r"reshape: the 20 elements of 4x5 do not divide into \[-1, 7\]"),
    ("reshape", {"shape": [4, 6]}, [(4, 5)], ShapeError, r"reshape: \[4, 6\] holds 24 elements but the input 4x5 has 20"),
    ("split", {"sizes": [2, 2]}, [(6, 5)], ShapeError, r"split: sizes \[2, 2\] add up to 4, but dim 0 of the input 6x5 is 6"),
    ("split", {"sizes": [1], "dim": 2}, [(6, 5)], ShapeError, r"split: dim 2 is out of range for the 2-d input 6x5"),
    ("chunk", {"chunks": 2, "dim": -3}, [(6, 5)], ShapeError, r"chunk: dim -3 is out of range for the 2-d input 6x5"),
    ("split", {"sizes": []}, [(4,)], ValidationError, r"at least 1 item"),
    ("chunk", {"chunks": 0}, [(4,)], ValidationError, r"greater than or equal to 1"),
    ("prelu", {"num_parameters": 3}, [(4, 7, 9)], ShapeError,
     r"prelu: num_parameters=3 is neither 1 nor the 4 channels of the input 4x7x9"),
    ("prelu", {"num_parameters": 3}, [()], ShapeError, r"prelu: num_parameters=3 is neither 1 nor a channel of the input scalar"),
    ("sub", {}, [(3, 5), (4, 5)], ShapeError, r"sub inputs cannot broadcast: input 0 is 3x5, input 1 is 4x5: dim 0 is 3 "
                                              r"against 4, and neither is 1"),
    ("upsample", {}, [(3, 4)], ShapeError, r"upsample needs one of scale, size, or a second input whose spatial size it takes"),
    ("upsample", {"scale": 2}, [(3, 4, 4), (3, 8, 8)], ShapeError,
     r"upsample: the second input gives the size, so scale cannot be given too"),
    ("upsample", {"size": 8}, [(3, 4, 4), (3, 8, 8)], ShapeError, r"so size cannot be given too"),
    ("upsample", {}, [(3, 4, 4), (3, 8)], ShapeError, r"upsample: input 1 3x8 has 1 spatial dims but input 0 3x4x4 has 2"),
    ("upsample", {"mode": "linear"}, [(3, 4, 4), (3, 8, 8)], ShapeError, r"upsample: mode linear needs 1 spatial dim"),
    ("pixel_shuffle", {"factor": 2}, [(6, 4, 4)], ShapeError,
     r"pixel_shuffle: the 6 input channels are not divisible by factor\*factor = 4"),
    ("pixel_shuffle", {"factor": 2}, [(8, 4)], ShapeError, r"pixel_shuffle expects a 3-d \(C, H, W\) per-sample input, got 8x4"),
    ("pad", {"padding": [1, 1, 1, 1, 1, 1]}, [(3, 5)], ShapeError,
     r"pad: padding has 3 \(before, after\) pairs but the input 3x5 has 2 per-sample dims \(the batch is never padded\)"),
    ("pad", {"padding": [1, 1], "mode": "reflect"}, [(3, 5, 5)], ShapeError,
     r"pad: mode reflect pads every spatial dim; the input 3x5x5 has 2, so padding needs 4 entries "
     r"\[left, right, top, bottom\], got 2"),
    ("pad", {"padding": [1, 1], "mode": "replicate"}, [(7,)], ShapeError,
     r"pad \(mode replicate\) expects a 2-d \(C, L\) or 3-d \(C, H, W\) or 4-d \(C, D, H, W\) per-sample input, got 7"),
    ("pad", {"padding": [5, 0], "mode": "reflect"}, [(3, 5)], ShapeError,
     r"pad: mode reflect can pad dim 1 of the input 3x5 by less than its size 5, got 5"),
    ("pad", {"padding": [0, 0, 0, 6], "mode": "circular"}, [(3, 5, 9)], ShapeError,
     r"pad: mode circular can pad dim 1 of the input 3x5x9 by at most its size 5, got 6"),
    ("crop", {}, [(3, 8, 8), (3, 9, 8)], ShapeError, r"crop: input 1 is 9x8 in space, larger than input 0 8x8; a crop only cuts"),
    ("crop", {}, [(3, 8, 8), (3, 8)], ShapeError, r"crop: input 1 3x8 has 1 spatial dims but input 0 3x8x8 has 2"),
    ("crop", {}, [(3,), (3,)], ShapeError, r"crop expects a 2-d \(C, L\) .* got 3"),
    ("permute", {"dims": [0, 1]}, [(3, 4, 5)], ShapeError,
     r"permute: dims \[0, 1\] has 2 entries but the input 3x4x5 has 3 per-sample dims"),
    ("permute", {"dims": [0, -1, 2]}, [(3, 4, 5)], ShapeError, r"permute: dims \[0, -1, 2\] name a dim twice in the 3-d input 3x4x5"),
    ("permute", {"dims": [0, 3, 1]}, [(3, 4, 5)], ShapeError, r"permute: dim 3 is out of range for the 3-d input 3x4x5"),
    ("mean", {"dims": [3]}, [(3, 4, 5)], ShapeError, r"mean: dim 3 is out of range for the 3-d input 3x4x5"),
    ("mean", {"dims": [1, -2]}, [(3, 4, 5)], ShapeError, r"mean: dims \[1, -2\] name a dim twice in the 3-d input 3x4x5"),
    # attribute validation (strict pydantic models)
    ("scale", {}, [(3,)], ValidationError, r"factor\n  Field required"),
    ("scale", {"factor": float("inf")}, [(3,)], ValidationError, r"factor\n  Input should be a finite number"),
    ("shift", {"offset": "1"}, [(3,)], ValidationError, r"offset\n  Input should be a valid number"),
    ("sub", {"alpha": 2}, [(3,), (3,)], ValidationError, r"alpha\n  Extra inputs are not permitted"),
    ("hardtanh", {"min": 1, "max": 1}, [(3,)], ValidationError, r"hardtanh: max \(1.0\) must be greater than min \(1.0\)"),
    ("hardtanh", {"min": "0"}, [(3,)], ValidationError, r"min\n  Input should be a valid number"),
    ("softplus", {"beta": 0}, [(3,)], ValidationError, r"beta\n  Input should be greater than 0"),
    ("prelu", {"num_parameters": 0}, [(3,)], ValidationError, r"num_parameters\n  Input should be greater than or equal to 1"),
    ("relu6", {"inplace": True}, [(3,)], ValidationError, r"inplace\n  Extra inputs are not permitted"),
    ("bn", {"affine": 1}, [(3,)], ValidationError, r"affine\n  Input should be a valid boolean"),
    ("relu", {"inplace": True}, [(3,)], ValidationError, r"inplace\n  Extra inputs are not permitted"),
    ("linear", {"out": 3.0}, [(3,)], ValidationError, r"out\n  Input should be a valid integer"),
    ("linear", {"out": "3"}, [(3,)], ValidationError, r"Input should be a valid integer"),
    ("linear", {}, [(3,)], ValidationError, r"out\n  Field required"),
    ("groupnorm", {}, [(4,)], ValidationError, r"groups\n  Field required"),
    ("gelu", {"approximate": "fast"}, [(3,)], ValidationError, r"Input should be 'none' or 'tanh'"),
    ("dropout", {"p": 1.5}, [(3,)], ValidationError, r"less than or equal to 1"),
    ("bn", {"eps": 0}, [(3,)], ValidationError, r"eps\n  Input should be greater than 0"),
    ("maxpool", {"k": 0}, [(3, 4)], ValidationError, r"greater than or equal to 1"),
    ("avgpool", {"k": 2, "dilation": 2}, [(3, 4)], ValidationError, r"dilation\n  Extra inputs are not permitted"),
    ("maxpool", {"k": 2, "count_include_pad": False}, [(3, 4)], ValidationError, r"Extra inputs are not permitted"),
    ("upsample", {"scale": 2, "size": 8}, [(3, 4)], ValidationError, r"upsample takes one of scale or size, not both"),
    ("pixel_shuffle", {"factor": 0}, [(4, 2, 2)], ValidationError, r"factor\n  Input should be greater than or equal to 1"),
    ("pixel_shuffle", {}, [(4, 2, 2)], ValidationError, r"factor\n  Field required"),
    ("pad", {"padding": [1]}, [(3, 4)], ValidationError, r"padding\n  List should have at least 2 items"),
    ("pad", {"padding": [1, 1, 1]}, [(3, 4)], ValidationError,
     r"pad: padding \[1, 1, 1\] has an odd number of entries; it lists \(before, after\) pairs"),
    ("pad", {"padding": [-1, 1]}, [(3, 4)], ValidationError, r"padding.0\n  Input should be greater than or equal to 0"),
    ("pad", {"padding": [1, 1], "mode": "reflect", "value": 1}, [(3, 4)], ValidationError,
     r"pad: value is the fill of mode constant; mode reflect fills from the input"),
    ("pad", {"padding": [1, 1], "mode": "zeros"}, [(3, 4)], ValidationError, r"Input should be 'constant', 'reflect'"),
    ("permute", {"dims": [0, 1, 1]}, [(3, 4, 5)], ValidationError, r"permute: dims \[0, 1, 1\] names a dim twice"),
    ("permute", {}, [(3, 4, 5)], ValidationError, r"dims\n  Field required"),
    ("mean", {"dims": []}, [(3, 4, 5)], ValidationError, r"dims\n  List should have at least 1 item"),
    ("mean", {"dims": [1, 1]}, [(3, 4, 5)], ValidationError, r"mean: dims \[1, 1\] names a dim twice"),
    ("mean", {"dims": [1], "keepdim": 1}, [(3, 4, 5)], ValidationError, r"keepdim\n  Input should be a valid boolean"),
    ("crop", {"size": 3}, [(3, 4), (3, 2)], ValidationError, r"size\n  Extra inputs are not permitted"),
    ("upsample", {"scale": 0}, [(3, 4)], ValidationError, r"greater than 0"),
    ("upsample", {"scale": 2, "align_corners": True}, [(3, 4)], ValidationError,
     r"align_corners can only be set with the interpolating modes"),
    ("upsample", {"scale": 2, "mode": "area"}, [(3, 4)], ValidationError, r"Input should be 'nearest', 'linear'"),
    ("reshape", {"shape": [-1, -1]}, [(4,)], ValidationError, r"reshape: at most one entry may be -1"),
    ("reshape", {"shape": [0, 4]}, [(4,)], ValidationError, r"every entry must be >= 1, or -1"),
    ("reshape", {"shape": []}, [(4,)], ValidationError, r"at least 1 item"),
    ("softmax", {"dim": True}, [(4,)], ValidationError, r"Input should be a valid integer"),
]


@pytest.mark.parametrize(("name", "attrs", "shapes", "exc", "match"), ERRORS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(ERRORS)])
def test_errors(name: str, attrs: dict[str, Any], shapes: Shapes, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        infer(name, attrs, *shapes)


def test_shape_errors_say_expected_and_got() -> None:
    with pytest.raises(ShapeError) as ei:
        infer("groupnorm", {"groups": 3}, (8, 5, 5))
    assert ei.value.expected == "channels divisible by 3"
    assert ei.value.got == "8x5x5"
    with pytest.raises(ShapeError) as ei:
        infer("maxpool", {"k": 3, "padding": 2}, (3, 9, 9))
    assert (ei.value.expected, ei.value.got) == ("padding <= 1x1", "2x2")


# Where our rule refuses a pool / upsample, torch refuses too (the rule is not stricter).
TORCH_REFUSES = [
    ("maxpool", {"k": 3, "padding": 2}, (3, 9, 9)),
    ("maxpool", {"k": 3, "padding": 2, "dilation": 2}, (3, 9)),
    ("maxpool", {"k": 3, "padding": 2, "dilation": 2}, (3, 9, 9)),
    ("maxpool", {"k": 3, "padding": 2, "dilation": 2}, (3, 9, 9, 9)),
    ("avgpool", {"k": [2, 4], "padding": [1, 3]}, (3, 9, 9)),
    ("avgpool", {"k": 2, "padding": 2}, (3, 9)),
    ("maxpool", {"k": 3}, (3, 2, 2)),
    ("maxpool", {"k": 3}, (3, 2)),
    ("avgpool", {"k": 3, "stride": 1}, (3, 8, 2)),
    ("maxpool", {"k": 2, "dilation": 3}, (3, 3)),
    ("upsample", {"scale": 2, "mode": "bilinear"}, (3, 8)),
    ("upsample", {"scale": 2, "mode": "linear"}, (3, 8, 8)),
    ("upsample", {"scale": 2, "mode": "bicubic"}, (3, 2, 8, 8)),
    ("upsample", {"scale": 0.1}, (3, 7, 7)),
    ("split", {"sizes": [2, 2]}, (6, 5)),
    ("pixel_shuffle", {"factor": 2}, (6, 4, 4)),
    ("pad", {"padding": [5, 0], "mode": "reflect"}, (3, 5)),
    ("pad", {"padding": [0, 6], "mode": "circular"}, (3, 5)),
    ("pad", {"padding": [1, 1], "mode": "reflect"}, (3, 5, 5, 5)),
]


@pytest.mark.parametrize(("name", "attrs", "shape"), TORCH_REFUSES)
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_torch_refuses_what_we_refuse(name: str, attrs: dict[str, Any], shape: tuple[int, ...], device: str) -> None:
    op, a = op_attrs(name, attrs)
    with pytest.raises(ShapeError):
        op.infer(a, [shape])
    fn, args, kwargs = op.call(a, [shape], [torch.randn(2, *shape, device=device)])
    with pytest.raises((RuntimeError, NotImplementedError, ValueError)):
        fn(*args, **kwargs)


# --------------------------------------------------------------------------------------
# Every registered op against torch: shape (real and meta), params, MACs.
# --------------------------------------------------------------------------------------

TORCH_CASES: dict[str, list[tuple[dict[str, Any], Shapes]]] = {
    "conv": [
        ({"out": 8, "k": 3}, [(3, 9, 9)]),
        ({"out": 8, "k": 3, "stride": 2}, [(3, 9, 8)]),
        ({"out": 6, "k": [3, 1], "padding": [0, 1], "bias": False}, [(4, 7, 7)]),
        ({"out": 6, "k": 5, "groups": 2, "dilation": 2}, [(4, 17)]),
        ({"out": 4, "k": 3, "padding": "same", "padding_mode": "reflect"}, [(2, 5, 6, 7)]),
        ({"out": 4, "k": 2, "padding": "valid"}, [(2, 5, 6, 7)]),
    ],
    "conv_transpose": [
        ({"out": 8, "k": 2, "stride": 2}, [(4, 5, 5)]),
        ({"out": 6, "k": 3, "stride": 2, "padding": 1, "output_padding": 1}, [(4, 7)]),
        ({"out": 6, "k": 3, "groups": 2, "dilation": 2, "bias": False}, [(4, 3, 4, 5)]),
    ],
    "add": [({}, [(3, 5, 5), (3, 5, 5)]), ({}, [(7,), (7,), (7,)]), ({}, [(1, 5, 5), (3, 1, 5), (3, 5, 1)])],
    "mul": [({}, [(3, 5), (3, 5)]), ({}, [(3, 5, 5), (3, 1, 1)]), ({}, [(1, 5, 5), (3, 5, 5)])],
    "sub": [({}, [(3, 5, 5), (3, 5, 5)]), ({}, [(7,), (7,)]), ({}, [(3, 5, 5), (3, 1, 5)])],
    "scale": [({"factor": 0.2}, [(3, 5, 5)]), ({"factor": -3}, [(7,)])],
    "shift": [({"offset": 0.5}, [(3, 5, 5)]), ({"offset": -2}, [(4, 7)])],
    "lerp": [({}, [(3, 5, 5)] * 3), ({}, [(3, 5, 5), (3, 5, 5), (1, 5, 5)])],
    "concat": [({}, [(3, 5, 5), (4, 5, 5)]), ({"dim": -1}, [(3, 5), (3, 2), (3, 1)])],
    "zero_pad": [({"out": 8, "stride": 2}, [(4, 7, 7)]), ({"out": 4}, [(4, 9)])],
    "relu": [({}, [(3, 5, 5)])],
    "leaky_relu": [({"slope": 0.2}, [(3, 5)])],
    "gelu": [({}, [(7,)]), ({"approximate": "tanh"}, [(3, 4, 5)])],
    "silu": [({}, [(3, 5, 5)])],
    "sigmoid": [({}, [(3, 5)])],
    "tanh": [({}, [(3, 2, 2, 2)])],
    "hardswish": [({}, [(3, 5, 5)])],
    "relu6": [({}, [(3, 5, 5)]), ({}, [(7,)])],
    "hardsigmoid": [({}, [(3, 5, 5)])],
    "hardtanh": [({}, [(3, 5)]), ({"min": 0, "max": 6}, [(2, 3, 4, 5)])],
    "softplus": [({}, [(3, 5, 5)]), ({"beta": 2, "threshold": 5}, [(6,)])],
    "mish": [({}, [(3, 5, 5)])],
    "prelu": [({}, [(3, 5, 5)]), ({"num_parameters": 3, "init": 0.1}, [(3, 5, 5)]), ({"num_parameters": 6}, [(6,)]),
              ({"num_parameters": 4}, [(4, 3, 2, 2)])],
    "elu": [({"alpha": 0.5}, [(6,)])],
    "softmax": [({}, [(10,)]), ({"dim": 1}, [(3, 4, 5)]), ({"dim": -1}, [(3, 4, 5)])],
    "bn": [
        ({}, [(8,)]),
        ({}, [(8, 5)]),
        ({"affine": False}, [(8, 5, 5)]),
        ({"track_running_stats": False, "momentum": None}, [(4, 3, 3, 3)]),
    ],
    "layernorm": [
        ({}, [(10,)]),
        ({"dims": 2}, [(3, 4, 5)]),
        ({"bias": False}, [(3, 4)]),
        ({"elementwise_affine": False}, [(3, 4)]),
    ],
    "groupnorm": [({"groups": 4}, [(8, 5, 5)]), ({"groups": 2, "affine": False}, [(6, 7)]), ({"groups": 3}, [(6,)])],
    "instancenorm": [({}, [(4, 5)]), ({"affine": True}, [(4, 3, 3)]), ({"track_running_stats": True}, [(4, 2, 2, 2)])],
    "maxpool": [
        ({"k": 2}, [(3, 7, 7)]),
        ({"k": 3, "stride": 2, "padding": 1}, [(3, 9)]),
        ({"k": 2, "padding": 1, "ceil_mode": True}, [(3, 5, 6, 7)]),
        ({"k": 3, "stride": 1, "dilation": 2, "padding": 1}, [(3, 9, 8)]),
    ],
    "avgpool": [
        ({"k": 2}, [(3, 7, 7)]),
        ({"k": 3, "stride": 2, "padding": 1, "count_include_pad": False}, [(3, 9)]),
        ({"k": [1, 2, 3], "padding": [0, 1, 1], "ceil_mode": True}, [(3, 5, 6, 7)]),
    ],
    "adaptive_avgpool": [({}, [(8, 7, 7)]), ({"size": 3}, [(8, 10)]), ({"size": [2, 3, 4]}, [(2, 5, 5, 5)])],
    "adaptive_maxpool": [({}, [(8, 7, 7)]), ({"size": 3}, [(8, 10)]), ({"size": [6, 5]}, [(2, 3, 4)])],
    "upsample": [
        ({"scale": 2}, [(3, 5, 5)]),
        ({"scale": 1.5, "mode": "bilinear"}, [(3, 7, 7)]),
        ({"scale": [1.5, 2, 0.5], "mode": "trilinear", "align_corners": False}, [(3, 4, 5, 6)]),
        ({"size": 9, "mode": "linear", "align_corners": True}, [(3, 4)]),
        ({"size": [5, 9], "mode": "bicubic"}, [(3, 7, 7)]),
        ({"scale": 0.3}, [(3, 7)]),
        ({}, [(3, 5, 5), (1, 10, 11)]),
        ({"mode": "bilinear", "align_corners": True}, [(3, 7, 7), (2, 3, 4)]),
    ],
    "pixel_shuffle": [({"factor": 2}, [(12, 5, 5)]), ({"factor": 3}, [(9, 2, 4)])],
    "pad": [
        ({"padding": [1, 2]}, [(3, 5)]),
        ({"padding": [1, 2, 0, 1], "value": 0.5}, [(3, 4, 5)]),
        ({"padding": [0, 0, 0, 0, 1, 2]}, [(3, 4, 5)]),
        ({"padding": [2, 1, 1, 2], "mode": "reflect"}, [(3, 4, 5)]),
        ({"padding": [1, 0, 0, 2, 3, 1], "mode": "replicate"}, [(2, 3, 4, 5)]),
        ({"padding": [3, 3], "mode": "circular"}, [(2, 3)]),
    ],
    "crop": [({}, [(3, 20, 20), (5, 16, 16)]), ({}, [(3, 9), (1, 4)]), ({}, [(2, 5, 6, 7), (1, 3, 6, 2)])],
    "permute": [({"dims": [0, 2, 1]}, [(3, 4, 5)]), ({"dims": [1, 2, 0]}, [(3, 4, 5)]), ({"dims": [3, 0, 2, 1]}, [(2, 3, 4, 5)])],
    "mean": [({"dims": [1, 2]}, [(3, 4, 5)]), ({"dims": [0, -1], "keepdim": True}, [(3, 4, 5)]), ({"dims": [0]}, [(7,)])],
    "linear": [({"out": 10}, [(32,)]), ({"out": 3, "bias": False}, [(4, 7)]), ({"out": 6}, [(2, 3, 5)])],
    "flatten": [({}, [(4, 3, 3)]), ({"start": 1}, [(4, 3, 3)]), ({"start": -3, "end": -2}, [(4, 3, 3)])],
    "reshape": [({"shape": [2, -1]}, [(4, 3, 3)]), ({"shape": [36]}, [(4, 3, 3)])],
    "dropout": [({}, [(3, 5, 5)]), ({"p": 0.1}, [(10,)])],
    "identity": [({}, [(3, 5, 5)])],
    "split": [({"sizes": [2, 4]}, [(6, 5, 5)]), ({"sizes": [1, 1, 3], "dim": -1}, [(2, 5)])],
    "chunk": [({"chunks": 3}, [(6, 5, 5)]), ({"chunks": 3, "dim": 1}, [(2, 5)]), ({"chunks": 4}, [(6,)])],
}


def test_every_registered_op_has_torch_cases() -> None:
    missing = sorted(set(REGISTRY.names()) - set(TORCH_CASES))
    assert not missing, f"ops without torch cases in TORCH_CASES: {missing}"
    assert all(TORCH_CASES[n] for n in REGISTRY.names())


def build(op: Any, a: Any, shapes: Shapes, device: str) -> torch.nn.Module:
    """The torch side of one op: its module, or an fx graph of its emitted call."""
    with torch.device(device):
        if not op.stateless:
            return op.module(a, shapes)
        graph = torch.fx.Graph()
        placeholders = [graph.placeholder(f"x{i}") for i in range(len(shapes))]
        graph.output(op.emit(graph, a, shapes, placeholders))
        return torch.fx.GraphModule(torch.nn.Module(), graph)


TORCH_PARAMS = [(n, attrs, shapes) for n, cases in TORCH_CASES.items() for attrs, shapes in cases]


@pytest.mark.parametrize(("name", "attrs", "shapes"), TORCH_PARAMS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_PARAMS)])
def test_op_matches_torch(name: str, attrs: dict[str, Any], shapes: Shapes) -> None:
    op, a = op_attrs(name, attrs)
    lo, hi = op.arity
    assert lo <= len(shapes) and (hi is None or len(shapes) <= hi)
    out = op.infer(a, shapes)

    outs = op.outputs(a, shapes)
    if outs is not None:  # a multi-output op: its own shape is its input's, torch gives a tuple
        assert out == shapes[0]
    for device in ("cpu", "meta"):
        m = build(op, a, shapes, device)
        assert m.training
        y = m(*[torch.randn(2, *s, device=device) for s in shapes])
        if outs is not None:
            got = [tuple(t.shape) for t in y]
            assert got == [(2, *s) for s in outs], f"{device}: torch gives {got}, the rule {outs}"
            assert all(t.device.type == device for t in y)
            continue
        assert tuple(y.shape) == (2, *out), f"{device}: torch gives {tuple(y.shape)}, rule gives {(2, *out)}"
        assert y.device.type == device

    m = build(op, a, shapes, "cpu")
    assert op.params(a, shapes) == sum(p.numel() for p in m.parameters())
    if op.stateless:
        assert not list(m.parameters())

    m.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        m(*[torch.randn(1, *s) for s in shapes])
    assert op.macs(a, shapes, out) == fc.get_total_flops() // 2


@pytest.mark.parametrize(("name", "attrs", "shapes"), TORCH_PARAMS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_PARAMS)])
def test_op_is_found_and_read_back_from_torch(name: str, attrs: dict[str, Any], shapes: Shapes) -> None:
    """The reverse mapping: the torch class or function an op builds leads back to the op,
    and the attributes it reads from it build the same module or call again."""
    op, a = op_attrs(name, attrs)
    if not op.stateless:
        m = op.module(a, shapes)
        assert REGISTRY.for_torch(type(m)) is op
        back = op.Attrs.model_validate(op.read(m, shapes))
        assert repr(op.module(back, shapes)) == repr(m)
    elif op.passthrough:  # emits no node: nothing to read
        assert op.emit(None, a, shapes, ["x"]) == "x" and op.read(None, shapes) == {}
    else:
        args = [f"x{i}" for i in range(len(shapes))]
        fn, fargs, kwargs = op.call(a, shapes, args)
        assert REGISTRY.for_torch(fn) is op
        back = op.Attrs.model_validate(op.read(fn, shapes, fargs, kwargs))
        assert op.call(back, shapes, args) == (fn, fargs, kwargs)


def test_stateless_ops_emit_no_inplace_and_right_values() -> None:
    x = torch.randn(2, 3, 4, 5)

    def run(name: str, attrs: dict[str, Any], *xs: torch.Tensor) -> torch.Tensor:
        op, a = op_attrs(name, attrs)
        m = build(op, a, [tuple(t.shape[1:]) for t in xs], "cpu")
        return m(*xs)

    for name in ("relu", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "hardswish", "elu", "softmax",
                 "relu6", "hardsigmoid", "hardtanh", "softplus", "mish"):
        before = x.clone()
        run(name, {}, x)
        assert torch.equal(x, before), f"{name} changed its input"
    F = torch.nn.functional
    y = 4 * x  # reaches past 6 and below -3, where the clamping activations bend
    assert torch.equal(run("relu6", {}, y), torch.nn.ReLU6()(y))
    assert torch.equal(run("hardsigmoid", {}, y), torch.nn.Hardsigmoid()(y))
    assert torch.equal(run("hardtanh", {}, y), torch.nn.Hardtanh()(y))
    assert torch.equal(run("hardtanh", {"min": -2, "max": 3.5}, y), torch.nn.Hardtanh(-2, 3.5)(y))
    assert torch.equal(run("softplus", {}, y), torch.nn.Softplus()(y))
    assert torch.equal(run("softplus", {"beta": 2, "threshold": 3}, y), torch.nn.Softplus(beta=2, threshold=3)(y))
    assert torch.equal(run("mish", {}, y), torch.nn.Mish()(y))
    assert not torch.equal(run("softplus", {"beta": 2, "threshold": 3}, y), F.softplus(y))
    z = torch.randn(2, 3, 4, 5)
    assert torch.equal(run("sub", {}, x, z), x - z) and torch.equal(run("sub", {}, z, x), z - x)
    assert torch.equal(run("scale", {"factor": 0.3}, x), x * 0.3)
    assert torch.equal(run("shift", {"offset": -1.5}, x), x + -1.5)
    torch.testing.assert_close(run("softmax", {}, x), torch.softmax(x, dim=1))
    torch.testing.assert_close(run("softmax", {"dim": -2}, x), torch.softmax(x, dim=-2))
    torch.testing.assert_close(run("leaky_relu", {"slope": 0.3}, x), torch.nn.functional.leaky_relu(x, 0.3))
    torch.testing.assert_close(run("gelu", {"approximate": "tanh"}, x), torch.nn.functional.gelu(x, approximate="tanh"))
    torch.testing.assert_close(run("flatten", {"start": 1}, x), x.flatten(2))
    torch.testing.assert_close(run("reshape", {"shape": [-1, 4]}, x), x.reshape(2, 15, 4))
    torch.testing.assert_close(run("adaptive_avgpool", {}, x), x.mean(dim=(2, 3), keepdim=True))
    assert run("identity", {}, x) is x


@pytest.mark.parametrize("num_parameters", [1, 3])
def test_prelu_is_nn_prelu(num_parameters: int) -> None:
    """Same state_dict as ``nn.PReLU`` (key ``weight``), loads strictly, same output."""
    op, a = op_attrs("prelu", {"num_parameters": num_parameters, "init": 0.1})
    m = op.module(a, [(3, 4, 4)])
    ref = torch.nn.PReLU(num_parameters, init=0.1)
    assert list(m.state_dict()) == ["weight"] and m.weight.shape == (num_parameters,)
    ref.weight.data.uniform_(-1, 1)
    m.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(m(x), ref(x))


def test_layout_and_resample_ops_equal_the_hand_written_torch() -> None:
    F = torch.nn.functional
    x = torch.randn(2, 8, 10, 12)

    def run(name: str, attrs: dict[str, Any], *xs: torch.Tensor) -> torch.Tensor:
        op, a = op_attrs(name, attrs)
        return build(op, a, [tuple(t.shape[1:]) for t in xs], "cpu")(*xs)

    assert torch.equal(run("pad", {"padding": [1, 2, 3, 0], "mode": "reflect"}, x), F.pad(x, (1, 2, 3, 0), mode="reflect"))
    assert torch.equal(run("pad", {"padding": [1, 2], "mode": "replicate"}, x[:, :, 0]),
                       F.pad(x[:, :, 0], (1, 2), mode="replicate"))
    assert torch.equal(run("pad", {"padding": [0, 0, 1, 1, 2, 0], "value": -2.5}, x),
                       F.pad(x, (0, 0, 1, 1, 2, 0), value=-2.5))
    assert torch.equal(run("pad", {"padding": [1, 1, 1, 1], "mode": "circular"}, x), F.pad(x, (1, 1, 1, 1), mode="circular"))
    like = torch.randn(2, 1, 5, 9)
    assert torch.equal(run("crop", {}, x, like), x[:, :, 2:7, 1:10])  # offsets (10-5)//2, (12-9)//2
    assert torch.equal(run("upsample", {"mode": "bilinear"}, x, like), F.interpolate(x, size=(5, 9), mode="bilinear"))
    assert torch.equal(run("upsample", {}, like, x), F.interpolate(like, size=like.new_empty(10, 12).shape))
    assert torch.equal(run("pixel_shuffle", {"factor": 2}, x), torch.nn.PixelShuffle(2)(x))
    assert torch.equal(run("permute", {"dims": [1, 2, 0]}, x), x.permute(0, 2, 3, 1))
    assert torch.equal(run("mean", {"dims": [1, 2], "keepdim": True}, x), x.mean(dim=(2, 3), keepdim=True))
    assert torch.equal(run("mean", {"dims": [0]}, x), x.mean(dim=1))


def test_size_inputs_pass_no_data() -> None:
    """crop and upsample read only the size of input 1: its values never reach the output."""
    x, like = torch.randn(1, 2, 8, 8), torch.randn(1, 3, 4, 4, requires_grad=True)
    for name in ("crop", "upsample"):
        op, a = op_attrs(name, {})
        assert op.size_inputs == (1,)
        y = build(op, a, [(2, 8, 8), (3, 4, 4)], "cpu")(x, like)
        assert y.shape == (1, 2, 4, 4) and not y.requires_grad


def test_fixes_say_what_to_change() -> None:
    with pytest.raises(ShapeError) as ei:
        infer("pixel_shuffle", {"factor": 2}, (6, 4, 4))
    assert ei.value.fix == "give the op before it 4 or 8 output channels (a multiple of 4), or change factor"
    with pytest.raises(ShapeError) as ei:
        infer("prelu", {"num_parameters": 3}, (4, 7, 9))
    assert ei.value.fix == "use num_parameters: 1 for one shared slope, or 4 for one per channel"
    with pytest.raises(ShapeError) as ei:
        infer("crop", {}, (3, 8, 8), (3, 9, 8))
    assert ei.value.fix is not None and "input 0 is cut, input 1 gives the size" in ei.value.fix
    with pytest.raises(ShapeError) as ei:
        infer("upsample", {}, (3, 8, 8))
    assert ei.value.fix == "add scale: 2, size: [H, W], or in: [x, like] to take like's size"


def test_identity_emits_no_node() -> None:
    op, a = op_attrs("identity", {})
    graph = torch.fx.Graph()
    p = graph.placeholder("x")
    assert op.emit(graph, a, [(3,)], [p]) is p
    assert len(graph.nodes) == 1


def test_dropout_is_off_in_eval() -> None:
    op, a = op_attrs("dropout", {"p": 0.9})
    m = op.module(a, [(100,)])
    x = torch.randn(4, 100)
    assert not torch.equal(m(x), x)
    assert torch.equal(m.eval()(x), x)


# --------------------------------------------------------------------------------------
# Receptive-field windows
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "attrs", "shape", "window"), [
    ("maxpool", {"k": 3, "stride": 2, "padding": 1}, (3, 9, 9), Window((3, 3), (2.0, 2.0), (1, 1), start=(-1.0, -1.0))),
    ("maxpool", {"k": [2, 3], "dilation": [1, 2]}, (3, 9, 9), Window((2, 3), (2.0, 3.0), (1, 2), start=(0.0, 0.0))),
    ("avgpool", {"k": 2}, (3, 8), Window((2,), (2.0,), (1,), start=(0.0,))),
    ("adaptive_avgpool", {}, (3, 7, 7), Window(glob=True)),
    ("adaptive_maxpool", {"size": [1, 1, 1]}, (3, 2, 7, 7), Window(glob=True)),
    ("adaptive_avgpool", {"size": 2}, (3, 8, 8), Window((4, 4), (4.0, 4.0), (1, 1), start=(0.0, 0.0), end=(3.5, 3.5))),
    ("adaptive_avgpool", {"size": 3}, (3, 10), Window((4,), (10 / 3,), (1,), start=(0.0,), end=(3.0,))),
    ("adaptive_maxpool", {"size": 4}, (3, 2), Window((1,), (0.5,), (1,), start=(0.0,), end=(0.25,))),
    ("upsample", {"scale": 2}, (3, 8, 8), Window((1, 1), (0.5, 0.5), (1, 1))),
    ("upsample", {"scale": [2, 4], "mode": "bilinear"}, (3, 8, 8), Window((2, 2), (0.5, 0.25), (1, 1), start=(-0.25, -0.375),
                                                                                        end=(0.75, 0.625))),
    ("upsample", {"size": 16, "mode": "linear"}, (3, 4), Window((2,), (0.25,), (1,), start=(-0.375,), end=(0.625,))),
    ("upsample", {"size": [4, 4], "mode": "bicubic"}, (3, 8, 8), Window((4, 4), (2.0, 2.0), (1, 1), start=(-0.5, -0.5),
                                                                                     end=(2.5, 2.5))),
    ("linear", {"out": 3}, (10,), Window(glob=True)),
    ("pixel_shuffle", {"factor": 2}, (12, 8, 8), Window((1, 1), (0.5, 0.5), (1, 1))),
    ("permute", {"dims": [0, 2, 1]}, (3, 4, 5), Window((1, 1), (1.0, 1.0), (1, 1), perm=(1, 0))),
    ("permute", {"dims": [1, 2, 0]}, (3, 4, 5), Window((1, 1), (1.0, 1.0), (1, 1), perm=(1, -1))),
    ("mean", {"dims": [1, 2]}, (3, 4, 5), Window(glob=True)),
    ("mean", {"dims": [-1], "keepdim": True}, (3, 4, 5), Window((1, 5), (1.0, 1.0), (1, 1))),
])
def test_window(name: str, attrs: dict[str, Any], shape: tuple[int, ...], window: Window) -> None:
    op, a = op_attrs(name, attrs)
    assert op.window(a, [shape]) == window


@pytest.mark.parametrize("name", ["relu", "relu6", "prelu", "hardsigmoid", "hardswish", "hardtanh", "softplus",
                                  "mish", "scale", "shift", "pad", "softmax", "bn", "layernorm", "groupnorm", "instancenorm",
                                  "dropout", "identity", "flatten"])
def test_pointwise_ops_have_no_window(name: str) -> None:
    attrs = {"groups": 1} if name == "groupnorm" else {"factor": 2} if name == "scale" else \
        {"offset": 1} if name == "shift" else {"padding": [1, 1, 1, 1], "mode": "reflect"} if name == "pad" else {}
    op, a = op_attrs(name, attrs)
    assert op.window(a, [(4, 5, 5)]) is None


def test_windows_of_ops_that_keep_the_field() -> None:
    assert op_attrs("crop", {})[0].window(OpAttrs(), [(3, 8, 8), (3, 4, 4)]) is None
    op, a = op_attrs("permute", {"dims": [0, 1, 2]})
    assert op.window(a, [(3, 4, 5)]) is None
    op, a = op_attrs("mean", {"dims": [0]})
    assert op.window(a, [(3, 4, 5)]) is None
    op, a = op_attrs("upsample", {"mode": "bilinear"})
    assert op.window(a, [(3, 4, 6), (1, 8, 24)]) == Window((2, 2), (0.5, 0.25), (1, 1), start=(-0.25, -0.375),
                                                           end=(0.75, 0.625))


def test_adaptive_window_is_the_longest_bin() -> None:
    """Brute force: the adaptive kernel is the longest bin torch uses."""
    from archspec.ops.pool import adaptive_window_len

    for n in range(1, 20):
        for out in range(1, 25):
            bins = [-(-((i + 1) * n) // out) - (i * n) // out for i in range(out)]
            assert adaptive_window_len(n, out) == max(bins)
            # torch agrees: each output of an adaptive max pool over arange sees its bin
            x = torch.arange(n, dtype=torch.float32).view(1, 1, n)
            y = torch.nn.functional.adaptive_max_pool1d(x, out).flatten().tolist()
            assert y == [float(-(-((i + 1) * n) // out) - 1) for i in range(out)]


# --------------------------------------------------------------------------------------
# The size rules against torch, on meta tensors
# --------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 5), d=st.integers(1, 3),
       p=st.integers(0, 3), ceil_mode=st.booleans(), avg=st.booleans())
def test_pool_size_rule_matches_torch(n: int, k: int, s: int, d: int, p: int, ceil_mode: bool, avg: bool) -> None:
    name = "avgpool" if avg else "maxpool"
    attrs: dict[str, Any] = {"k": k, "stride": s, "padding": p, "ceil_mode": ceil_mode}
    if not avg:
        attrs["dilation"] = d
    op, a = op_attrs(name, attrs)
    fn, args, kwargs = op.call(a, [(1, n)], [torch.empty(1, 1, n, device="meta")])
    got, want = inferred_and_real_length(op, a, n, fn, args, kwargs)
    assert got == want
    if got is not None:
        assert got == pool_out(n, k, s, p, 1 if avg else d, ceil_mode)



def inferred_and_real_length(op: Any, a: Any, n: int, fn: Any, args: Any, kwargs: Any) -> tuple[int | None, int | None]:
    """The output length of a 1-d op by its shape rule and by torch; None where either refuses."""
    try:
        want: int | None = fn(*args, **kwargs).shape[-1]
    except RuntimeError:
        want = None
    try:
        got: int | None = op.infer(a, [(1, n)])[-1]
    except ShapeError:
        got = None
    return got, want

@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 50), scale=st.one_of(st.integers(1, 5), st.floats(0.05, 4.0)),
       mode=st.sampled_from(["nearest", "linear"]))
def test_upsample_size_rule_matches_torch(n: int, scale: float, mode: str) -> None:
    # On cpu: the meta kernel of upsample_linear1d accepts an empty output that cpu refuses.
    op, a = op_attrs("upsample", {"scale": scale, "mode": mode})
    fn, args, kwargs = op.call(a, [(1, n)], [torch.zeros(1, 1, n)])
    got, want = inferred_and_real_length(op, a, n, fn, args, kwargs)
    assert got == want


# --------------------------------------------------------------------------------------
# Housekeeping
# --------------------------------------------------------------------------------------

def test_importing_ops_does_not_import_torch() -> None:
    code = "import archspec.ops, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_op_has_a_docstring_and_strict_attrs() -> None:
    for name in REGISTRY.names():
        op = REGISTRY.get(name)
        assert (type(op).__doc__ or "").strip(), f"{name} has no docstring"
        assert op.Attrs.model_config.get("strict") and op.Attrs.model_config.get("extra") == "forbid"


def test_attrs_are_frozen() -> None:
    _, a = op_attrs("maxpool", {"k": 2})
    with pytest.raises(ValidationError, match="frozen"):
        a.k = 3  # type: ignore[misc]


def test_calls_are_read_back_from_their_arguments_by_name() -> None:
    """An importer normalises a call to keyword arguments (torch's parameter names)."""
    def read(name: str, fn: Any, shapes: Shapes, **kwargs: Any) -> Any:
        op = REGISTRY.for_torch(fn)
        assert op is REGISTRY.get(name)
        return op.Attrs.model_validate(op.read(fn, shapes, ("x",), kwargs))

    F = torch.nn.functional
    assert read("pad", F.pad, [(3, 4, 4)], pad=(1, 1, 0, 2), mode="reflect", value=None) == \
        {"padding": [1, 1, 0, 2], "mode": "reflect", "value": None}
    assert read("permute", torch.permute, [(3, 4, 5)], dims=(0, 3, 1, 2)) == {"dims": [2, 0, 1]}
    with pytest.raises(ValueError, match=r"permute \[1, 0, 2\] moves the batch dim; archspec's permute keeps it first"):
        read("permute", torch.permute, [(3, 4)], dims=(1, 0, 2))
    assert read("mean", torch.mean, [(3, 4, 5)], dim=-1, keepdim=True) == {"dims": [-1], "keepdim": True}
    assert read("mean", torch.mean, [(3, 4, 5)], dim=[2, 3]) == {"dims": [1, 2], "keepdim": False}
    assert read("scale", torch.mul, [(3,)], other=0.25) == {"factor": 0.25}
    assert read("shift", torch.add, [(3,)], other=2, alpha=-1) == {"offset": -2.0}
    assert read("pixel_shuffle", torch.pixel_shuffle, [(8, 2, 2)], upscale_factor=2) == {"factor": 2}
    assert read("hardtanh", F.hardtanh, [(3,)], min_val=0.0, max_val=6.0) == {"min": 0.0, "max": 6.0}


def test_original_unet_step_with_cropped_skip_equals_hand_written_torch() -> None:
    """Valid convs shrink the encoder map; the decoder crops it (centred) before the concat,
    as the original U-Net does. Same state_dict, strict load, equal outputs."""
    from torch import nn

    import archspec

    spec = """archspec: 1
name: unet_step
inputs: {x: [1, 44, 44]}
nodes:
  enc:  {op: conv, in: x, out: 4, k: 3, padding: 0}
  act:  {op: relu6}
  down: {op: maxpool, k: 2}
  mid:  {op: conv, out: 8, k: 3, padding: 0}
  up:   {op: conv_transpose, out: 4, k: 2, stride: 2}
  skip: {op: crop, in: [act, up]}
  cat:  {op: concat, in: [skip, up]}
  head: {op: conv, out: 2, k: 1}
  full: {op: upsample, in: [head, x], mode: bilinear}
outputs: [full]
"""

    class Ref(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc, self.mid = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 8, 3)
            self.up, self.head = nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Conv2d(8, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            e = torch.nn.functional.relu6(self.enc(x))  # 42x42
            u = self.up(self.mid(torch.nn.functional.max_pool2d(e, 2)))  # 38x38
            d = (e.shape[-1] - u.shape[-1]) // 2
            h = self.head(torch.cat([e[:, :, d:d + u.shape[-2], d:d + u.shape[-1]], u], dim=1))
            return torch.nn.functional.interpolate(h, size=x.shape[2:], mode="bilinear")

    model, ref = archspec.compile(spec).eval(), Ref().eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 1, 44, 44)
    assert torch.equal(model(x), ref(x)) and model(x).shape == (2, 2, 44, 44)


@pytest.mark.parametrize(("node", "headline", "fix"), [
    ("c: {op: crop, in: [x, big]}", r"ShapeError: .*t.yaml:6:3: node 'c' \(crop\): crop: input 1 is 9x9 in space, "
     r"larger than input 0 8x8; a crop only cuts \(at nodes.c\)", "crop the larger node to the smaller one"),
    ("c: {op: pixel_shuffle, in: x, factor: 2}", r"t.yaml:6:3: node 'c' \(pixel_shuffle\): pixel_shuffle: the 3 input "
     r"channels are not divisible by factor\*factor = 4", "give the op before it 4 output channels"),
    ("c: {op: pad, in: x, padding: [1, 1, 1]}", r"SpecValidationError: .*t.yaml:6:\d+: .*pad: padding \[1, 1, 1\] has an "
     r"odd number of entries", None),
    ("c: {op: hardtanh, in: x, min: 2}", r"t.yaml:6:\d+: .*hardtanh: max \(1.0\) must be greater than min \(2.0\)", None),
    ("c: {op: upsample, in: [x, big], scale: 2}", r"t.yaml:6:3: node 'c' \(upsample\): upsample: the second input "
     r"gives the size, so scale cannot be given too", "drop scale, or the second input"),
])
def test_new_op_errors_are_located_by_check(tmp_path: Any, node: str, headline: str, fix: str | None) -> None:
    from click.testing import CliRunner

    from archspec.cli import main

    spec = tmp_path / "t.yaml"
    spec.write_text("archspec: 1\nname: t\ninputs: {x: [3, 8, 8]}\nnodes:\n  big: {op: upsample, in: x, size: 9}\n"
                    f"  {node}\noutputs: [c]\n")
    res = CliRunner().invoke(main, ["check", str(spec)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert re.search(headline, res.output), res.output
    if fix is not None:
        assert f"fix: {fix}" in res.output, res.output


@settings(max_examples=200, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       padding=st.lists(st.integers(0, 7), min_size=1, max_size=4),
       mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]))
def test_pad_size_rule_matches_torch(shape: list[int], padding: list[int], mode: str) -> None:
    """Where the rule accepts a pad, torch gives the same shape; where torch accepts one the
    rule refuses, torch pads the batch (constant) or takes it for a channel (the others)."""
    pairs = padding + padding[::-1]  # an even list: (before, after) pairs
    op, a = op_attrs("pad", {"padding": pairs, "mode": mode})
    x = torch.zeros(2, *shape)
    try:
        got: tuple[int, ...] | None = op.infer(a, [tuple(shape)])
    except ShapeError:
        got = None
    try:
        want: tuple[int, ...] | None = tuple(torch.nn.functional.pad(x, tuple(pairs), mode=mode).shape[1:])
    except (RuntimeError, NotImplementedError, ValueError):
        want = None
    if got is not None:
        assert got == want
    elif want is not None:
        assert len(pairs) // 2 > len(shape) if mode == "constant" else len(pairs) // 2 == len(shape)
