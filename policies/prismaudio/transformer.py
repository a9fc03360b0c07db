"""The PrismAudio transformer: pre-LN blocks (self-attention with rotary angles, cross-attention
to the condition tokens, SwiGLU MLP), an input projection, the gated addition of the
frame-aligned video and sync streams, and an output projection.

Order of the sequence: [timestep token, latent frames]; the rotary angles cover every position
(the timestep token is position 0). Each block can be recomputed in the backward pass
(activation checkpointing) to save memory.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from policies.prismaudio.attention import Attention
from policies.prismaudio.layers import FeedForward, LayerNorm, RotaryEmbedding


class TransformerBlock(nn.Module):
    """x + SelfAttn(LN x) -> + CrossAttn(LN x, context) -> + SwiGLU(LN x)."""

    def __init__(self, dim: int, dim_heads: int, dim_context: int):
        super().__init__()
        self.pre_norm = LayerNorm(dim)
        self.self_attn = Attention(dim, dim_heads)
        self.cross_attend_norm = LayerNorm(dim)
        self.cross_attn = Attention(dim, dim_heads, dim_context=dim_context)
        self.ff_norm = LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, rotary: torch.Tensor,
                context_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.self_attn(self.pre_norm(x), rotary=rotary)
        x = x + self.cross_attn(self.cross_attend_norm(x), context=context, key_mask=context_mask)
        return x + self.ff(self.ff_norm(x))


class ContinuousTransformer(nn.Module):
    """The block stack with its projections; `gate` and `sync_gate` weigh the added streams
    through a sigmoid (gate starts at sigmoid(1), sync_gate at sigmoid(0) = 0.5)."""

    def __init__(self, dim: int, depth: int, dim_heads: int, dim_in: int, dim_out: int, dim_context: int):
        super().__init__()
        self.gate = nn.Parameter(torch.ones(1, 1, dim))
        self.sync_gate = nn.Parameter(torch.zeros(1, 1, dim))
        self.layers = nn.ModuleList(TransformerBlock(dim, dim_heads, dim_context) for _ in range(depth))
        self.project_in = nn.Linear(dim_in, dim, bias=False)
        self.project_out = nn.Linear(dim, dim_out, bias=False)
        rot = max(dim_heads // 2, 32)
        if rot > dim_heads:
            raise ValueError(f"head size {dim_heads} is smaller than the {rot} rotary channels (use heads of >= 32)")
        self.rotary_pos_emb = RotaryEmbedding(rot)
        self.checkpointing = False
        """Recompute each block in backward (set by the policy from its config)."""

    def forward(
        self,
        x: torch.Tensor,
        prepend: torch.Tensor,
        context: torch.Tensor,
        context_mask: Optional[torch.Tensor],
        add_cond: Optional[torch.Tensor],
        sync_cond: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """x [B, T, dim_in]; prepend [B, P, dim]; context [B, M, dim_context]; add_cond and
        sync_cond [B, T, dim] (sync is added only together with add_cond, as in the reference).
        Returns [B, P + T, dim_out]."""
        x = self.project_in(x)
        if add_cond is not None:
            x = x + torch.sigmoid(self.gate) * add_cond
            if sync_cond is not None:
                x = x + torch.sigmoid(self.sync_gate) * sync_cond
        x = torch.cat([prepend.to(x.dtype), x], dim=1)
        rotary = self.rotary_pos_emb(x.shape[1])
        for layer in self.layers:
            if self.checkpointing and torch.is_grad_enabled():
                x = checkpoint(layer, x, context, rotary, context_mask, use_reentrant=False)
            else:
                x = layer(x, context, rotary, context_mask)
        return self.project_out(x)
