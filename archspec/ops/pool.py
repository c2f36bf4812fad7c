"""Pooling: ``maxpool``, ``avgpool`` and their adaptive forms, over 1, 2 or 3 spatial dims.

The number of spatial dims comes from the input, as for ``conv``: ``(C, L)`` uses the
1d functions, ``(C, H, W)`` 2d, ``(C, D, H, W)`` 3d. All pools are stateless and keep
the channels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ShapeError
from .base import (
    A,
    Call,
    IntOrList,
    NonNeg,
    Op,
    OpAttrs,
    Shape,
    Window,
    conv_out,
    fmt,
    ints,
    kernel_text,
    label_geometry,
    register_op,
    spatial_rank,
    stride_text,
    tuplify,
)


def pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling size rule (``pooling_output_shape``).

    Floor mode is the conv rule. Ceil mode rounds up, but the last window must start
    inside the input or the left padding, else it is dropped.
    """
    if not ceil_mode:
        return conv_out(size, k, s, p, d)
    n = (size + 2 * p - d * (k - 1) - 1 + (s - 1)) // s + 1
    if (n - 1) * s >= size + p:
        n -= 1
    return n


class _PoolAttrs(OpAttrs):
    k: IntOrList
    stride: IntOrList | None = None  # None: stride = k
    padding: NonNeg | list[NonNeg] = 0
    ceil_mode: bool = False


class MaxPoolAttrs(_PoolAttrs):
    dilation: IntOrList = 1


class AvgPoolAttrs(_PoolAttrs):
    count_include_pad: bool = True


class _Pool(Op[A]):
    family = "pool"
    fresh_output = True

    def label(self, a: A, shapes: Sequence[Shape | None]) -> str:
        _, nd = label_geometry(shapes)
        st = getattr(a, "stride", None)
        return f"{self.name} {kernel_text(getattr(a, 'k', None), nd)}{stride_text(st if st is not None else getattr(a, 'k', None), nd)}"

    def _read_window(self, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
        kw = kwargs or {}
        k = ints(kw["kernel_size"])
        stride = kw.get("stride")
        return {"k": k, "stride": None if stride is None or ints(stride) == k else ints(stride),
                "padding": ints(kw.get("padding", 0)), "ceil_mode": kw.get("ceil_mode", False)}

    def _geom(self, a: Any, x: Shape) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(rank, k, stride, padding, dilation), each one entry per spatial dim."""
        r = spatial_rank(self.name, x)
        k = tuplify(a.k, r, "k")
        s = k if a.stride is None else tuplify(a.stride, r, "stride")
        p = tuplify(a.padding, r, "padding")
        d = tuplify(getattr(a, "dilation", 1), r, "dilation")
        return r, k, s, p, d

    def infer(self, a: Any, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        _, k, s, p, d = self._geom(a, x)
        # torch checks pad <= k // 2 per dim (for max pool too: the kernel, not the dilated kernel).
        if any(pi > ki // 2 for pi, ki in zip(p, k, strict=True)):
            raise ShapeError(f"{self.name}: padding {fmt(p)} is more than half the kernel {fmt(k)}",
                             expected=f"padding <= {fmt(tuple(ki // 2 for ki in k))}", got=fmt(p),
                             fix="lower the padding or enlarge the kernel")
        sizes = tuple(pool_out(n, ki, si, pi, di, a.ceil_mode)
                      for n, ki, si, pi, di in zip(x[1:], k, s, p, d, strict=True))
        if any(n < 1 for n in sizes):
            raise ShapeError(
                f"{self.name}: kernel {fmt(k)} (dilation {fmt(d)}, padding {fmt(p)}) is larger than the input {fmt(x[1:])}",
                expected="an input at least as large as the dilated kernel", got=fmt(x),
            )
        return (x[0], *sizes)

    def window(self, a: Any, shapes: Sequence[Shape]) -> Window:
        _, k, s, p, d = self._geom(a, shapes[0])
        return Window(kernel=k, stride=tuple(float(v) for v in s), dilation=d, start=tuple(-float(v) for v in p))


@register_op
class MaxPool(_Pool[MaxPoolAttrs]):
    """Max pooling. ``(C, *S) -> (C, *S')`` with PyTorch's pooling size rule per dim:
    ``floor((n + 2p - d(k-1) - 1) / s) + 1`` (ceil with ``ceil_mode``, dropping a last
    window that would start in the right padding); ``stride`` defaults to ``k`` and
    ``padding`` may be at most ``k // 2``."""

    name = "maxpool"
    Attrs = MaxPoolAttrs
    torch_names = ("torch.nn.functional.max_pool1d", "torch.nn.functional.max_pool2d",
                   "torch.nn.functional.max_pool3d")

    def call(self, a: MaxPoolAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch.nn.functional as F

        r, k, s, p, d = self._geom(a, shapes[0])
        fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[r]
        return fn, (args[0],), {"kernel_size": k, "stride": s, "padding": p, "dilation": d,
                                "ceil_mode": a.ceil_mode}

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {**self._read_window(kwargs), "dilation": ints((kwargs or {}).get("dilation", 1))}


@register_op
class AvgPool(_Pool[AvgPoolAttrs]):
    """Average pooling. ``(C, *S) -> (C, *S')`` with the size rule of ``maxpool``
    (dilation 1); ``count_include_pad`` counts padded zeros in the mean."""

    name = "avgpool"
    Attrs = AvgPoolAttrs
    torch_names = ("torch.nn.functional.avg_pool1d", "torch.nn.functional.avg_pool2d",
                   "torch.nn.functional.avg_pool3d")

    def call(self, a: AvgPoolAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        import torch.nn.functional as F

        r, k, s, p, _ = self._geom(a, shapes[0])
        fn: Any = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[r]  # builtins, which mypy types as "function"
        return fn, (args[0],), {"kernel_size": k, "stride": s, "padding": p,
                                "ceil_mode": a.ceil_mode, "count_include_pad": a.count_include_pad}

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {**self._read_window(kwargs), "count_include_pad": (kwargs or {}).get("count_include_pad", True)}


class AdaptivePoolAttrs(OpAttrs):
    size: IntOrList = 1  # output spatial size; 1 is global pooling


def adaptive_window_len(n: int, out: int) -> int:
    """The longest window of adaptive pooling ``n -> out``: bins ``[floor(i*n/out), ceil((i+1)*n/out))``."""
    return max(-(-((i + 1) * n) // out) - (i * n) // out for i in range(out))


class _AdaptivePool(Op[AdaptivePoolAttrs]):
    family = "pool"
    fresh_output = True
    Attrs = AdaptivePoolAttrs

    def _size(self, a: AdaptivePoolAttrs, x: Shape) -> tuple[int, ...]:
        return tuplify(a.size, spatial_rank(self.name, x), "size")

    def infer(self, a: AdaptivePoolAttrs, shapes: Sequence[Shape]) -> Shape:
        (x,) = shapes
        return (x[0], *self._size(a, x))

    def window(self, a: AdaptivePoolAttrs, shapes: Sequence[Shape]) -> Window:
        x = shapes[0]
        size = self._size(a, x)
        if all(o == 1 for o in size):
            return Window(glob=True)
        # The longest bin, and the mean step between bins (fractional when out > in).
        k = tuple(adaptive_window_len(n, o) for n, o in zip(x[1:], size, strict=True))
        s = tuple(n / o for n, o in zip(x[1:], size, strict=True))
        # Bin o spans floor(o*n/out) .. ceil((o+1)*n/out) - 1 = floor(o*n/out + (n-1)/out).
        return Window(kernel=k, stride=s, dilation=(1,) * len(size), start=(0.0,) * len(size),
                      end=tuple((n - 1) / o for n, o in zip(x[1:], size, strict=True)))

    def _fn(self, r: int) -> Callable[..., Any]:
        raise NotImplementedError

    def call(self, a: AdaptivePoolAttrs, shapes: Sequence[Shape], args: list[Any]) -> Call:
        size = self._size(a, shapes[0])
        return self._fn(len(size)), (args[0],), {"output_size": size}

    def label(self, a: AdaptivePoolAttrs, shapes: Sequence[Shape | None]) -> str:
        _, nd = label_geometry(shapes)
        return f"{self.name} →{kernel_text(a.size, nd)}"

    def read(self, target: Any, shapes: Sequence[Shape], args: Sequence[Any] = (),
             kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"size": ints((kwargs or {})["output_size"])}


@register_op
class AdaptiveAvgPool(_AdaptivePool):
    """Adaptive average pooling to a fixed spatial ``size``: ``(C, *S) -> (C, *size)``;
    ``size: 1`` is global average pooling."""

    name = "adaptive_avgpool"
    torch_names = ("torch.nn.functional.adaptive_avg_pool1d", "torch.nn.functional.adaptive_avg_pool2d",
                   "torch.nn.functional.adaptive_avg_pool3d")

    def _fn(self, r: int) -> Callable[..., Any]:
        import torch.nn.functional as F

        return {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[r]


@register_op
class AdaptiveMaxPool(_AdaptivePool):
    """Adaptive max pooling to a fixed spatial ``size``: ``(C, *S) -> (C, *size)``."""

    name = "adaptive_maxpool"
    torch_names = ("torch.nn.functional.adaptive_max_pool1d", "torch.nn.functional.adaptive_max_pool2d",
                   "torch.nn.functional.adaptive_max_pool3d")

    def _fn(self, r: int) -> Callable[..., Any]:
        import torch.nn.functional as F

        return {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[r]

