"""Weight-normalised 1-d convolutions whose state_dict reads `bias`, `weight_g`, `weight_v`.

The Oobleck VAE was trained with `torch.nn.utils.weight_norm` (descript-audio-codec's WNConv1d /
WNConvTranspose1d), which replaces a conv's `weight` by `weight_g` (the norm, [dim0, 1, 1]) and
`weight_v` (the direction, the weight's shape), registered after `bias`. That API is deprecated
and its successor (`parametrizations.weight_norm`) names the tensors
`parametrizations.weight.original0/1`, so these modules hold the two tensors themselves and compute
weight = g * v / ||v|| (norm over every dim but 0) at each call: the same names, shapes and order
as the released checkpoints, no hooks, and nothing that breaks on the meta device.
"""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn


def weight_from_norm(weight_g: torch.Tensor, weight_v: torch.Tensor) -> torch.Tensor:
    """g * v / ||v||, the norm of v taken over all dims except 0.

    Computed by `torch._weight_norm`, the kernel behind both of torch's weight_norm APIs, so the
    weight equals, bit for bit, the one the reference's hook computes (and it is one fused pass).
    """
    return torch._weight_norm(weight_v, weight_g, 0)


class _WeightNormConv(nn.Module):
    """Shared parameters and initialisation; `weight_shape` is the plain conv's weight shape."""

    def __init__(self, weight_shape: tuple[int, int, int], bias_channels: int, bias: bool, fan_in: int):
        super().__init__()
        self.bias = nn.Parameter(torch.empty(bias_channels)) if bias else None
        self.weight_g = nn.Parameter(torch.empty(weight_shape[0], 1, 1))
        self.weight_v = nn.Parameter(torch.empty(weight_shape))
        self._fan_in = fan_in
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default conv initialisation for v (and bias), then g = ||v|| so that weight = v at start."""
        if self.weight_v.is_meta:  # shapes only (a checkpoint fills them); the norm would be slow here
            return
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self._fan_in) if self._fan_in > 0 else 0.0
            nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            dims = tuple(range(1, self.weight_v.dim()))
            self.weight_g.copy_(torch.linalg.vector_norm(self.weight_v, dim=dims, keepdim=True))

    @property
    def weight(self) -> torch.Tensor:
        """The effective convolution weight."""
        return weight_from_norm(self.weight_g, self.weight_v)


class WNConv1d(_WeightNormConv):
    """Conv1d(in, out, kernel, stride, padding, dilation, bias) with weight norm over dim 0 (out channels)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, dilation: int = 1, bias: bool = True):
        self.stride, self.padding, self.dilation = stride, padding, dilation
        super().__init__((out_channels, in_channels, kernel_size), out_channels, bias, in_channels * kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        out, inp, k = self.weight_v.shape
        return f"{inp}, {out}, kernel_size={k}, stride={self.stride}, padding={self.padding}, dilation={self.dilation}"


class WNConvTranspose1d(_WeightNormConv):
    """ConvTranspose1d(in, out, kernel, stride, padding, bias); weight [in, out, k], norm over dim 0 (in channels)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True):
        self.stride, self.padding = stride, padding
        # torch computes a transposed conv's fan_in from weight.size(1) * kernel, i.e. out_channels * k.
        super().__init__((in_channels, out_channels, kernel_size), out_channels, bias, out_channels * kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        inp, out, k = self.weight_v.shape
        return f"{inp}, {out}, kernel_size={k}, stride={self.stride}, padding={self.padding}"
