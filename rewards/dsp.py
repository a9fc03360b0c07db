"""Signal-processing building blocks for the signal teachers (numpy/scipy only, no torch).

Conventions: audio is float, mono `[N]` or channel-first stereo `[2, N]`; spectrogram-like outputs
are `[bins, frames]`; frame `i` of every frame-based function is centred on sample `i * hop`, so
frame times are `i / frame_rate` seconds.
"""
from __future__ import annotations

from functools import lru_cache
from math import gcd
from typing import TYPE_CHECKING

import numpy as np
from scipy.fft import next_fast_len

# scipy.signal (~1 s of CPU to import, with scipy.stats) is imported where it is used: resampling
# between different rates and `gcc_phat`; a reward replica whose teacher needs neither never loads it.
if TYPE_CHECKING:
    from scipy.signal import CZT

_EPS = 1e-12


def to_mono(x: np.ndarray) -> np.ndarray:
    """Mono float32 `[N]` from mono `[N]` or channel-first `[C, N]` audio (mean over channels)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return x
    if x.ndim == 2:
        return x.mean(axis=0)
    raise ValueError(f"to_mono: expected audio of shape [N] or [C, N], got shape {x.shape}")


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample along the last axis from `sr_in` to `sr_out` Hz (polyphase, scipy's resample_poly)."""
    x = np.asarray(x, dtype=np.float32)
    sr_in, sr_out = int(sr_in), int(sr_out)
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"resample: sample rates must be positive, got {sr_in} -> {sr_out}")
    if sr_in == sr_out:
        return x
    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g, axis=-1).astype(np.float32)


def frame_signal(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Frames `[T, n_fft]` of mono `x`, zero-padded by `n_fft // 2` so frame `i` is centred on `i * hop`."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"frame_signal: expected mono [N], got shape {x.shape}")
    padded = np.pad(x, (n_fft // 2, n_fft // 2))
    if padded.size < n_fft:
        padded = np.pad(padded, (0, n_fft - padded.size))
    return np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]


def stft_magnitude(x: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """Magnitude spectrogram `[n_fft // 2 + 1, T]` of mono `x` with a Hann window."""
    frames = frame_signal(x, n_fft, hop) * np.hanning(n_fft).astype(np.float32)
    return np.abs(np.fft.rfft(frames, axis=-1)).T.astype(np.float32)


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filters `[n_mels, n_fft // 2 + 1]`, each normalized to unit area."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"mel_filterbank: need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}")
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lo) / np.maximum(mid - lo, _EPS)
    down = (hi - freqs[None, :]) / np.maximum(hi - mid, _EPS)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb /= np.maximum(fb.sum(axis=1, keepdims=True), _EPS)
    return fb.astype(np.float32)


def log_mel(
    x: np.ndarray,
    sample_rate: int,
    n_mels: int = 64,
    n_fft: int = 1024,
    hop: int | None = None,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Natural-log mel power spectrogram `[n_mels, T]` of mono or stereo audio (stereo is mixed to mono).

    hop: frame step in samples; default `sample_rate // 100` (100 frames per second).
    """
    hop = hop or max(1, sample_rate // 100)
    power = stft_magnitude(to_mono(x), n_fft, hop) ** 2
    return np.log(mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax) @ power + 1e-10).astype(np.float32)


def onset_envelope(
    x: np.ndarray, sample_rate: int, hop: int | None = None, n_fft: int = 1024, n_mels: int = 64
) -> tuple[np.ndarray, float]:
    """Spectral-flux onset strength of mono or stereo audio.

    Per frame: the sum over mel bands of the positive increase of log-compressed mel power from the
    previous frame (frame 0 has strength 0). Stereo is mixed to mono first.
    Returns `(env [T], frame_rate)`; `env[i]` belongs to time `i / frame_rate` s.
    hop: frame step in samples; default `sample_rate // 100` (100 frames per second).
    """
    hop = hop or max(1, sample_rate // 100)
    power = stft_magnitude(to_mono(x), n_fft, hop) ** 2
    mel = mel_filterbank(sample_rate, n_fft, n_mels) @ power
    compressed = np.log1p(1e4 * mel)
    flux = np.maximum(0.0, np.diff(compressed, axis=1)).sum(axis=0)
    env = np.concatenate([[0.0], flux]).astype(np.float32)
    return env, sample_rate / float(hop)


@lru_cache(maxsize=32)
def _lag_transform(n_bins: int, n: int, max_shift: int, interp: int) -> CZT:
    """Chirp-z transform evaluating sum_k X_k exp(2 pi i k tau / n) at tau = (-max_shift..max_shift) / interp."""
    from scipy.signal import CZT

    first_lag = -max_shift / interp
    return CZT(n_bins, m=2 * max_shift + 1, w=np.exp(2j * np.pi / (interp * n)), a=np.exp(-2j * np.pi * first_lag / n))


DEFAULT_PHAT_FLOOR_DB = 30.0
"""Default floor of the phase transform, in dB below the strongest cross-spectrum bin."""


def gcc_phat(
    left: np.ndarray, right: np.ndarray, sample_rate: int, max_delay_s: float = 0.001, interp: int = 16,
    floor_db: float = DEFAULT_PHAT_FLOOR_DB,
) -> tuple[np.ndarray, np.ndarray]:
    """GCC-PHAT cross-correlation of two channels, upsampled `interp` times.

    The phase transform divides each cross-spectrum bin by its magnitude, but never by less than
    the strongest bin's magnitude `floor_db` dB down (a regularised PHAT): bins far below the
    audible sources (a -50 dB noise bed, a codec's out-of-band residue) are weighted by their
    level instead of counting as much as the source, whose delay is what is measured.

    Returns `(lags_s, curve)`: `curve[k]` is the phase-transform-weighted correlation at lag
    `lags_s[k]` seconds, for lags within +-`max_delay_s`. A positive lag means `right` lags `left`
    (`right(t) = left(t - lag)`), i.e. the sound reached the left ear first: the source is on the left.
    Silent input gives an all-zero curve.
    """
    left = np.asarray(left, dtype=np.float64)
    right = np.asarray(right, dtype=np.float64)
    if left.ndim != 1 or left.shape != right.shape:
        raise ValueError(f"gcc_phat: expected two mono channels of equal length, got {left.shape} and {right.shape}")
    interp = max(1, int(interp))
    n = next_fast_len(2 * left.size, real=True)  # zero padding: linear (not circular) correlation
    cross = np.conj(np.fft.rfft(left, n)) * np.fft.rfft(right, n)
    mag = np.abs(cross)
    floor = 10.0 ** (-float(floor_db) / 20.0) if floor_db is not None else 0.0
    cross = cross / np.maximum(mag, _EPS + max(floor, 1e-9) * mag.max(initial=0.0))
    # Inverse DFT evaluated only at the lags wanted, -max_shift..+max_shift in steps of 1/interp
    # samples, by a chirp-z transform (the band-limited interpolation an n*interp irfft would give).
    max_shift = min(int(round(interp * sample_rate * max_delay_s)), n * interp // 2)
    hermitian = np.full(cross.size, 2.0)
    hermitian[0] = 1.0
    if n % 2 == 0:
        hermitian[-1] = 1.0
    curve = _lag_transform(cross.size, n, max_shift, interp)(hermitian * cross / n).real
    lags = np.arange(-max_shift, max_shift + 1) / float(interp * sample_rate)
    return lags, curve


PEAK_MODES: tuple[str, ...] = ("parabolic", "integer_abs")
"""How a GCC-PHAT curve's peak becomes a delay: `parabolic` (PrismRL: the largest signed value,
refined by a parabola through it and its neighbours) or `integer_abs` (PrismAudio's reward, i.e.
StereoCRW's `gcc_phat`: the grid lag of the largest absolute value, no refinement)."""


def gcc_peak_lag(lags: np.ndarray, curve: np.ndarray, mode: str = "parabolic") -> float:
    """The delay (in the unit of `lags`, an evenly spaced ascending grid) at the peak of `curve`.

    `parabolic`: argmax of the signed curve, shifted by at most half a grid step to the vertex of the
    parabola through the peak and its two neighbours (none at the grid's ends or on a flat top).
    `integer_abs`: the grid lag of argmax |curve|, so a strongly negative correlation (one channel
    phase-inverted) counts as a peak too. Ties go to the most negative lag in both modes. An all-zero
    curve gives 0.0.
    """
    if mode not in PEAK_MODES:
        raise ValueError(f"gcc_peak_lag: peak mode '{mode}' is not one of {PEAK_MODES}")
    curve = np.asarray(curve, dtype=np.float64)
    if curve.shape != np.shape(lags) or curve.ndim != 1 or curve.size == 0:
        raise ValueError(f"gcc_peak_lag: lags {np.shape(lags)} and curve {curve.shape} must be equal, non-empty 1-D")
    if not np.any(curve):
        return 0.0
    if mode == "integer_abs":
        return float(lags[int(np.argmax(np.abs(curve)))])
    k = int(np.argmax(curve))
    step = lags[1] - lags[0] if lags.size > 1 else 0.0
    shift = 0.0
    if 0 < k < curve.size - 1:
        a, b, c = curve[k - 1], curve[k], curve[k + 1]
        denom = a - 2.0 * b + c
        if denom < 0:
            shift = float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))
    return float(lags[k] + shift * step)


def gcc_phat_itd(
    left: np.ndarray, right: np.ndarray, sample_rate: int, max_delay_s: float = 0.001, interp: int = 16,
    floor_db: float = DEFAULT_PHAT_FLOOR_DB, peak: str = "parabolic",
) -> float:
    """Inter-channel time delay in seconds by GCC-PHAT, sub-sample by upsampling plus a parabolic peak fit.

    Sign: positive when `right` lags `left` (the source is on the left), negative when the source is
    on the right. Bounded by +-`max_delay_s`. Silent or all-zero input returns 0.0 (finite).
    `floor_db`: see `gcc_phat` (`inf`: the plain phase transform, bar a -180 dB floor). `peak`: see `gcc_peak_lag`;
    PrismAudio's reward is `interp=1, floor_db=inf, peak='integer_abs'`.
    """
    lags, curve = gcc_phat(left, right, sample_rate, max_delay_s, interp, floor_db)
    return gcc_peak_lag(lags, curve, peak)


def pick_onsets(env: np.ndarray, frame_rate: float, threshold: float = 0.3, min_gap_s: float = 0.1) -> np.ndarray:
    """Onset times in seconds: local maxima of an onset envelope above `threshold * max(env)`.

    Peaks closer than `min_gap_s` to a stronger kept peak are discarded. An all-zero envelope has no onsets.
    """
    env = np.asarray(env, dtype=np.float64)
    peak = env.max(initial=0.0)
    if peak <= 0:
        return np.zeros(0)
    left = np.concatenate([[-np.inf], env[:-1]])
    right = np.concatenate([env[1:], [-np.inf]])
    candidates = np.flatnonzero((env >= left) & (env > right) & (env >= threshold * peak))
    kept: list[int] = []
    min_gap = max(1, int(round(min_gap_s * frame_rate)))
    for i in candidates[np.argsort(-env[candidates], kind="stable")]:
        if all(abs(int(i) - j) >= min_gap for j in kept):
            kept.append(int(i))
    return np.sort(np.array(kept, dtype=np.float64)) / frame_rate


def frame_rms(x: np.ndarray, frame_len: int, hop: int) -> np.ndarray:
    """RMS of each centred frame `[T]` of mono `x` (same framing as `frame_signal`)."""
    frames = frame_signal(x, frame_len, hop).astype(np.float64)
    return np.sqrt(np.mean(frames**2, axis=-1))


def amplitude_to_db(a, floor_db: float = -120.0):
    """`20 * log10(a)` clipped below at `floor_db` (so silence stays finite)."""
    return np.maximum(20.0 * np.log10(np.maximum(np.asarray(a, dtype=np.float64), 1e-12)), floor_db)
