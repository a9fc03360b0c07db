"""Audio preprocessing as Synchformer was trained: 16 kHz mono, 0.64 s segments, AST-normalized log-mel.

Per segment (10,240 samples, step 5,120): power mel spectrogram with torchaudio's
`MelSpectrogram(sample_rate=16000, n_fft=1024, win_length=400, hop_length=160, n_mels=128)`
defaults (periodic Hann window centred in the FFT frame, reflect padding, HTK mel scale, no filter
normalization) -> `log(mel + 1e-6)` -> padded with zeros to 66 frames -> `(x - mean) / (2 * std)`
with AudioSet AST statistics mean -4.2677393, std 4.5689974 (av-benchmark av_bench/extract.py:23-37;
Synchformer configs/sync.yaml:183-197). Written in plain torch (torchaudio is not a dependency);
`rewards.dsp.log_mel` is a different recipe (area-normalized filters, symmetric window, zero
padding), so it would shift the statistics the model was trained on.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from rewards.models.synchformer.segments import AUDIO_SR, SAMPLE_STEP, SAMPLES_PER_SEGMENT

N_FFT = 1024
WIN_LENGTH = 400
HOP = 160
N_MELS = 128
SPEC_FRAMES = 66
AST_MEAN = -4.2677393
AST_STD = 4.5689974
LOG_OFFSET = 1e-6


@functools.lru_cache(maxsize=4)
def mel_filterbank(sample_rate: int = AUDIO_SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> torch.Tensor:
    """HTK-scale triangular filters `[n_fft // 2 + 1, n_mels]`, peak 1, no area normalization (torchaudio's)."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    freqs = np.linspace(0.0, sample_rate // 2, n_fft // 2 + 1)
    edges = 700.0 * (10.0 ** (np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2) / 2595.0) - 1.0)
    widths = np.diff(edges)
    slopes = edges[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    return torch.from_numpy(np.maximum(0.0, np.minimum(down, up))).float()


def log_mel_segments(wave: torch.Tensor) -> torch.Tensor:
    """Segments `[S, 10240]` of 16 kHz mono audio -> normalized log-mels `[S, 128, 66]`."""
    spec = torch.stft(
        wave,
        n_fft=N_FFT,
        hop_length=HOP,
        win_length=WIN_LENGTH,
        window=torch.hann_window(WIN_LENGTH, periodic=True, device=wave.device),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()  # [S, 513, frames]
    mel = torch.einsum("sft,fm->smt", power, mel_filterbank().to(wave.device))
    x = torch.log(mel + LOG_OFFSET)
    frames = x.shape[-1]
    if frames < SPEC_FRAMES:
        x = torch.nn.functional.pad(x, (0, SPEC_FRAMES - frames), value=0.0)
    x = x[..., :SPEC_FRAMES]
    return (x - AST_MEAN) / (2.0 * AST_STD)


def audio_segments(wave_16k: np.ndarray, segments: list[int]) -> torch.Tensor:
    """The listed 0.64 s segments of a mono 16 kHz waveform as model input `[S, 128, 66]`.

    Audio shorter than the last segment's end is zero-padded (a generated clip may be shorter
    than its video).
    """
    wave = torch.from_numpy(np.asarray(wave_16k, dtype=np.float32))
    if wave.ndim != 1:
        raise ValueError(f"audio_segments: expected mono [N] audio, got shape {tuple(wave.shape)}")
    end = max(segments) * SAMPLE_STEP + SAMPLES_PER_SEGMENT
    if wave.numel() < end:
        wave = torch.nn.functional.pad(wave, (0, end - wave.numel()))
    chunks = torch.stack([wave[s * SAMPLE_STEP : s * SAMPLE_STEP + SAMPLES_PER_SEGMENT] for s in segments])
    return log_mel_segments(chunks)
