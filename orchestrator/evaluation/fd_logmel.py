"""Fréchet distance between generated and ground-truth audio, on an offline embedding.

Embedding (`logmel_embedding`): the audio mixed to mono and resampled to 16 kHz, its log-mel
spectrogram (32 mel bands, 50 Hz-8 kHz, 32 ms windows, 10 ms hop, rewards.dsp.log_mel), and per band
the mean and the standard deviation over time: 64 numbers describing the timbre and how it changes.
No model, no download, the same numbers everywhere. `frechet_distance` is the usual
|mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2) between Gaussians fitted to the two sets
(as in FAD / FID), computed with symmetric eigendecompositions so it stays real and finite when a
covariance is singular (fewer clips than dimensions).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rewards import dsp

EMBEDDING_SR = 16000
"""Sample rate of the embedding's input."""
N_MELS = 32
"""Mel bands; the embedding has 2 * N_MELS dimensions."""


def logmel_embedding(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """[2 * N_MELS] float64: per-band mean and std over time of the log-mel spectrogram of `audio`."""
    x = dsp.resample(dsp.to_mono(audio), sample_rate, EMBEDDING_SR)
    if x.size < 512:
        x = np.pad(x, (0, 512 - x.size))
    mel = dsp.log_mel(x, EMBEDDING_SR, n_mels=N_MELS, n_fft=512, hop=EMBEDDING_SR // 100, fmin=50.0)
    return np.concatenate([mel.mean(axis=1), mel.std(axis=1)]).astype(np.float64)


def gaussian_stats(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) of embeddings [N, D]; N >= 2."""
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2 or e.shape[0] < 2:
        raise ValueError(f"Fréchet distance needs at least 2 embeddings per set, got shape {e.shape}")
    return e.mean(axis=0), np.cov(e, rowvar=False)


def sqrtm_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative eigenvalues clipped to 0)."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2); 0 for equal Gaussians."""
    s1 = sqrtm_psd(cov1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(s1 @ cov2 @ s1), 0.0, None)).sum()
    return float(max(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * cross, 0.0))


def frechet_audio_distance(generated: Sequence[np.ndarray], reference: Sequence[np.ndarray], sample_rate: int,
                           reference_rate: int | None = None) -> float:
    """Fréchet distance between the log-mel embeddings of two sets of waveforms ([C, N] or [N] each)."""
    gen = np.stack([logmel_embedding(a, sample_rate) for a in generated])
    ref = np.stack([logmel_embedding(a, reference_rate or sample_rate) for a in reference])
    return frechet_distance(*gaussian_stats(gen), *gaussian_stats(ref))
