"""PrismAudio's DiffusionTransformer (`model.model.*`): the velocity of a latent [B, C, T] at time t.

- The timestep (in [0, 1]) goes through 256 Fourier features and an MLP into one token that is
  prepended to the sequence (no adaLN); its output position is dropped.
- Cross-attention context: the conditioner outputs of the video and text features, concatenated
  along the sequence (video first), through `to_cond_embed`.
- The video stream (`to_add_embed`, linearly interpolated to T frames) and the sync stream
  (`to_sync_embed`, already T frames) are added to the projected latent through sigmoid gates.
- 1x1 residual convolutions before and after the transformer (starting at zero).

An all-zero condition (every stream zero) is the unconditional branch of classifier-free guidance.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from policies.prismaudio.layers import FourierFeatures
from policies.prismaudio.transformer import ContinuousTransformer

TIMESTEP_FEATURES = 256
"""Fourier features of the timestep."""


def _mlp(dim_in: int, dim: int, bias: bool = False) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim_in, dim, bias=bias), nn.SiLU(), nn.Linear(dim, dim, bias=bias))


def interpolate_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """[B, N, D] -> [B, frames, D], linear, align_corners=False (identity when N == frames)."""
    if x.shape[1] == frames:
        return x
    return F.interpolate(x.transpose(1, 2), size=frames, mode="linear", align_corners=False).transpose(1, 2)


class DiffusionTransformer(nn.Module):
    """The DiT; `empty_clip_feat` / `empty_sync_feat` are in the checkpoint but unused."""

    def __init__(self, io_channels: int, embed_dim: int, depth: int, num_heads: int, cond_dim: int):
        super().__init__()
        self.empty_clip_feat = nn.Parameter(torch.zeros(1, embed_dim))
        self.empty_sync_feat = nn.Parameter(torch.zeros(1, embed_dim))
        self.timestep_features = FourierFeatures(1, TIMESTEP_FEATURES)
        self.to_timestep_embed = _mlp(TIMESTEP_FEATURES, embed_dim, bias=True)
        self.to_cond_embed = _mlp(cond_dim, cond_dim)
        self.to_add_embed = _mlp(cond_dim, cond_dim)
        self.to_sync_embed = _mlp(cond_dim, cond_dim)
        self.transformer = ContinuousTransformer(
            embed_dim, depth, dim_heads=embed_dim // num_heads, dim_in=io_channels, dim_out=io_channels,
            dim_context=cond_dim,
        )
        self.preprocess_conv = nn.Conv1d(io_channels, io_channels, 1, bias=False)
        self.postprocess_conv = nn.Conv1d(io_channels, io_channels, 1, bias=False)
        nn.init.zeros_(self.preprocess_conv.weight)
        nn.init.zeros_(self.postprocess_conv.weight)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        context_mask: Optional[torch.Tensor] = None,
        add_cond: Optional[torch.Tensor] = None,
        sync_cond: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x [B, C, T]; t [B]; context [B, M, cond_dim]; context_mask [B, M] bool (True = attend);
        add_cond [B, N, cond_dim] (any N); sync_cond [B, T, cond_dim]. Returns v [B, C, T]."""
        dtype = self.preprocess_conv.weight.dtype
        x, t = x.to(dtype), t.to(dtype)
        context = self.to_cond_embed(context.to(dtype))
        prepend = self.to_timestep_embed(self.timestep_features(t[:, None]))[:, None, :]
        x = (self.preprocess_conv(x) + x).transpose(1, 2)
        frames = x.shape[1]
        if add_cond is not None:
            add_cond = interpolate_frames(self.to_add_embed(add_cond.to(dtype)), frames)
        if sync_cond is not None:
            sync_cond = self.to_sync_embed(sync_cond.to(dtype))
            if sync_cond.shape[1] != frames:
                raise ValueError(f"sync stream has {sync_cond.shape[1]} frames, the latent {frames}")
        out = self.transformer(x, prepend, context, context_mask, add_cond, sync_cond)
        out = out[:, prepend.shape[1]:].transpose(1, 2)
        return self.postprocess_conv(out) + out
