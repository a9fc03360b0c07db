"""Small layers of the PrismAudio DiT: bias-free LayerNorm, rotary embedding, Fourier timestep
features and the SwiGLU feed-forward, each holding the tensor names of the released checkpoint."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """LayerNorm with a learned gain `gamma` and a zero `beta` kept as a buffer (it is in the
    checkpoint and a strict load needs it)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))
        self.register_buffer("beta", torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], weight=self.gamma.to(x.dtype), bias=self.beta.to(x.dtype), eps=self.eps)


class RotaryEmbedding(nn.Module):
    """Rotary position angles for `dim` rotated channels: inv_freq = base^(-2i/dim), i < dim/2;
    the angles of position p are [p*inv_freq, p*inv_freq] (the two halves of the rotated part)."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)))

    def forward(self, seq_len: int) -> torch.Tensor:
        """Angles [seq_len, dim] in float32 for positions 0..seq_len-1."""
        pos = torch.arange(seq_len, device=self.inv_freq.device, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq.float()[None, :]
        return torch.cat([freqs, freqs], dim=-1)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last axis."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(t: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate the first angles.shape[-1] channels of t [..., n, d] by the LAST n rows of `angles`
    (in float32), leaving the other channels as they are; returns t's dtype."""
    rot = angles.shape[-1]
    angles = angles[-t.shape[-2]:].float()
    head, tail = t[..., :rot].float(), t[..., rot:]
    head = head * angles.cos() + rotate_half(head) * angles.sin()
    return torch.cat([head.to(t.dtype), tail], dim=-1)


class FourierFeatures(nn.Module):
    """[B, in] -> [B, out]: cos and sin of 2*pi * x @ weight.T (weight [out/2, in], random normal)."""

    def __init__(self, in_features: int, out_features: int, std: float = 1.0):
        super().__init__()
        if out_features % 2:
            raise ValueError(f"FourierFeatures: out_features must be even, got {out_features}")
        self.weight = nn.Parameter(torch.randn(out_features // 2, in_features) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = 2 * math.pi * x @ self.weight.T.to(x.dtype)
        return torch.cat([f.cos(), f.sin()], dim=-1)


class GLU(nn.Module):
    """SwiGLU input projection: proj(x) = [a, g] -> a * silu(g)."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = self.proj(x).chunk(2, dim=-1)
        return a * F.silu(gate)


class FeedForward(nn.Module):
    """SwiGLU MLP dim -> 2 x mult*dim -> dim with biases; the output layer starts at zero.
    Names: ff.0.proj (GLU), ff.1 (identity), ff.2 (output)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        inner = dim * mult
        out = nn.Linear(inner, dim)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.ff = nn.Sequential(GLU(dim, inner), nn.Identity(), out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x)
