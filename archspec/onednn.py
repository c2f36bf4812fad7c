"""A 2-d convolution that always runs oneDNN's kernel on the CPU (``optimize="inference"``).

PyTorch's CPU dispatcher sends a 1x1, stride-1 convolution with a batch under 16 on one
thread to its im2col + GEMM kernel, which in ``channels_last`` also copies its input and
output; oneDNN's direct NHWC kernel computes the same convolution about twice as fast
(the 1x1 convolutions are half of ResNet-50's time). Same parameters, same state_dict
keys, same results up to float rounding; off the CPU, for other dtypes or an unbatched
input, and under torch.compile or torch.export it is an ordinary ``nn.Conv2d``.
"""

from __future__ import annotations

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
        # oneDNN kernel, and inductor picks its own. TorchScript tracing cannot record the
        # fused op's empty list of post-op scalars.
        if not torch.compiler.is_compiling() and input.device.type == "cpu" and input.dim() == 4 \
                and input.dtype in (torch.float32, torch.bfloat16) and self.weight.dtype == input.dtype:
            args = (input, self.weight, self.bias, [self.padding[0], self.padding[1]],
                    [self.stride[0], self.stride[1]], [self.dilation[0], self.dilation[1]], self.groups)
            fused = not torch.jit.is_tracing()
            if other is not None and fused and other.dtype == input.dtype and other.device == input.device:
                # oneDNN's sum post-op: the conv accumulates into ``other``'s memory
                return torch.ops.mkldnn._convolution_pointwise_.binary(
                    other, *args, "add", 1.0, "relu" if self.relu else None, [], "")
            if other is None and self.relu and fused:
                return torch.ops.mkldnn._convolution_pointwise(*args, "relu", [], "")
            out = torch.ops.aten.mkldnn_convolution(*args)
        else:
            out = self._conv_forward(input, self.weight, self.bias)
        if other is not None:
            out = out.add_(other)
        return torch.relu_(out) if self.relu else out
