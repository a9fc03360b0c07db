"""A random-weight stand-in for Synchformer's video encoder, for `prismrl data features` tests."""
from __future__ import annotations

import torch
from torch import nn


class TinyVideoEncoder(nn.Module):
    """Segments `[n, 3, 16, 224, 224]` -> `[n, 8, width]`: 2x32x32 tubelets, mean over space.
    Same contract as `Synchformer.video_features`; `calls` counts the forward passes."""

    def __init__(self, width: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.proj = nn.Conv3d(3, width, kernel_size=(2, 32, 32), stride=(2, 32, 32))
        self.calls = 0

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.proj(segments).mean(dim=(-2, -1)).transpose(1, 2)
