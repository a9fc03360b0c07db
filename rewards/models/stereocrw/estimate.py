"""Stereo audio -> StereoCRW ITD, with PrismAudio's reward settings as defaults.

PrismAudio (FunAudioLLM/ThinkSound@prismaudio grpo/fast_grpo/reward_itd.py:133-219) runs the
`stereocrw_binaural` encoder with 6 s patches (hop 750), 512 patches one sample apart, tau 0.05,
max delay 1.5 ms, soft-argmax read-out averaged over patches, on the first
`patch + 511` samples of the 16 kHz audio (tiled when shorter, as stereocrw's loader does).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rewards.models.stereocrw.itd import affinity, delay_matrix, max_delay_offset, soft_argmax_itd
from rewards.models.stereocrw.model import StereoCRW

SAMPLE_RATE = 16000
"""StereoCRW's sample rate."""


@dataclass(frozen=True)
class CrwSettings:
    """How StereoCRW reads an ITD off a stereo clip."""

    patch_s: float = 6.0
    """Length of one patch in seconds (PrismAudio: 6; the checkpoint was trained on 0.064)."""
    patch_num: int = 512
    """Number of patches per channel (PrismAudio: 512)."""
    patch_stride: int = 1
    """Samples between consecutive patches (PrismAudio: 1)."""
    max_delay_s: float = 1.5e-3
    """Largest ITD considered, seconds (stereocrw_binaural: 1.5 ms)."""
    tau: float = 0.05
    """Softmax temperature on cosine affinities."""
    batch: int = 64
    """Patches per forward pass of the ResNet (memory vs. speed)."""

    @property
    def patch_samples(self) -> int:
        return int(self.patch_s * SAMPLE_RATE)

    @property
    def span_samples(self) -> int:
        """Samples all patches cover: patch + stride * (patch_num - 1)."""
        return self.patch_samples + self.patch_stride * (self.patch_num - 1)


def prepare_stereo(stereo_16k: np.ndarray, span: int) -> np.ndarray:
    """The first `span` samples of `[2, N]` audio, tiled (repeated) first when `N < span`."""
    x = np.asarray(stereo_16k, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != 2 or x.shape[1] == 0:
        raise ValueError(f"expected stereo audio [2, N>0], got shape {x.shape}")
    if x.shape[1] < span:
        x = np.tile(x, (1, int(np.ceil(span / x.shape[1]))))
    return x[:, :span]


@torch.no_grad()
def estimate_itd(model: StereoCRW, stereo: torch.Tensor, settings: CrwSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """ITDs of `[B, 2, span]` 16 kHz audio: (clip ITDs `[B]`, per-patch ITDs `[B, P - 2*offset]`), seconds."""
    if model.patch_samples != settings.patch_samples:
        model.set_patch_samples(settings.patch_samples)
    b = stereo.shape[0]
    feats = model.patch_features(stereo.reshape(b * 2, -1), settings.patch_stride, settings.batch)
    feats = feats.reshape(b, 2, *feats.shape[1:])
    aff = affinity(feats[:, 0], feats[:, 1], settings.tau)
    offset = max_delay_offset(settings.max_delay_s, SAMPLE_RATE, settings.patch_stride)
    per_patch = soft_argmax_itd(aff, delay_matrix(aff.shape[-1], settings.patch_stride, SAMPLE_RATE), offset)
    return per_patch.mean(dim=-1), per_patch
