"""Building blocks of the small DiT: sinusoidal embeddings and an adaLN-Zero block with cross-attention."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal(values: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """[..., dim] sin/cos features of real values (timesteps scaled by the caller)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / half)
    args = values.float()[..., None] * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
    return F.pad(emb, (0, dim - 2 * half))


def time_position(seconds: torch.Tensor, dim: int) -> torch.Tensor:
    """Position embedding of a time in seconds, shared by audio and video tokens (10 ms resolution)."""
    return sinusoidal(seconds * 100.0, dim, max_period=2000.0)


class TimestepEmbedder(nn.Module):
    """t in [0, 1] -> [B, width] through sinusoidal features and an MLP."""

    def __init__(self, width: int, freq_dim: int = 128):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal(t * 1000.0, self.freq_dim).to(self.mlp[0].weight.dtype))


class Attention(nn.Module):
    """Multi-head attention; `context` None = self-attention; key mask True = attend."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"policy.width={width} is not divisible by policy.heads={heads}")
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, w = x.shape
        ctx = x if context is None else context
        q = self.q(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(ctx).reshape(b, ctx.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, n, w))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation with per-sample shift/scale [B, width]."""
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Self-attention and MLP modulated by the conditioning vector (adaLN-Zero), plus cross-attention."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm_x = nn.LayerNorm(width, eps=1e-6)
        self.cross = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))
        nn.init.zeros_(self.ada[-1].weight)
        nn.init.zeros_(self.ada[-1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        s1, sc1, g1, s2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        x = x + g1[:, None] * self.attn(modulate(self.norm1(x), s1, sc1))
        x = x + self.cross(self.norm_x(x), context, context_mask)
        return x + g2[:, None] * self.mlp(modulate(self.norm2(x), s2, sc2))


class FinalLayer(nn.Module):
    """adaLN-modulated projection to the latent channels, zero-initialised."""

    def __init__(self, width: int, out_channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.linear = nn.Linear(width, out_channels)
        for layer in (self.ada[-1], self.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))
