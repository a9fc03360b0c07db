"""The `Policy` interface: what the orchestrator needs from a video-to-audio flow-matching model.

Conventions (rectified flow): x_t = (1 - t) * x_0 + t * noise, t in [0, 1]; t=1 is pure noise,
t=0 is data. The model predicts the velocity v = noise - x_0, so dx/dt = v and an Euler step
from t to t_next < t is x + v * (t_next - t).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from common.types import Clip
from policies.soft_clip import soft_clip

Conditions = dict[str, torch.Tensor]
"""Encoded conditions: a dict of batched tensors (video tokens, text tokens, masks...)."""


class Policy(nn.Module, ABC):
    """A conditional flow-matching generator of stereo audio on a latent space."""

    sample_rate: int
    """Sample rate of the waveforms `decode` returns."""

    @abstractmethod
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent (without batch), e.g. (frames, channels)."""

    @abstractmethod
    def prepare(self, clips: Sequence[Clip], cot: Sequence[dict[str, str]] | None = None) -> dict[str, Any]:
        """Raw, CPU-side condition inputs (resized frames, token ids) for a batch of clips.

        cot: plans to use instead of the clips' own (None = the clips' CoT). The result is small
        and picklable, so it can travel through the Ray object store instead of whole clips.
        """

    @abstractmethod
    def encode_conditions(self, prepared: dict[str, Any]) -> Conditions:
        """Condition tensors from `prepare`'s output (differentiable where the model learns them)."""

    @abstractmethod
    def null_conditions(self, cond: Conditions) -> Conditions:
        """The unconditional counterpart of `cond` (for classifier-free guidance)."""

    @abstractmethod
    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        """v(x_t, t | cond); x_t [B, *latent_shape], t [B] in [0, 1]."""

    def guided_velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditions, scale: float) -> torch.Tensor:
        """Classifier-free guidance: v_uncond + scale * (v_cond - v_uncond); scale 1 = no guidance.
        The scale of each latent channel is `guidance_scales(scale)`."""
        if scale == 1.0:
            return self.velocity(x_t, t, cond)
        both = {k: torch.cat([v, u]) for (k, v), u in zip(cond.items(), self.null_conditions(cond).values())}
        v = self.velocity(torch.cat([x_t, x_t]), torch.cat([t, t]), both)
        v_c, v_u = v.chunk(2)
        return v_u + self.guidance_scales(scale).to(v.device, v.dtype) * (v_c - v_u)

    def guidance_scales(self, scale: float) -> torch.Tensor:
        """Guidance scale per latent channel ([C], broadcast over the last latent axis) for the
        sampler's `scale`; by default every channel gets `scale`."""
        return torch.tensor(float(scale))

    @abstractmethod
    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Latent of a waveform batch [B, 2, N] (for supervised pretraining)."""

    @abstractmethod
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Stereo waveform [B, 2, N] of a latent batch."""

    def waveforms(self, latent: torch.Tensor) -> list[np.ndarray]:
        """Decoded float32 numpy waveforms, soft-clipped inside full scale (`policies.soft_clip`), one per batch item."""
        with torch.no_grad():
            wav = soft_clip(self.decode(latent).float()).cpu().numpy()
        return [w for w in wav]
