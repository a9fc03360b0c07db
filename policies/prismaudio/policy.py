"""PrismAudioPolicy (`policy.kind=prismaudio`): the released PrismAudio model behind PrismRL's Policy.

The module tree is the reference's wrapper, so `state_dict()` has exactly the released
`prismaudio.ckpt`'s names, shapes and order: `model.model` (the DiT), `conditioner.conditioners`
(feature MLPs), `pretransform.model` (the Oobleck VAE). The latent is [64, T] (channels first,
as the reference); T = int(194 * sync_rows / 216), 194 for 9 s.

Conditions come from features cached per clip (`Clip.features`: `video_features` [36, 1024],
`text_features` [L, 1024], `sync_features` [216, 768]). `prepare` pads the text rows to
`policy.prismaudio.text_tokens` with a mask, so clips with different CoT lengths batch together;
padded rows are left out of the cross-attention, so a clip's velocity does not depend on the
padding. The unconditional branch of classifier-free guidance is all-zero conditioner outputs,
as in the reference. The conditioners, the VAE and the DiT's unused `empty_*_feat` are frozen.
"""
from __future__ import annotations

import contextlib
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from common.types import Clip
from policies.base import Conditions, Policy
from policies.config import PolicyConfig
from policies.prismaudio.audio_out import AUDIO_OUT, reference_levels
from policies.prismaudio.conditioners import CONDITION_KEYS, MultiConditioner
from policies.prismaudio.config import PrismAudioConfig
from policies.prismaudio.dit import DiffusionTransformer
from policies.prismaudio.vae import OobleckConfig, OobleckVAE

FROZEN_DIT_PARAMS = ("model.model.empty_clip_feat", "model.model.empty_sync_feat")
"""DiT parameters in the checkpoint that the forward never uses (left out of training)."""


class DiTWrapper(nn.Module):
    """Holds the DiT under `model` (the reference's `model.model.*` names)."""

    def __init__(self, pa: PrismAudioConfig):
        super().__init__()
        self.model = DiffusionTransformer(pa.io_channels, pa.embed_dim, pa.depth, pa.num_heads, cond_dim=pa.embed_dim)


class Pretransform(nn.Module):
    """Holds the VAE under `model` (`pretransform.model.*`)."""

    def __init__(self, vae: OobleckVAE):
        super().__init__()
        self.model = vae


def oobleck_config(pa: PrismAudioConfig) -> OobleckConfig:
    """The VAE shape of a PrismAudioConfig."""
    v = pa.vae
    return OobleckConfig(audio_channels=v.audio_channels, channels=v.channels, multipliers=tuple(v.multipliers),
                         strides=tuple(v.strides), latent_channels=v.latent_channels)


def feature_shapes(pa: PrismAudioConfig) -> dict[str, tuple[int | None, int]]:
    """Expected [rows, width] per cached feature (None rows: any number up to text_tokens)."""
    return {"video_features": (pa.video_frames, pa.video_dim), "text_features": (None, pa.text_dim),
            "sync_features": (pa.sync_frames, pa.sync_dim)}


def check_features(clip_id: str, features: dict[str, Any], pa: PrismAudioConfig) -> None:
    """Raise ValueError naming the clip and key of a missing or wrongly shaped feature."""
    for key, (rows, width) in feature_shapes(pa).items():
        if key not in features:
            raise ValueError(f"clip '{clip_id}': cached features have no '{key}' (has {sorted(features)})")
        shape = tuple(np.shape(features[key]))
        if len(shape) != 2 or shape[1] != width or (rows is not None and shape[0] != rows) or shape[0] == 0:
            want = f"[{rows if rows is not None else 'L'}, {width}]"
            raise ValueError(f"clip '{clip_id}': feature '{key}' has shape {list(shape)}, expected {want}")
    if np.shape(features["text_features"])[0] > pa.text_tokens:
        raise ValueError(f"clip '{clip_id}': 'text_features' has {np.shape(features['text_features'])[0]} rows, "
                         f"more than policy.prismaudio.text_tokens={pa.text_tokens}")


class PrismAudioPolicy(Policy):
    """PrismAudio's 518M DiT with its conditioners and VAE."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        pa = cfg.prismaudio
        self.cfg, self.pa = cfg, pa
        if pa.io_channels != pa.vae.latent_channels:
            raise ValueError(f"policy.prismaudio.io_channels={pa.io_channels} differs from the VAE's "
                             f"latent_channels={pa.vae.latent_channels}")
        if pa.audio_out not in AUDIO_OUT:
            raise ValueError(f"policy.prismaudio.audio_out: {pa.audio_out!r} is not one of {', '.join(AUDIO_OUT)}")
        self.sample_rate = cfg.sample_rate
        # with a weights file every tensor comes from it: build on meta, skip the random initialisation
        with torch.device("meta") if pa.weights else contextlib.nullcontext():
            self.model = DiTWrapper(pa)
            self.conditioner = MultiConditioner(pa.video_dim, pa.text_dim, pa.sync_dim, pa.embed_dim)
            self.pretransform = Pretransform(OobleckVAE(oobleck_config(pa)))
        self.model.model.transformer.checkpointing = pa.activation_checkpointing
        self.freeze_untrained()
        if pa.weights:
            from policies.prismaudio.weights import load_weights

            self.to_empty(device="cpu")
            load_weights(self, pa.weights)
        if pa.vae_weights:
            from policies.prismaudio.vae_checkpoint import load_oobleck_vae

            vae = load_oobleck_vae(pa.vae_weights, cfg=oobleck_config(pa))
            self.pretransform.model.load_state_dict(vae.state_dict(), strict=True)

    def freeze_untrained(self) -> None:
        """Conditioners, VAE and the unused empty features get no gradient (the reference's recipe)."""
        self.conditioner.requires_grad_(False)
        self.pretransform.requires_grad_(False)
        for name, p in self.named_parameters():
            if name in FROZEN_DIT_PARAMS:
                p.requires_grad_(False)

    # ---- shapes and the VAE -----------------------------------------------------------------
    def latent_shape(self) -> tuple[int, ...]:
        return (self.pa.io_channels, self.pa.latent_frames)

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        return self.pretransform.model.encode(audio)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.pretransform.model.decode(latent)

    def waveforms(self, latent: torch.Tensor) -> list[np.ndarray]:
        """Decoded float32 waveforms; with audio_out=reference, the batch as the reference grades it."""
        if self.pa.audio_out == "soft_clip":
            return super().waveforms(latent)
        with torch.no_grad():
            wav = reference_levels(self.decode(latent)).cpu().numpy()
        return [w for w in wav]

    # ---- conditions -----------------------------------------------------------------------------
    def prepare(self, clips: Sequence[Clip], cot: Sequence[dict[str, str]] | None = None) -> dict[str, Any]:
        """{'video_features' [B, Tv, 1024], 'text_features' [B, text_tokens, 1024], 'text_mask'
        [B, text_tokens] bool, 'sync_features' [B, Ts, 768]} from each clip's cached features.
        `cot` may only repeat the clips' own plans (the text features were computed from them)."""
        if cot is not None and any(dict(p) != dict(c.cot) for p, c in zip(cot, clips)):
            raise ValueError("policy.kind=prismaudio conditions on cached text_features (T5-Gemma on the "
                             "dataset's CoT); it cannot take other plans (use eval.plans=dataset)")
        video, text, mask, sync = [], [], [], []
        n = self.pa.text_tokens
        for clip in clips:
            feats = getattr(clip, "features", None)
            if not feats:
                raise ValueError(f"clip '{clip.clip_id}': no cached features (policy.kind=prismaudio needs the "
                                 f"manifest's features_path column)")
            check_features(clip.clip_id, feats, self.pa)
            t = torch.tensor(np.asarray(feats["text_features"], dtype=np.float32))
            video.append(torch.tensor(np.asarray(feats["video_features"], dtype=np.float32)))
            sync.append(torch.tensor(np.asarray(feats["sync_features"], dtype=np.float32)))
            text.append(torch.cat([t, t.new_zeros(n - t.shape[0], t.shape[1])]))
            mask.append(torch.arange(n) < t.shape[0])
        return {"video_features": torch.stack(video), "text_features": torch.stack(text),
                "text_mask": torch.stack(mask), "sync_features": torch.stack(sync)}

    def encode_conditions(self, prepared: dict[str, Any]) -> Conditions:
        """{'context' [B, Tv + L, D], 'context_mask' [B, Tv + L], 'add' [B, Tv, D], 'sync' [B, T, D]}:
        conditioner outputs (text trimmed to the longest clip of the batch)."""
        dev = self.model.model.preprocess_conv.weight.device
        mask = prepared["text_mask"].to(dev, torch.bool)
        keep = max(1, int(mask.sum(1).max()))
        feats = {k: prepared[k].to(dev) for k in CONDITION_KEYS}
        feats["text_features"] = feats["text_features"][:, :keep]
        out = self.conditioner(feats)
        video, text = out["video_features"], out["text_features"]
        video_mask = torch.ones(video.shape[:2], dtype=torch.bool, device=dev)
        return {"context": torch.cat([video, text], 1), "context_mask": torch.cat([video_mask, mask[:, :keep]], 1),
                "add": video, "sync": out["sync_features"]}

    def null_conditions(self, cond: Conditions) -> Conditions:
        """All-zero streams (the reference's unconditional branch); the key mask is kept."""
        return {k: (v if k == "context_mask" else torch.zeros_like(v)) for k, v in cond.items()}

    def drop_conditions(self, cond: Conditions, drop: torch.Tensor) -> Conditions:
        """cond with the samples where drop [B] is True replaced by the null condition."""
        null = self.null_conditions(cond)
        d = drop.to(cond["context"].device)
        return {k: torch.where(d.reshape(-1, *[1] * (v.dim() - 1)), null[k], v) for k, v in cond.items()}

    # ---- network --------------------------------------------------------------------------------
    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        t = t.expand(x_t.shape[0]) if t.dim() == 0 else t
        v = self.model.model(x_t, t, cond["context"], cond["context_mask"], cond["add"], cond["sync"])
        return v.to(x_t.dtype)
