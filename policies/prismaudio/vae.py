"""PrismAudio's Oobleck stereo VAE (stable-audio-tools' OobleckEncoder/Decoder + VAE bottleneck).

44.1 kHz stereo <-> 64-channel latent at 44100 / 2048 = 21.53 frames a second. Module and tensor
names follow the reference (`encoder.layers.*`, `decoder.layers.*`), so `state_dict()` equals
`checkpoint-layouts/prismaudio_vae.layout.json` name for name, shape for shape, in order.

Encoder: conv7 (2 -> 128), five blocks [3 residual units with dilations 1, 3, 9, SnakeBeta,
strided conv with kernel 2s, padding ceil(s/2)] going 128 -> 128 -> 256 -> 512 -> 1024 -> 2048
channels with strides 2, 4, 4, 8, 8, then SnakeBeta and conv3 to 128 = mean and scale of the
64-channel latent (std = softplus(scale) + 1e-4). Decoder: conv7 (64 -> 2048), five blocks
[SnakeBeta, transposed conv with kernel 2s, 3 residual units] back to 128 channels, SnakeBeta and
conv7 to 2 channels without bias and without tanh. Residual unit: x + conv1(snake(conv7_d(snake(x)))),
length-preserving. No latent scaling (the reference's pretransform scale is 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from policies.prismaudio.snake import SnakeBeta
from policies.prismaudio.weight_norm import WNConv1d, WNConvTranspose1d

SAMPLE_RATE = 44100
"""The VAE's audio sample rate in Hz."""
STD_FLOOR = 1e-4
"""Added to softplus(scale) to give the posterior's standard deviation, as the reference does."""


@dataclass(frozen=True)
class OobleckConfig:
    """Shape of an Oobleck VAE; the defaults are PrismAudio's (stable_audio_2_0_vae.json)."""

    audio_channels: int = 2
    """Channels of the waveform in and out (2: stereo)."""
    channels: int = 128
    """Base width; stage i works at channels * multipliers[i]."""
    multipliers: tuple[int, ...] = (1, 2, 4, 8, 16)
    """Width multiplier after each down-sampling block (a leading 1 is implied for the first conv)."""
    strides: tuple[int, ...] = (2, 4, 4, 8, 8)
    """Down-sampling factor of each encoder block (and up-sampling of the mirrored decoder block)."""
    latent_channels: int = 64
    """Channels of the latent; the encoder emits twice as many (mean and scale)."""

    def __post_init__(self) -> None:
        if len(self.multipliers) != len(self.strides):
            raise ValueError(f"OobleckConfig: {len(self.multipliers)} multipliers but {len(self.strides)} strides")
        if any(s < 1 for s in self.strides) or self.channels < 1 or self.latent_channels < 1:
            raise ValueError(f"OobleckConfig: strides, channels and latent_channels must be positive: {self}")

    @property
    def hop(self) -> int:
        """Audio samples per latent frame (the product of the strides; 2048 for PrismAudio)."""
        return math.prod(self.strides)


def frames_for_samples(samples: int, hop: int) -> int:
    """Latent frames that encode `samples` audio samples: ceil(samples / hop) (the audio is padded)."""
    return -(-samples // hop)


def pad_to_hop(audio: torch.Tensor, hop: int) -> torch.Tensor:
    """Zero-pad the last axis on the right to a multiple of `hop` (the reference's silence padding)."""
    extra = (-audio.shape[-1]) % hop
    return F.pad(audio, (0, extra)) if extra else audio


class ResidualUnit(nn.Module):
    """x + conv1(snake(conv7 dilated(snake(x)))); padding 3 * dilation keeps the length."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.layers = nn.Sequential(
            SnakeBeta(channels),
            WNConv1d(channels, channels, 7, dilation=dilation, padding=3 * dilation),
            SnakeBeta(channels),
            WNConv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return x + self.layers(x)
        return self.layers(x).add_(x)  # the branch's output is a fresh tensor: add in place


class EncoderBlock(nn.Module):
    """Residual units (dilations 1, 3, 9) at `in_channels`, then a strided conv down by `stride`."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.layers = nn.Sequential(
            ResidualUnit(in_channels, 1),
            ResidualUnit(in_channels, 3),
            ResidualUnit(in_channels, 9),
            SnakeBeta(in_channels),
            WNConv1d(in_channels, out_channels, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DecoderBlock(nn.Module):
    """A transposed conv up by `stride` (exactly stride x the length), then residual units (1, 3, 9)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.layers = nn.Sequential(
            SnakeBeta(in_channels),
            WNConvTranspose1d(in_channels, out_channels, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
            ResidualUnit(out_channels, 1),
            ResidualUnit(out_channels, 3),
            ResidualUnit(out_channels, 9),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckEncoder(nn.Module):
    """Waveform [B, audio_channels, N] -> [B, 2 * latent_channels, N / hop] (mean and scale)."""

    def __init__(self, cfg: OobleckConfig):
        super().__init__()
        widths = [cfg.channels * m for m in (1, *cfg.multipliers)]
        layers: list[nn.Module] = [WNConv1d(cfg.audio_channels, widths[0], 7, padding=3)]
        layers += [EncoderBlock(widths[i], widths[i + 1], s) for i, s in enumerate(cfg.strides)]
        layers += [SnakeBeta(widths[-1]), WNConv1d(widths[-1], 2 * cfg.latent_channels, 3, padding=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OobleckDecoder(nn.Module):
    """Latent [B, latent_channels, T] -> waveform [B, audio_channels, T * hop], no final tanh."""

    def __init__(self, cfg: OobleckConfig):
        super().__init__()
        widths = [cfg.channels * m for m in (1, *cfg.multipliers)]
        layers: list[nn.Module] = [WNConv1d(cfg.latent_channels, widths[-1], 7, padding=3)]
        for i in range(len(cfg.strides), 0, -1):
            layers.append(DecoderBlock(widths[i], widths[i - 1], cfg.strides[i - 1]))
        layers += [SnakeBeta(widths[0]), WNConv1d(widths[0], cfg.audio_channels, 7, padding=3, bias=False)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def split_posterior(moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder output [B, 2C, T] -> (mean, std) each [B, C, T]; std = softplus(scale) + 1e-4."""
    mean, scale = moments.chunk(2, dim=1)
    return mean, F.softplus(scale) + STD_FLOOR


class OobleckVAE(nn.Module):
    """PrismAudio's stereo VAE: `encode` audio [B, 2, N] to latents [B, 64, ceil(N / 2048)], `decode` back.

    Loading and export live in `policies.prismaudio.vae_checkpoint`. The module holds no buffers;
    every tensor is a parameter (weights are frozen by the caller, e.g. `requires_grad_(False)`).
    """

    def __init__(self, cfg: Optional[OobleckConfig] = None):
        super().__init__()
        self.cfg = cfg or OobleckConfig()
        self.encoder = OobleckEncoder(self.cfg)
        self.decoder = OobleckDecoder(self.cfg)

    @property
    def hop(self) -> int:
        """Audio samples per latent frame (2048)."""
        return self.cfg.hop

    @property
    def sample_rate(self) -> int:
        """44100 Hz."""
        return SAMPLE_RATE

    def _check(self, x: torch.Tensor, channels: int, what: str) -> None:
        if x.dim() != 3 or x.shape[1] != channels or x.shape[-1] == 0:
            raise ValueError(f"OobleckVAE.{what}: expected [batch, {channels}, length>0], got {list(x.shape)}")

    def posterior(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of the latent, each [B, 64, ceil(N / hop)]; audio [B, 2, N] is zero-padded on the right."""
        self._check(audio, self.cfg.audio_channels, "encode")
        return split_posterior(self.encoder(pad_to_hop(audio, self.hop)))

    def encode(self, audio: torch.Tensor, sample: bool = False,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Latent [B, 64, ceil(N / hop)] of audio [B, 2, N] (right-padded with zeros to a multiple of hop).

        sample=False (default) gives the posterior mean; sample=True draws mean + std * noise, as the
        reference's bottleneck always does (noise from `generator` if given).
        """
        mean, std = self.posterior(audio)
        if not sample:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + std * noise

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Waveform [B, 2, T * hop] of latent [B, 64, T]; not clipped (no tanh), not peak-normalised."""
        self._check(latent, self.cfg.latent_channels, "decode")
        return self.decoder(latent)
