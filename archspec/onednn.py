"""A 2-d convolution that always runs oneDNN's kernel on the CPU (``optimize="inference"``).

PyTorch's CPU dispatcher sends a 1x1, stride-1 convolution with a batch under 16 on one
thread to its im2col + GEMM kernel, which in ``channels_last`` also copies its input and
output; oneDNN's direct NHWC kernel computes the same convolution about twice as fast
(the 1x1 convolutions are half of ResNet-50's time). Same parameters, same state_dict
keys, same results up to float rounding; off the CPU, for other dtypes or an unbatched
input, and under torch.compile or torch.export it is an ordinary ``nn.Conv2d``.

oneDNN computes with the weight in a blocked layout of its own; given the plain tensor,
it reorders it on every call. The module keeps the reordered weight (``_packed``, made
on the first call for an input shape; the parameter stays as it is, for ``state_dict``
and the plain path) and makes it again when the weight changes (``_version``, storage
or dtype) or the input's shape does: a second copy of the weight (94 MB for ResNet-50's
convs in float32), dropped when the module moves (``.to``, ``.cuda``, ``.half``) and left
out of pickles and deep copies.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def _pair(v: tuple[int, ...] | str) -> tuple[int, int]:
    assert not isinstance(v, str) and len(v) == 2, v
    return v[0], v[1]


class OneDNNConv2d(nn.Conv2d):
    """``nn.Conv2d`` (zero padding given as numbers) forced onto oneDNN on the CPU.

    Input ``(N, C, H, W)``, best in ``channels_last``; output ``(N, out_channels, H', W')``
    in the input's memory format."""

    # Post-ops oneDNN applies in the conv's own pass over the output (archspec/optimize.py):
    # forward(input, other) returns conv(input) + other, written into ``other``, which the
    # caller has proven nothing reads afterwards (fuse_conv_add); ``relu`` then applies a relu
    # to that result (fuse_conv_relu, or the relu of a fused residual add).
    relu: bool = False
    _packed: tuple[tuple[object, ...], Tensor] | None = None  # (what it was made from, oneDNN's weight)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> OneDNNConv2d | None:
        """The same convolution, sharing ``conv``'s parameters; None where oneDNN cannot run it
        (another padding mode, ``padding="same"``, no oneDNN in this torch build)."""
        if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or isinstance(conv.padding, str) \
                or not torch.backends.mkldnn.is_available():
            return None
        with torch.device("meta"):
            new = cls(conv.in_channels, conv.out_channels, _pair(conv.kernel_size), _pair(conv.stride),
                      _pair(conv.padding), _pair(conv.dilation), conv.groups, conv.bias is not None)
        new.weight = conv.weight
        new.bias = conv.bias
        new.train(conv.training)
        return new

    def forward(self, input: Tensor, other: Tensor | None = None) -> Tensor:  # noqa: A002 - nn.Conv2d's name
        # Traced by torch.compile or torch.export, the plain convolution: fake tensors have no
        # oneDNN kernel, and inductor picks its own. Under autocast too, which casts the plain
        # convolution's operands (as it does nn.Conv2d's) and would pass the fused ops by.
        if torch.compiler.is_compiling() or input.device.type != "cpu" or input.dim() != 4 \
                or input.dtype not in (torch.float32, torch.bfloat16) or self.weight.dtype != input.dtype \
                or torch.is_autocast_enabled("cpu"):
            return self._post(self._conv_forward(input, self.weight, self.bias), other)
        geometry = (list(_pair(self.padding)), [self.stride[0], self.stride[1]],
                    [self.dilation[0], self.dilation[1]], self.groups)
        # The fused ops have no backward, and TorchScript tracing cannot record their empty
        # list of post-op scalars: there, oneDNN's plain convolution.
        if torch.jit.is_tracing() or torch.is_grad_enabled() and (
                input.requires_grad or self.weight.requires_grad or other is not None and other.requires_grad):
            return self._post(torch.ops.aten.mkldnn_convolution(input, self.weight, self.bias, *geometry), other)
        args = (input, self._oneDNN_weight(input, geometry), self.bias, *geometry)
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(*args, "relu" if self.relu else "none", [], "")
        if other.dtype == input.dtype and other.device == input.device:
            # oneDNN's sum post-op: the conv accumulates into ``other``'s memory
            return torch.ops.mkldnn._convolution_pointwise_.binary(
                other, *args, "add", 1.0, "relu" if self.relu else None, [], "")
        return self._post(torch.ops.mkldnn._convolution_pointwise(*args, "none", [], ""), other)

    def _post(self, out: Tensor, other: Tensor | None) -> Tensor:
        """What the post-ops compute, after a plain convolution's ``out``."""
        if other is not None:
            out = out.add_(other)
        return torch.relu_(out) if self.relu else out

    def _oneDNN_weight(self, input: Tensor, geometry: tuple[list[int], list[int], list[int], int]) -> Tensor:
        """The weight in oneDNN's layout for this input shape, made once and again only when
        the weight or the input's shape changes."""
        w = self.weight
        key = (w._version, w.data_ptr(), w.dtype, input.shape)
        if self._packed is None or self._packed[0] != key:
            self._packed = (key, torch.ops.mkldnn._reorder_convolution_weight(w, *geometry, list(input.shape)))
        return self._packed[1]

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> OneDNNConv2d:
        self._packed = None  # .to(), .cuda(), .half() ...: the weight moves, the copy would be stale
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict[str, object]:
        state = super().__getstate__()
        state.pop("_packed", None)  # an opaque oneDNN tensor: neither picklable nor copyable
        return state
