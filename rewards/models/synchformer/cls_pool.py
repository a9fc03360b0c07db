"""Attention pooling with a learned CLS token: how Synchformer collapses a token axis.

One pre-norm `nn.TransformerEncoderLayer` (GELU, eps 1e-6) run over `[CLS] + tokens`; the CLS
output is the pooled vector. MotionFormer pools the 14x14 patches of each frame this way
(`spatial_attn_agg`) and the AST pools the 12 frequency patches of each time step
(`freq_attn_agg`). The parameter names match the public checkpoint: `cls_token`, `self_attn.*`,
`linear1/2`, `norm1/2`.
"""
from __future__ import annotations

import torch
from torch import nn


class ClsTokenPool(nn.TransformerEncoderLayer):
    """Pools `[N, L, D]` tokens to `[N, D]` through a CLS token and one encoder layer."""

    def __init__(self, dim: int = 768, heads: int = 12, ffn_dim: int = 3072):
        super().__init__(
            d_model=dim,
            nhead=heads,
            dim_feedforward=ffn_dim,
            dropout=0.0,
            activation=nn.GELU(),
            layer_norm_eps=1e-6,
            batch_first=True,
            norm_first=True,
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """tokens `[N, L, D]` -> pooled `[N, D]` (the CLS token's output)."""
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        out = super().forward(torch.cat([cls, tokens], dim=1))
        return out[:, 0]
