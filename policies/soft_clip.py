"""The output stage of every policy: a soft clipper that keeps waveforms inside full scale.

A decoded waveform can overshoot [-1, 1] on a loud transient (a sampler's error, guidance). A
hard clamp there flattens the peak (audible distortion, and the aesthetic teacher counts clipped
samples). `soft_clip` leaves |x| <= knee untouched and bends larger magnitudes smoothly towards
`ceiling` (value and slope continuous at the knee), so peaks are rounded, never cut flat.
"""
from __future__ import annotations

import torch

SOFT_CLIP_KNEE = 0.9
"""Magnitude up to which samples pass unchanged."""
SOFT_CLIP_CEILING = 0.98
"""Largest magnitude out (approached smoothly; reached only in floating-point saturation)."""


def soft_clip(x: torch.Tensor, knee: float = SOFT_CLIP_KNEE, ceiling: float = SOFT_CLIP_CEILING) -> torch.Tensor:
    """x where |x| <= knee; sign(x) * (knee + r * tanh((|x| - knee) / r)), r = ceiling - knee, above."""
    if not 0.0 < knee < ceiling:
        raise ValueError(f"soft_clip: need 0 < knee < ceiling, got knee={knee}, ceiling={ceiling}")
    room = ceiling - knee
    mag = x.abs()
    bent = knee + room * torch.tanh((mag - knee) / room)
    return torch.where(mag <= knee, x, torch.sign(x) * bent)
