"""The conditioners (`conditioner.conditioners.*`): MLPs from cached features to the DiT's width.

- `video_features` and `text_features`: Linear -> SiLU -> Linear, no biases (Cond_MLP).
- `sync_features`: a position embedding within each 8-row Synchformer segment, the same MLP from
  768 to 1024, then linear interpolation to int(194 * rows / 216) frames (the latent's frame
  count). Its `proj_out` exists in the checkpoint (the reference's base class makes it when the
  widths differ) but is never used.
"""
from __future__ import annotations

import torch
from torch import nn

from policies.prismaudio.dit import interpolate_frames

SYNC_SEGMENT = 8
"""Synchformer feature rows per 16-frame video segment."""

CONDITION_KEYS = ("video_features", "text_features", "sync_features")
"""Cached feature keys in the conditioner's (and checkpoint's) order."""


def _mlp(dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, out, bias=False), nn.SiLU(), nn.Linear(out, out, bias=False))


def sync_frames_to_latent(rows: int) -> int:
    """Latent frames the sync stream is interpolated to: int(194 * rows / 216), as the reference."""
    return int(194 * rows / 216)


class CondMLP(nn.Module):
    """[B, L, dim] -> [B, L, out]."""

    def __init__(self, dim: int, out: int):
        super().__init__()
        if dim != out:
            raise ValueError(f"CondMLP: the checkpoint layout has no proj_out for {dim} -> {out}")
        self.embedder = _mlp(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedder(x)


class SyncMLP(nn.Module):
    """[B, L, dim] (L a multiple of 8) -> [B, int(194 L / 216), out]."""

    def __init__(self, dim: int, out: int):
        super().__init__()
        self.proj_out = nn.Linear(dim, out)  # in the checkpoint, unused by the forward
        self.embedder = _mlp(dim, out)
        self.sync_pos_emb = nn.Parameter(torch.zeros(1, 1, SYNC_SEGMENT, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, rows, dim = x.shape
        if rows % SYNC_SEGMENT:
            raise ValueError(f"sync_features has {rows} rows, not a multiple of {SYNC_SEGMENT}")
        x = (x.reshape(b, rows // SYNC_SEGMENT, SYNC_SEGMENT, dim) + self.sync_pos_emb.to(x.dtype)).flatten(1, 2)
        return interpolate_frames(self.embedder(x), sync_frames_to_latent(rows))


class MultiConditioner(nn.Module):
    """The three conditioners under `conditioners.<key>`."""

    def __init__(self, video_dim: int, text_dim: int, sync_dim: int, out: int):
        super().__init__()
        self.conditioners = nn.ModuleDict({
            "video_features": CondMLP(video_dim, out),
            "text_features": CondMLP(text_dim, out),
            "sync_features": SyncMLP(sync_dim, out),
        })

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per key: the conditioner output of features[key] (a batch)."""
        dtype = self.conditioners["video_features"].embedder[0].weight.dtype
        return {k: self.conditioners[k](features[k].to(dtype)) for k in CONDITION_KEYS}
