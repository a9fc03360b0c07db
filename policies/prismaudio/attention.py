"""Multi-head attention of the PrismAudio DiT: RMSNorm on each head's q and k, rotary angles on
the self-attention's q and k, no biases, output projection starting at zero.

Self-attention uses one fused `to_qkv`; cross-attention `to_q` on the sequence and `to_kv` on the
context. A key mask (True = attend) lets padded context rows be left out.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from policies.prismaudio.layers import apply_rotary


class Attention(nn.Module):
    """Attention over `dim` channels in heads of `dim_heads`; `dim_context` set = cross-attention."""

    def __init__(self, dim: int, dim_heads: int = 64, dim_context: Optional[int] = None):
        super().__init__()
        if dim % dim_heads:
            raise ValueError(f"attention width {dim} is not a multiple of the head size {dim_heads}")
        self.heads = dim // dim_heads
        self.cross = dim_context is not None
        if self.cross:
            if dim_context % dim_heads:
                raise ValueError(f"context width {dim_context} is not a multiple of the head size {dim_heads}")
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_kv = nn.Linear(dim_context, dim_context * 2, bias=False)
        else:
            self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        nn.init.zeros_(self.to_out.weight)
        self.q_norm = nn.RMSNorm(dim_heads)
        self.k_norm = nn.RMSNorm(dim_heads)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.reshape(b, n, self.heads, -1).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        context: Optional[torch.Tensor] = None,
        rotary: Optional[torch.Tensor] = None,
        key_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x [B, N, dim]; context [B, M, dim_context] (cross only); rotary angles [N, r] (self
        only); key_mask [B, M] bool. Returns [B, N, dim]."""
        if self.cross:
            q = self._heads(self.to_q(x))
            k, v = (self._heads(t) for t in self.to_kv(context).chunk(2, dim=-1))
        else:
            q, k, v = (self._heads(t) for t in self.to_qkv(x).chunk(3, dim=-1))
        q = self.q_norm(q).to(v.dtype)
        k = self.k_norm(k).to(v.dtype)
        if rotary is not None:
            q = apply_rotary(q, rotary).to(v.dtype)
            k = apply_rotary(k, rotary).to(v.dtype)
        mask = None if key_mask is None else key_mask[:, None, None, :].to(torch.bool)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        b, h, n, d = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, h * d))
