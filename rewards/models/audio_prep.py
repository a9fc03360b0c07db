"""Fitting generated waveforms to what an audio model was trained on (pure numpy, no model).

Model teachers receive stereo float32 `[2, N]` at the policy's sample rate; each model wants mono
audio at its own rate and of a fixed length. Cropping is deterministic (from the start), so the
same waveform always gets the same grade.
"""
from __future__ import annotations

import numpy as np

from rewards.base import TeacherError
from rewards.dsp import resample, to_mono


def checked_audio(audio: np.ndarray, clip_id: str, owner: str) -> np.ndarray:
    """float32 mono `[N]` or channel-first `[C, N]` audio, after checking it is non-empty and finite.

    Raises a TeacherError naming `owner` and `clip_id` for empty, wrongly shaped or non-finite audio.
    """
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise TeacherError(f"{owner}: clip '{clip_id}': expected audio of shape [2, N] with N > 0, got {x.shape}")
    if not np.isfinite(x).all():
        raise TeacherError(f"{owner}: clip '{clip_id}': audio contains NaN or infinite samples")
    return x


def mono_at(audio: np.ndarray, sample_rate: int, target_rate: int, clip_id: str, owner: str) -> np.ndarray:
    """Mono float32 `[N]` at `target_rate` from mono `[N]` or channel-first `[C, N]` audio (`checked_audio` first)."""
    return resample(to_mono(checked_audio(audio, clip_id, owner)), sample_rate, target_rate)


def crop_start(x: np.ndarray, length: int) -> np.ndarray:
    """The first `length` samples of `x` (all of it when shorter)."""
    return x[..., :length]


def tile_to_length(x: np.ndarray, length: int) -> np.ndarray:
    """`x` repeated end to end and cut to exactly `length` samples (MS-CLAP's padding of short audio)."""
    if x.shape[-1] == 0:
        raise ValueError("tile_to_length: empty input")
    reps = -(-length // x.shape[-1])
    return np.tile(x, reps)[..., :length]


def fixed_windows(x: np.ndarray, window: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of mono `x`, each zero-padded to `window` samples, and the valid length of each.

    Window starts are 0, hop, 2*hop, ... < len(x) (Audiobox Aesthetics' inference layout).
    Returns (`[W, window]` float32, `[W]` int64 valid lengths).
    """
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"fixed_windows: expected non-empty mono [N], got shape {x.shape}")
    starts = np.arange(0, x.size, hop)
    wins = np.zeros((starts.size, window), dtype=np.float32)
    lengths = np.zeros(starts.size, dtype=np.int64)
    for i, s in enumerate(starts):
        piece = x[s : s + window]
        wins[i, : piece.size] = piece
        lengths[i] = piece.size
    return wins, lengths


def weighted_window_mean(values: np.ndarray, lengths: np.ndarray, owners: np.ndarray, n_items: int) -> np.ndarray:
    """Per item, the mean of its windows' `values` weighted by each window's valid length.

    values, lengths, owners: `[W]`, one entry per window; owners[i] is the item index of window i.
    """
    out = np.zeros(n_items, dtype=np.float64)
    for item in range(n_items):
        sel = owners == item
        out[item] = np.average(values[sel], weights=lengths[sel])
    return out
