"""The parametric-stereo audio latent (`policy.codec=parametric_stereo`): one mono source plus a
per-frame inter-aural delay and level difference, so where a sound is becomes two numbers a frame.

encode (waveform [B, 2, N] -> latent [B, F, C]), F = N / patch, C = latent_channels, S = C - 2:
  1. per frame, the ITD (regularised GCC-PHAT over a Hann window of WINDOW_HOPS frames centred
     on the frame) and ILD (dB) of the two ears (`policies.stereo_params.frame_stereo_params`);
     frames more than 40 dB below the loudest get ITD 0 and ILD 0;
  2. the mono source: both ears moved by -+ITD/2 (a per-frame fractional delay, cross-faded
     between frames), divided by their gains, averaged;
  3. a circular MDCT of the source (as in `StereoBandLatent`) and a fixed orthonormal projection
     onto S principal components fitted on training audio by `fit_stats`;
  4. latent = [S projected coefficients, ITD in ms, ILD in dB], standardised per channel.
decode is the inverse: the transpose of step 3, then the source placed by the ITD and ILD (delays
cross-faded, gains linear between frame centres): left(n) = g_l * mid(n + ITD/2),
right(n) = g_r * mid(n - ITD/2), g_l / g_r the ILD, g_l^2 + g_r^2 = 2. ITD and ILD are clamped to
the ranges the codec measures (guided sampling overshoots).

Why: with a mid/side latent (`StereoBandLatent`) the delay lives in the phase relation of many mid
and side coefficients; here the model writes it as one channel it can regress from the video and
the plan. What the latent cannot hold: two sources sounding at once from different sides share one
ITD a frame (the louder one wins), and reverberant decorrelation between the ears.
"""
from __future__ import annotations

import torch

from policies.latent import DEFAULT_AUDIO_RMS, StandardisedLatent, imdct, mdct, mdct_basis
from policies.stereo_params import align_to_mid, frame_stereo_params, render_stereo

MAX_DELAY_MS = 1.0
"""Largest ITD searched and representable, in ms (a human head gives about 0.7 ms)."""
WINDOW_HOPS = 4
"""Length of the ITD/ILD analysis window, in latent frames."""
MAX_ILD_DB = 12.0
"""Largest |ILD| measured and rendered, in dB (guided sampling can overshoot the data's range)."""
PARAM_CHANNELS = 2
"""Latent channels after the source coefficients: ITD (ms), ILD (dB)."""


class ParametricStereoLatent(StandardisedLatent):
    """Waveform <-> latent codec described in the module docstring."""

    name = "parametric_stereo"
    """The `policy.codec` value of this codec."""
    param_names: tuple[str, ...] = ("ITD", "ILD")
    """The per-frame parameter channels after the source coefficients, in order."""
    param_spreads: tuple[float, ...] = (1.0, 1.0)
    """Typical spread of each parameter channel in latent units (ITD and ILD are standardised); the
    pretraining loss divides a parameter channel's weight by its square."""

    def __init__(self, sample_rate: int, patch: int, latent_channels: int):
        super().__init__()
        n_params = len(self.param_names)
        source = latent_channels - n_params
        if source < 1:
            raise ValueError(f"policy.latent_channels must be >= {n_params + 1} for codec {self.name} "
                             f"(source coefficients + {' + '.join(self.param_names)}), got {latent_channels}")
        if source > patch:
            raise ValueError(f"policy.latent_channels={latent_channels} exceeds policy.patch + {n_params} = "
                             f"{patch + n_params} for codec {self.name}: a frame of the mono source "
                             f"holds {patch} numbers")
        self.sample_rate = sample_rate
        self.patch = patch
        self.channels = latent_channels
        self.source = source
        self.max_delay_samples = sample_rate * MAX_DELAY_MS / 1000.0
        self.register_buffer("analysis", mdct_basis(patch), persistent=False)
        self.register_buffer("basis", torch.eye(patch)[:source].clone())
        std = torch.full((latent_channels,), DEFAULT_AUDIO_RMS)
        std[source : source + PARAM_CHANNELS] = torch.tensor([MAX_DELAY_MS / 2, 3.0])
        std[source + PARAM_CHANNELS :] = 1.0
        self.register_buffer("mean", torch.zeros(latent_channels))
        self.register_buffer("std", std)

    @property
    def param_channels(self) -> slice:
        """Latent channels that hold one per-frame parameter each (`param_names`)."""
        return slice(self.source, self.channels)

    def _analyse(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(source MDCT frames [B, F, patch], itd_ms [B, F], ild_db [B, F]) of stereo waveforms."""
        if audio.dim() != 3 or audio.shape[1] != 2:
            raise ValueError(f"expected stereo waveforms [B, 2, N], got shape {tuple(audio.shape)}")
        self.frames_for(audio.shape[-1])
        audio = audio.float()
        itd, ild = frame_stereo_params(audio, self.patch, self.max_delay_samples, window_hops=WINDOW_HOPS,
                                       max_ild_db=MAX_ILD_DB)
        mid = align_to_mid(audio, itd, ild, self.patch)
        itd_ms = itd * 1000.0 / self.sample_rate
        return mdct(mid, self.analysis), itd_ms, ild

    def _raw(self, audio: torch.Tensor) -> torch.Tensor:
        coef, itd_ms, ild = self._analyse(audio)
        params = [itd_ms, ild, *self._extra_params(coef)]
        return torch.cat([coef @ self.basis.T, *(p[..., None] for p in params)], -1)

    def _extra_params(self, coef: torch.Tensor) -> list[torch.Tensor]:
        """Per-frame parameters [B, F] after ITD and ILD, from the source's MDCT frames (none here)."""
        return []

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Stereo waveforms [B, 2, F * patch] of latents [B, F, C]."""
        raw = self._unstandardised(latent)
        s = self.source
        coef = self._shape_coefficients(raw[..., :s] @ self.basis, raw)
        mid = self._shape_source(imdct(coef, self.analysis), raw)
        itd = raw[..., s].clamp(-MAX_DELAY_MS, MAX_DELAY_MS) * self.sample_rate / 1000.0
        ild = raw[..., s + 1].clamp(-MAX_ILD_DB, MAX_ILD_DB)
        return render_stereo(mid, itd, ild, self.patch)

    def _shape_coefficients(self, coef: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """The decoded source's MDCT frames [B, F, patch] before the inverse MDCT; subclasses with
        spectral parameters act here."""
        return coef

    def _shape_source(self, mid: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """The decoded source [B, N] before it is placed; subclasses with more parameters act here."""
        return mid

    @torch.no_grad()
    def fit_stats(self, audio: torch.Tensor, floor: float = 0.02) -> float:
        """Fit the source projection (principal components of the source's MDCT frames) and the
        per-channel mean/std to waveforms [B, 2, N]; returns the share of the source's energy kept.
        Source channel stds are floored at `floor` times the largest (as in `StereoBandLatent`)."""
        coef, _, _ = self._analyse(audio)
        flat = coef.reshape(-1, self.patch).double()
        gram = flat.T @ flat / flat.shape[0]
        _, vecs = torch.linalg.eigh(gram)
        top = vecs[:, -self.source:].flip(-1)
        self.basis.copy_(top.T.float())
        kept = float((flat @ top).pow(2).sum() / flat.pow(2).sum().clamp_min(1e-30))
        self.mean.zero_()
        self.std.fill_(1.0)
        raw = self._raw(audio).reshape(-1, self.channels).double()
        std = raw.std(0)
        source_std = torch.clamp(std[: self.source], min=max(float(std[: self.source].max()) * floor, 1e-6))
        self.mean.copy_(raw.mean(0).float())
        self.std.copy_(torch.cat([source_std, std[self.source:].clamp_min(1e-3)]).float())
        return kept
