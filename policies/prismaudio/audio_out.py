"""What PrismAudio's reference grades: the decoded batch divided by its joint peak, as 16-bit levels.

The reference's rollout decodes a batch, divides it by max |x| over the WHOLE batch, clamps to
[-1, 1], truncates x * 32767 to integers (int32, then int16) and its reward code reads them back as
x / 32767. So one loud sample of a batch makes its batch mates quieter. `reference_levels` is that
transform (pure, tested on its own); `policy.prismaudio.audio_out=reference` applies it to each
decoded batch (a rollout group, an evaluation batch) instead of PrismRL's per-waveform soft clip.
"""
from __future__ import annotations

import torch

AUDIO_OUT = ("soft_clip", "reference")
"""Allowed values of policy.prismaudio.audio_out."""
INT16_SCALE = 32767.0
"""Full scale of the reference's integer audio (written as x * 32767, read as q / 32767)."""


def reference_levels(wave: torch.Tensor) -> torch.Tensor:
    """wave [B, C, N] -> float32 [B, C, N]: trunc(clamp(wave / max|wave|, -1, 1) * 32767) / 32767,
    the peak taken jointly over the batch (an all-zero batch stays zero)."""
    w = wave.float()
    peak = w.abs().max()
    if peak > 0:
        w = w / peak
    return torch.trunc(w.clamp(-1.0, 1.0) * INT16_SCALE) / INT16_SCALE
