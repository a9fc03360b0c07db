"""aesthetic/signal: a production-quality grade in [0, 1] from five measurable defects.

A signal stand-in for Audiobox Aesthetics (which needs weights from a hub). Each term is a score
in [0, 1] (1 = no defect) computed on the mono mix at the working rate; the reward is their
weighted mean (weights are options and are renormalized to sum to 1):

- clipping: fraction of samples (either channel) with |x| >= `clip_level`;
  score = 1 - fraction / `max_clip_fraction`, floored at 0.
- level: RMS over the active frames (within 30 dB of the loudest frame) in dBFS; 1 inside
  [`level_low_dbfs`, `level_high_dbfs`], falling linearly to 0 over `level_falloff_db` outside.
- noise floor: the spread in dB between the loud (95th percentile) and quiet (10th percentile)
  frame RMS; score rises linearly from 0 at `snr_low_db` to 1 at `snr_high_db`. Hiss or hum
  between events lifts the quiet frames and lowers it.
- spectral balance: share of energy outside the useful band (`band_low_hz`..`band_high_hz`:
  rumble below, hiss/aliasing near Nyquist above); score = 1 - share / `max_out_of_band`.
- DC offset: |mean| / RMS of the signal; score = 1 - ratio / `max_dc_ratio`.
Audio whose loudest frame is below `silence_dbfs` gets reward 0 (`silent` = 1): silence is not a
well-produced sound. Diagnostics: each term's score and its raw measurement.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from common.types import Clip, Grade
from rewards import dsp
from rewards.base import Teacher, TeacherError, register_backend


@dataclass
class AestheticSignalOptions:
    """Options of the aesthetic/signal backend."""

    sample_rate: int = 16000
    """Working sample rate in Hz."""
    w_clipping: float = 0.35
    """Weight of the clipping score."""
    w_level: float = 0.2
    """Weight of the loudness-window score."""
    w_noise: float = 0.3
    """Weight of the noise-floor score."""
    w_spectral: float = 0.1
    """Weight of the spectral-balance score."""
    w_dc: float = 0.05
    """Weight of the DC-offset score."""
    clip_level: float = 0.99
    """|sample| at or above this counts as clipped."""
    max_clip_fraction: float = 0.01
    """Clipped-sample fraction at which the clipping score reaches 0."""
    level_low_dbfs: float = -35.0
    """Bottom of the target active-RMS window, dBFS."""
    level_high_dbfs: float = -10.0
    """Top of the target active-RMS window, dBFS."""
    level_falloff_db: float = 20.0
    """dB outside the window over which the level score falls from 1 to 0."""
    snr_low_db: float = 15.0
    """Loud-to-quiet frame spread (dB) scoring 0."""
    snr_high_db: float = 45.0
    """Loud-to-quiet frame spread (dB) scoring 1."""
    band_low_hz: float = 30.0
    """Energy below this frequency counts as rumble."""
    band_high_hz: float = 7500.0
    """Energy above this frequency counts as hiss (must be below half the working rate)."""
    max_out_of_band: float = 0.25
    """Out-of-band energy share at which the spectral score reaches 0."""
    max_dc_ratio: float = 0.2
    """|mean| / RMS at which the DC score reaches 0."""
    silence_dbfs: float = -70.0
    """Audio whose loudest frame RMS is below this (dBFS) is silent: reward 0."""


_TERMS = ("clipping", "level", "noise", "spectral", "dc")


def _ramp(x: float, zero_at: float, one_at: float) -> float:
    """Linear score: 0 at `zero_at`, 1 at `one_at`, clipped to [0, 1]."""
    return float(np.clip((x - zero_at) / (one_at - zero_at), 0.0, 1.0))


def quality_terms(audio: np.ndarray, sample_rate: int, o: AestheticSignalOptions) -> dict[str, float]:
    """Every term's raw measurement and score for one waveform (clipping is counted before resampling)."""
    x = np.asarray(audio, dtype=np.float32)
    clip_fraction = float(np.mean(np.abs(x) >= o.clip_level)) if x.size else 0.0
    mono = dsp.resample(dsp.to_mono(x), sample_rate, o.sample_rate).astype(np.float64)
    sample_rate = o.sample_rate
    hop = max(1, sample_rate // 100)
    rms_db = dsp.amplitude_to_db(dsp.frame_rms(mono, 2 * hop, hop))
    loudest = float(rms_db.max(initial=-120.0))
    out = {"loudest_dbfs": loudest, "silent": float(loudest < o.silence_dbfs)}
    active = rms_db[rms_db >= loudest - 30.0]
    level = float(dsp.amplitude_to_db(np.sqrt(np.mean(10 ** (active / 10.0))))) if active.size else -120.0
    spread = float(np.percentile(rms_db, 95) - np.percentile(rms_db, 10)) if rms_db.size else 0.0
    spectrum = dsp.stft_magnitude(mono, 1024, 4 * hop) ** 2
    freqs = np.fft.rfftfreq(1024, 1.0 / sample_rate)
    total = spectrum.sum()
    out_band = spectrum[(freqs < o.band_low_hz) | (freqs > o.band_high_hz)].sum() / total if total > 0 else 0.0
    rms = float(np.sqrt(np.mean(mono**2))) if mono.size else 0.0
    dc_ratio = abs(float(mono.mean())) / rms if rms > 0 else 0.0
    below = max(o.level_low_dbfs - level, level - o.level_high_dbfs, 0.0)
    out.update(
        clip_fraction=clip_fraction, clipping=_ramp(clip_fraction, o.max_clip_fraction, 0.0),
        level_dbfs=level, level=_ramp(below, o.level_falloff_db, 0.0),
        spread_db=spread, noise=_ramp(spread, o.snr_low_db, o.snr_high_db),
        out_of_band=float(out_band), spectral=_ramp(float(out_band), o.max_out_of_band, 0.0),
        dc_ratio=dc_ratio, dc=_ramp(dc_ratio, o.max_dc_ratio, 0.0),
    )
    return out


@register_backend("aesthetic", "signal", AestheticSignalOptions)
class AestheticSignalTeacher(Teacher):
    """Weighted mean of clipping, level, noise-floor, spectral-balance and DC scores."""

    reward_range = (0.0, 1.0)

    def __init__(self, options: AestheticSignalOptions | None = None):
        self.options = options or AestheticSignalOptions()
        o = self.options
        weights = np.array([getattr(o, f"w_{t}") for t in _TERMS], dtype=np.float64)
        if np.any(weights < 0) or weights.sum() <= 0:
            raise TeacherError(f"rewards.aesthetic.options: term weights must be >= 0 with a positive sum, got {weights}")
        if not 0 < o.band_low_hz < o.band_high_hz < o.sample_rate / 2:
            raise TeacherError(
                f"rewards.aesthetic.options: need 0 < band_low_hz < band_high_hz < sample_rate/2, "
                f"got {o.band_low_hz}, {o.band_high_hz}, {o.sample_rate}"
            )
        self.weights = dict(zip(_TERMS, weights / weights.sum()))
        """Normalized weight of each term."""

    def grade_one(self, audio: np.ndarray, sample_rate: int, clip: Clip) -> Grade:
        """Grade of one generated waveform (the clip is only used for messages)."""
        if np.asarray(audio).shape[-1] == 0:
            raise TeacherError(f"{self.describe()}: empty waveform for clip '{clip.clip_id}'")
        terms = quality_terms(audio, sample_rate, self.options)
        reward = 0.0 if terms["silent"] else float(sum(self.weights[t] * terms[t] for t in _TERMS))
        return Grade(float(np.clip(reward, 0.0, 1.0)), terms)

    def grade(self, audio: Sequence[np.ndarray], sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        if len(audio) != len(clips):
            raise TeacherError(f"{self.describe()}: {len(audio)} waveforms for {len(clips)} clips")
        return [self.grade_one(a, sample_rate, c) for a, c in zip(audio, clips)]
