"""Convolutions: ``conv`` and ``conv_transpose`` over 1, 2 or 3 spatial dims.

The number of spatial dims comes from the input: ``(C, L)`` gives Conv1d, ``(C, H, W)``
Conv2d, ``(C, D, H, W)`` Conv3d.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from ..errors import ShapeError
from .base import (
    IntOrList,
    NonNeg,
    Op,
    OpAttrs,
    PosInt,
    Shape,
    Window,
    conv_out,
    fmt,
    ints,
    kernel_text,
    label_geometry,
    prod,
    register_op,
    spatial_rank,
    stride_text,
    tuplify,
)


class ConvAttrs(OpAttrs):
    out: PosInt
    k: IntOrList
    stride: IntOrList = 1
    # "auto" pads dilation*(k-1)//2 on each side: size kept at stride 1 for odd k.
    padding: NonNeg | list[NonNeg] | Literal["auto", "same", "valid"] = "auto"
    dilation: IntOrList = 1
    groups: PosInt = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"


def _conv_geometry(a: ConvAttrs, shape: Shape, op: str) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...] | str]:
    r = spatial_rank(op, shape)
    k = tuplify(a.k, r, "k")
    s = tuplify(a.stride, r, "stride")
    d = tuplify(a.dilation, r, "dilation")
    if a.padding == "auto":
        p: tuple[int, ...] | str = tuple(di * (ki - 1) // 2 for ki, di in zip(k, d, strict=True))
    elif a.padding == "valid":
        p = (0,) * r
    elif a.padding == "same":
        p = "same"
    else:
        p = tuplify(a.padding, r, "padding")
    return r, k, s, d, p


def _check_groups(op: str, cin: int, out: int, groups: int) -> None:
    if cin % groups or out % groups:
        raise ShapeError(
            f"{op}: groups={groups} must divide both input channels {cin} and output channels {out}",
            expected=f"channels divisible by {groups}", got=f"in={cin}, out={out}",
        )


def _conv_label(name: str, a: ConvAttrs | ConvTransposeAttrs, shapes: Sequence[Shape | None]) -> str:
    """``conv 3×3/2 64→128``, with ``g<groups>`` and ``d<dilation>`` when not 1."""
    cin, nd = label_geometry(shapes)
    s = f"{name} {kernel_text(a.k, nd)}{stride_text(a.stride, nd)}"
    s += f" {cin}→{a.out}" if cin is not None else f" →{a.out}"
    if a.groups != 1:
        s += f" g{a.groups}"
    if a.dilation not in (1, [1], (1,)):
        s += f" d{a.dilation}"
    return s


_CONV_CTOR = {"kernel_size": None, "stride": None, "padding": None, "dilation": (1,), "groups": 1, "bias": True,
              "padding_mode": "zeros"}


@register_op
class Conv(Op[ConvAttrs]):
    """Convolution. ``(C_in, *S) -> (out, *S')`` with PyTorch's size rule per dim."""

    name = "conv"
    family = "conv"
    fresh_output = True
    Attrs = ConvAttrs
    stateless = False
    init_kind = "fan_out"
    ctor = (("in_channels", "out_channels"), _CONV_CTOR)
    torch_names = ("torch.nn.Conv1d", "torch.nn.Conv2d", "torch.nn.Conv3d")

    def infer(self, a: ConvAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        r, k, s, d, p = _conv_geometry(a, x, "conv")
        _check_groups("conv", x[0], a.out, a.groups)
        if p == "same":
            if any(si != 1 for si in s):
                raise ShapeError("conv: padding 'same' needs stride 1", got=f"stride={list(s)}",
                                 fix="use padding: auto, which keeps the size at stride 1 and halves it at stride 2")
            return (a.out, *x[1:])
        assert isinstance(p, tuple)
        sizes = tuple(conv_out(n, ki, si, pi, di) for n, ki, si, pi, di in zip(x[1:], k, s, p, d, strict=True))
        if any(n < 1 for n in sizes):
            raise ShapeError(
                f"conv: kernel {fmt(k)} (dilation {fmt(d)}, padding {fmt(p)}) is larger than the input {fmt(x[1:])}",
                expected="an input at least as large as the dilated kernel", got=fmt(x),
            )
        return (a.out, *sizes)

    def params(self, a: ConvAttrs, shapes: Sequence[Shape]) -> int:
        r = len(shapes[0]) - 1
        return a.out * (shapes[0][0] // a.groups) * prod(tuplify(a.k, r, "k")) + (a.out if a.bias else 0)

    def macs(self, a: ConvAttrs, shapes: Sequence[Shape], out: Shape) -> int:
        r = len(shapes[0]) - 1
        return prod(out) * (shapes[0][0] // a.groups) * prod(tuplify(a.k, r, "k"))

    def window(self, a: ConvAttrs, shapes: Sequence[Shape]) -> Window:
        _, k, s, d, p = _conv_geometry(a, shapes[0], "conv")
        pad = p if not isinstance(p, str) else tuple(di * (ki - 1) // 2 for ki, di in zip(k, d, strict=True))  # same
        return Window(kernel=k, stride=tuple(float(v) for v in s), dilation=d, start=tuple(-float(v) for v in pad))

    def module(self, a: ConvAttrs, shapes: Sequence[Shape]) -> object:
        from torch import nn

        r, k, s, d, p = _conv_geometry(a, shapes[0], "conv")
        cls: Any = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[r]  # torch annotates one int; tuples are fine
        return cls(shapes[0][0], a.out, k, stride=s, padding=p, dilation=d, groups=a.groups,
                   bias=a.bias, padding_mode=a.padding_mode)

    def label(self, a: ConvAttrs, shapes: Sequence[Shape | None]) -> str:
        return _conv_label(self.name, a, shapes)

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        m = target
        return {"out": m.out_channels, "k": ints(m.kernel_size), "stride": ints(m.stride),
                "padding": m.padding if isinstance(m.padding, str) else ints(m.padding),
                "dilation": ints(m.dilation), "groups": m.groups, "bias": m.bias is not None,
                "padding_mode": m.padding_mode}


class ConvTransposeAttrs(OpAttrs):
    out: PosInt
    k: IntOrList
    stride: IntOrList = 1
    padding: NonNeg | list[NonNeg] = 0
    output_padding: NonNeg | list[NonNeg] = 0
    dilation: IntOrList = 1
    groups: PosInt = 1
    bias: bool = True


@register_op
class ConvTranspose(Op[ConvTransposeAttrs]):
    """Transposed convolution: ``(s-1)*stride ... `` up-sampling, PyTorch's size rule:
    ``(n-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1``."""

    name = "conv_transpose"
    family = "conv"
    fresh_output = True
    Attrs = ConvTransposeAttrs
    stateless = False
    init_kind = "fan_out"
    ctor = (("in_channels", "out_channels"),
            {"kernel_size": None, "stride": None, "padding": None, "output_padding": (0,), "groups": 1,
             "bias": True, "dilation": (1,)})
    torch_names = ("torch.nn.ConvTranspose1d", "torch.nn.ConvTranspose2d", "torch.nn.ConvTranspose3d")

    def _geom(self, a: ConvTransposeAttrs, x: Shape) -> tuple[tuple[int, ...], ...]:
        """(k, stride, padding, output_padding, dilation), each one entry per spatial dim."""
        r = spatial_rank("conv_transpose", x)
        return (tuplify(a.k, r, "k"), tuplify(a.stride, r, "stride"), tuplify(a.padding, r, "padding"),
                tuplify(a.output_padding, r, "output_padding"), tuplify(a.dilation, r, "dilation"))

    def infer(self, a: ConvTransposeAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        k, s, p, op, d = self._geom(a, x)
        _check_groups("conv_transpose", x[0], a.out, a.groups)
        for o, si, di in zip(op, s, d, strict=True):
            if o >= max(si, di):
                raise ShapeError(f"conv_transpose: output_padding {o} must be smaller than stride or dilation",
                                 got=f"output_padding={o}, stride={si}, dilation={di}")
        sizes = tuple((n - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
                      for n, ki, si, pi, oi, di in zip(x[1:], k, s, p, op, d, strict=True))
        if any(n < 1 for n in sizes):
            raise ShapeError(f"conv_transpose: padding {fmt(p)} leaves no output for input {fmt(x)}", got=fmt(x))
        return (a.out, *sizes)

    def params(self, a: ConvTransposeAttrs, shapes: Sequence[Shape]) -> int:
        r = len(shapes[0]) - 1
        return shapes[0][0] * (a.out // a.groups) * prod(tuplify(a.k, r, "k")) + (a.out if a.bias else 0)

    def macs(self, a: ConvTransposeAttrs, shapes: Sequence[Shape], out: Shape) -> int:
        # Every input element is multiplied by a (out/groups x k) slice of the weight.
        r = len(shapes[0]) - 1
        return prod(shapes[0]) * (a.out // a.groups) * prod(tuplify(a.k, r, "k"))

    def window(self, a: ConvTransposeAttrs, shapes: Sequence[Shape]) -> Window:
        k, s, p, _, d = self._geom(a, shapes[0])
        # Output o gets input i where i*s - p + t*d == o for a tap t < k: the inputs
        # ceil((o + p - (k-1)*d) / s) .. floor((o + p) / s), at most floor((k-1)*d/s) + 1 of them.
        return Window(kernel=tuple((ki - 1) * di // si + 1 for ki, di, si in zip(k, d, s, strict=True)),
                      stride=tuple(1.0 / v for v in s), dilation=(1,) * len(k),
                      start=tuple((pi - (ki - 1) * di + si - 1) / si for ki, di, si, pi in zip(k, d, s, p, strict=True)),
                      end=tuple(pi / si for si, pi in zip(s, p, strict=True)))

    def module(self, a: ConvTransposeAttrs, shapes: Sequence[Shape]) -> object:
        from torch import nn

        x = shapes[0]
        r = len(x) - 1
        k, s, p, op, d = self._geom(a, x)
        cls: Any = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[r]  # as above
        return cls(x[0], a.out, k, stride=s, padding=p, output_padding=op, groups=a.groups,
                   bias=a.bias, dilation=d)

    def label(self, a: ConvTransposeAttrs, shapes: Sequence[Shape | None]) -> str:
        return _conv_label(self.name, a, shapes)

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        m = target
        return {"out": m.out_channels, "k": ints(m.kernel_size), "stride": ints(m.stride),
                "padding": ints(m.padding), "output_padding": ints(m.output_padding), "dilation": ints(m.dilation),
                "groups": m.groups, "bias": m.bias is not None}
