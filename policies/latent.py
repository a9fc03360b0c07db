"""The audio latent: a fixed, linear, orthonormal stereo transform (no neural codec to train).

encode (waveform [B, 2, N] -> latent [B, F, C]), with F = N / patch frames and C = latent_channels:
  1. a circular MDCT of each channel (sine window of 2*patch, hop `patch`): an orthonormal lapped
     transform, so frames overlap and dropping coefficients gives no blocking clicks;
  2. the same fixed orthonormal projection `basis` [C/2, patch] applied to the left and the right
     frame. `fit_stats` (run by `prismrl pretrain` before its first step) sets it to the
     principal components of the training audio, pooled over both ears, which keeps the
     strongest bands wherever they are; L and R share the subspace, so the delay between the
     ears (the ITD) survives for audio like the training audio (tested with GCC-PHAT). Before
     any fit it is a placeholder that keeps the lowest C/2 MDCT bins (a band limit of
     sample_rate * C / (4 * patch) Hz); its hard cut leaks out-of-band residue that a
     phase-only ITD estimator (GCC-PHAT) can be fooled by, so always fit before use;
  3. mid/side of the projected L/R coefficients (orthonormal), giving [mid C/2, side C/2];
  4. per-channel standardisation (`mean`, `std`) to about unit std on the training data.
decode is the transpose of steps 1-3 after undoing 4, so decode(encode(x)) is the orthogonal
projection of x onto the kept subspace; with C = 2 * patch it is exact. `basis`, `mean` and `std`
are buffers saved with the model's weights.
"""
from __future__ import annotations

import math

import torch
from torch import nn

DEFAULT_AUDIO_RMS = 0.1
"""Assumed RMS of a waveform channel before `fit_stats` has seen data (sets the default std)."""


def mdct_basis(patch: int) -> torch.Tensor:
    """Windowed MDCT analysis matrix [patch, 2*patch] (sine window, orthonormal with TDAC)."""
    n = torch.arange(2 * patch, dtype=torch.float64)
    k = torch.arange(patch, dtype=torch.float64)[:, None]
    window = torch.sin(math.pi * (n + 0.5) / (2 * patch))
    cos = torch.cos(math.pi / patch * (n + 0.5 + patch / 2) * (k + 0.5))
    return (math.sqrt(2.0 / patch) * window * cos).float()


def mdct(x: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Circular MDCT of x [..., N] -> [..., N/patch, patch]."""
    patch = basis.shape[0]
    frames = x.shape[-1] // patch
    wrapped = torch.cat([x, x[..., :patch]], -1)
    blocks = wrapped.unfold(-1, 2 * patch, patch)[..., :frames, :]
    return blocks @ basis.T


def imdct(coef: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Inverse (transpose) of `mdct`: [..., F, patch] -> [..., F*patch] by circular overlap-add."""
    patch = basis.shape[0]
    frames = coef.shape[-2]
    blocks = coef @ basis  # [..., F, 2P]
    first, second = blocks[..., :patch], blocks[..., patch:]
    out = first + torch.roll(second, shifts=1, dims=-2)
    return out.reshape(*coef.shape[:-2], frames * patch)


class StandardisedLatent(nn.Module):
    """What the built-in codecs share: a raw latent `_raw(audio)` [B, F, C] of `patch`-sample frames,
    standardised per channel by the `mean` and `std` buffers that `fit_stats` sets."""

    patch: int
    channels: int

    def frames_for(self, num_samples: int) -> int:
        """Latent frames of a waveform of num_samples (must be a multiple of patch)."""
        if num_samples % self.patch:
            raise ValueError(f"waveform length {num_samples} is not a multiple of policy.patch={self.patch}")
        return num_samples // self.patch

    def _raw(self, audio: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Normalised latent [B, F, C] of stereo waveforms [B, 2, N]."""
        return (self._raw(audio) - self.mean) / self.std

    def _unstandardised(self, latent: torch.Tensor) -> torch.Tensor:
        """The raw latent of a normalised one (checked to have the codec's channel count)."""
        if latent.shape[-1] != self.channels:
            raise ValueError(f"latent has {latent.shape[-1]} channels, the codec expects policy.latent_channels={self.channels}")
        return latent.float() * self.std + self.mean


class StereoBandLatent(StandardisedLatent):
    """Waveform <-> latent codec described in the module docstring."""

    def __init__(self, sample_rate: int, patch: int, latent_channels: int):
        super().__init__()
        if latent_channels % 2 or latent_channels < 2:
            raise ValueError(f"policy.latent_channels must be even and >= 2 (mid + side), got {latent_channels}")
        if latent_channels > 2 * patch:
            raise ValueError(
                f"policy.latent_channels={latent_channels} exceeds 2*policy.patch={2 * patch}: "
                "a frame cannot hold more numbers than its stereo samples"
            )
        self.sample_rate = sample_rate
        self.patch = patch
        self.channels = latent_channels
        self.half = latent_channels // 2
        self.register_buffer("analysis", mdct_basis(patch), persistent=False)
        self.register_buffer("basis", torch.eye(patch)[: self.half].clone())
        self.register_buffer("mean", torch.zeros(latent_channels))
        self.register_buffer("std", torch.full((latent_channels,), DEFAULT_AUDIO_RMS))

    def _coefficients(self, audio: torch.Tensor) -> torch.Tensor:
        """MDCT frames [B, 2, F, patch] of stereo waveforms."""
        if audio.dim() != 3 or audio.shape[1] != 2:
            raise ValueError(f"expected stereo waveforms [B, 2, N], got shape {tuple(audio.shape)}")
        self.frames_for(audio.shape[-1])
        return mdct(audio.float(), self.analysis)

    def _raw(self, audio: torch.Tensor) -> torch.Tensor:
        """Unnormalised latent [B, F, C]."""
        proj = self._coefficients(audio) @ self.basis.T  # [B, 2, F, half]
        mid = (proj[:, 0] + proj[:, 1]) / math.sqrt(2.0)
        side = (proj[:, 0] - proj[:, 1]) / math.sqrt(2.0)
        return torch.cat([mid, side], -1)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Stereo waveforms [B, 2, F * patch] of latents [B, F, C]."""
        raw = self._unstandardised(latent)
        mid, side = raw[..., : self.half], raw[..., self.half:]
        lr = torch.stack([mid + side, mid - side], 1) / math.sqrt(2.0)  # [B, 2, F, half]
        return imdct(lr @ self.basis, self.analysis)

    @torch.no_grad()
    def fit_stats(self, audio: torch.Tensor, floor: float = 0.02) -> float:
        """Fit the projection (principal components of both ears' MDCT frames) and the per-channel
        mean/std to waveforms [B, 2, N]; returns the share of the audio energy the latent keeps.

        A channel's std is floored at `floor` times the largest channel std, so near-silent
        channels (e.g. the side of mono audio) are not blown up.
        """
        coef = self._coefficients(audio).reshape(-1, self.patch).double()
        gram = coef.T @ coef / coef.shape[0]
        _, vecs = torch.linalg.eigh(gram)
        self.basis.copy_(vecs[:, -self.half:].flip(-1).T.float())
        kept = float((coef @ vecs[:, -self.half:]).pow(2).sum() / coef.pow(2).sum().clamp_min(1e-30))
        self.mean.zero_()
        self.std.fill_(1.0)
        raw = self._raw(audio).reshape(-1, self.channels).double()
        std = raw.std(0)
        std = torch.clamp(std, min=max(float(std.max()) * floor, 1e-6))
        self.mean.copy_(raw.mean(0).float())
        self.std.copy_(std.float())
        return kept
