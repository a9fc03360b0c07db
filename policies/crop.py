"""Fit a clip to the policy's duration: a time window of its audio and the matching video frames."""
from __future__ import annotations

import dataclasses

import numpy as np

from common.types import Clip


def crop_clip(clip: Clip, start_s: float, duration_s: float) -> Clip:
    """`clip` seen from start_s for duration_s: audio cut or zero-padded to exactly
    round(duration_s * sample_rate) samples, frames from the one showing start_s on (at least one)."""
    sr = clip.sample_rate
    n = int(round(duration_s * sr))
    a0 = int(round(start_s * sr))
    audio = np.zeros((clip.audio.shape[0], n), dtype=np.float32)
    piece = clip.audio[:, a0 : a0 + n]
    audio[:, : piece.shape[1]] = piece
    f0 = min(int(np.floor(start_s * clip.fps + 1e-6)), max(clip.frames.shape[0] - 1, 0))
    f1 = max(f0 + 1, int(np.ceil((start_s + duration_s) * clip.fps - 1e-6)))
    return dataclasses.replace(clip, audio=audio, frames=clip.frames[f0:f1])


def random_crop(clip: Clip, duration_s: float, rng: np.random.Generator) -> Clip:
    """A uniformly placed duration_s window of the clip (the whole clip, padded, when shorter)."""
    slack = clip.duration - duration_s
    start = float(rng.uniform(0.0, slack)) if slack > 1e-9 else 0.0
    if clip.fps > 0:
        start = np.floor(start * clip.fps) / clip.fps  # start on a frame, so video and audio stay aligned
    return crop_clip(clip, start, duration_s)
