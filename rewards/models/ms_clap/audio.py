"""Fitting a generated waveform to MS-CLAP's input: 44.1 kHz, one channel, exactly 7 s (numpy only).

Resampling is PrismRL's polyphase resampler (`rewards.dsp.resample`). Channels are either averaged
(`mono`, PrismRL's default) or, as msclap's loader does (`reshape(-1)` of `[C, N]`), laid end to end
(`concat`: left then right, twice as long). Then audio longer than 7 s is cut to its first 7 s and
shorter audio is repeated end to end to 7 s. msclap crops long audio at a random start; the crop here
is deterministic, so the same waveform always gets the same grade.
"""
from __future__ import annotations

import numpy as np

from rewards.dsp import resample, to_mono
from rewards.models.audio_prep import checked_audio, crop_start, tile_to_length

CHANNEL_MODES: tuple[str, ...] = ("mono", "concat")
"""`mono`: mean of the channels; `concat`: channels end to end, as msclap's loader (PrismAudio)."""


def channels_to_one(x: np.ndarray, mode: str) -> np.ndarray:
    """`[N]` from `[N]` or `[C, N]`: the channel mean (`mono`) or the channels one after another (`concat`)."""
    if mode not in CHANNEL_MODES:
        raise ValueError(f"channels_to_one: mode '{mode}' is not one of {', '.join(CHANNEL_MODES)}")
    x = np.asarray(x, dtype=np.float32)
    return to_mono(x) if mode == "mono" else x.reshape(-1)


def fit_clip_audio(audio: np.ndarray, sample_rate: int, target_rate: int, n_samples: int, channels: str,
                   clip_id: str, owner: str) -> np.ndarray:
    """float32 `[n_samples]` at `target_rate`: checked, resampled per channel, channels joined, cropped or tiled."""
    x = resample(checked_audio(audio, clip_id, owner), sample_rate, target_rate)
    return tile_to_length(crop_start(channels_to_one(x, channels), n_samples), n_samples)
