"""Typed configuration of the PrismAudio generator (`policy.prismaudio.*`).

Defaults are the released model (`PrismAudio/configs/model_configs/prismaudio.json` of the
reference): a 24-block DiT of width 1024 on a 64-channel latent, conditioned on cached VideoPrism,
T5-Gemma and Synchformer features. Tests build a reduced configuration (small width and depth, a
small VAE, short clips) that runs the same code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class OobleckShape:
    """Shape of the Oobleck stereo VAE (the reference's `stable_audio_2_0_vae.json`)."""

    channels: int = 128
    """Base channel count of encoder and decoder."""
    multipliers: List[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    """Channel multiplier of each resolution level."""
    strides: List[int] = field(default_factory=lambda: [2, 4, 4, 8, 8])
    """Down/up-sampling factor of each level (their product is the samples per latent frame)."""
    latent_channels: int = 64
    """Latent channels (the encoder emits twice as many: mean and scale); = io_channels."""
    audio_channels: int = 2
    """Waveform channels (stereo)."""


@dataclass
class PrismAudioConfig:
    """The PrismAudio DiT, its conditioners and VAE, and how they are loaded and trained."""

    weights: Optional[str] = None
    """Local path of the released `prismaudio.ckpt` (flat float32 state_dict, loaded with
    weights_only=True) or a `.safetensors` file in the same layout (what `prismrl export` writes);
    loaded strictly. None = random weights (tests, smoke runs)."""
    vae_weights: Optional[str] = None
    """Optional local path of `vae.ckpt` (Lightning checkpoint, VAE under `autoencoder.`); loaded
    strictly into `pretransform.model` after `weights`."""
    embed_dim: int = 1024
    """DiT width."""
    depth: int = 24
    """Number of transformer blocks."""
    num_heads: int = 16
    """Attention heads (head size = embed_dim / num_heads)."""
    io_channels: int = 64
    """Latent channels the DiT reads and writes (= vae.latent_dim)."""
    video_dim: int = 1024
    """Width of the cached VideoPrism frame features (`video_features`)."""
    text_dim: int = 1024
    """Width of the cached T5-Gemma text features (`text_features`)."""
    sync_dim: int = 768
    """Width of the cached Synchformer features (`sync_features`)."""
    video_frames: int = 36
    """Rows of `video_features` per clip (VideoPrism at 4 fps: 36 for 9 s)."""
    sync_frames: int = 216
    """Rows of `sync_features` per clip (Synchformer, 8 per 16-frame segment: 216 for 9 s); the
    latent has int(194 * sync_frames / 216) frames, as the reference's Sync_MLP interpolates."""
    text_tokens: int = 256
    """Rows `text_features` is padded to (masked in cross-attention), so clips of different CoT
    length batch together; a clip with more rows is refused, naming it."""
    vae: OobleckShape = field(default_factory=OobleckShape)
    """Shape of the VAE (`pretransform.model`)."""
    audio_out: str = "soft_clip"
    """Waveforms the policy hands on (to the teachers, to eval and generate): `soft_clip` (PrismRL:
    each waveform soft-clipped inside full scale) or `reference` (reward parity with PrismAudio: the
    decoded batch divided by its joint peak and truncated to 16-bit levels; see audio_out.py)."""
    activation_checkpointing: bool = True
    """Recompute each transformer block in the backward pass (saves activation memory; the
    reference always does it)."""

    @property
    def latent_frames(self) -> int:
        """Latent frames of one clip: int(194 * sync_frames / 216) (194 for 9 s)."""
        return int(194 * self.sync_frames / 216)
