"""SmallDiTPolicy: a small video-to-audio flow-matching DiT on an audio latent (`policy.codec`).

Tokens are latent frames (one per `patch` samples) with a time position embedding; each block
is adaLN-Zero conditioned on the timestep (plus the masked mean of the condition tokens) and
cross-attends to the condition tokens: one token per video frame (time-aligned with the audio
tokens) followed by the CoT text tokens (segment embedding per CoT module). With
`policy.sync_stream`, each video frame's features are also projected and added to the audio tokens
that fall in that frame's time span, so a flash on screen lands on the audio frames of its time
without the model first having to learn the alignment through attention.

Conditions (`encode_conditions`): {'tokens': [B, L, width], 'mask': [B, L] bool} and, with the
sync stream, 'sync': [B, Tv, width]. The null condition for classifier-free guidance is a learned
token in position 0 with every other position masked out and a zero sync stream; training drops
conditions with probability `cond_dropout` (`drop_conditions`).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from common.types import Clip
from policies.base import Conditions, Policy
from policies.config import PolicyConfig
from policies.dit_blocks import DiTBlock, FinalLayer, TimestepEmbedder, time_position
from policies.codecs import build_codec
from policies.text import CotTextEncoder
from policies.video import FrameEncoder, resample_frames, video_frame_count

STEREO_PARAMS = ("ITD", "ILD")
"""Codec parameter channels that place the sound (the rest of the latent says what it is and when)."""


class SmallDiTPolicy(Policy):
    """The built-in generator (`policy.kind=small_dit`)."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        self.sample_rate = cfg.sample_rate
        self.num_samples = int(round(cfg.duration_s * cfg.sample_rate))
        if self.num_samples % cfg.patch:
            raise ValueError(
                f"policy.duration_s={cfg.duration_s} gives {self.num_samples} samples, "
                f"not a multiple of policy.patch={cfg.patch}"
            )
        self.num_frames = self.num_samples // cfg.patch
        self.num_video = video_frame_count(cfg.duration_s, cfg.video_fps)
        w = cfg.width
        self.codec = build_codec(cfg.codec, cfg.sample_rate, cfg.patch, cfg.latent_channels)
        self.text = CotTextEncoder(cfg.text_encoder, w)
        self.video = FrameEncoder(cfg.video_size, w, motion=cfg.video_motion)
        self.video_segment = nn.Parameter(torch.randn(w) * 0.02)
        self.null_token = nn.Parameter(torch.randn(w) * 0.02)
        self.x_in = nn.Linear(cfg.latent_channels, w)
        self.t_embed = TimestepEmbedder(w)
        self.pool_proj = nn.Linear(w, w)
        self.blocks = nn.ModuleList(DiTBlock(w, cfg.heads) for _ in range(cfg.depth))
        self.final = FinalLayer(w, cfg.latent_channels)
        audio_t = (torch.arange(self.num_frames) + 0.5) * cfg.patch / cfg.sample_rate
        video_t = torch.arange(self.num_video) / cfg.video_fps
        self.register_buffer("audio_pos", time_position(audio_t, w), persistent=False)
        self.register_buffer("video_pos", time_position(video_t, w), persistent=False)
        names = getattr(self.codec, "param_names", ())
        first = cfg.latent_channels - len(names)
        # latent channels of the stereo image, guided with policy.stereo_guidance_scale
        self.stereo_channels = [first + i for i, n in enumerate(names) if n in STEREO_PARAMS]
        if cfg.sync_stream:
            self.sync_proj = nn.Linear(w, w)  # zero-initialised: training starts from the plain model
            nn.init.zeros_(self.sync_proj.weight)
            nn.init.zeros_(self.sync_proj.bias)
            frame_of_audio = torch.clamp((audio_t * cfg.video_fps).floor().long(), max=self.num_video - 1)
            self.register_buffer("sync_index", frame_of_audio, persistent=False)

    # ---- shapes and codec -------------------------------------------------------------
    def latent_shape(self) -> tuple[int, ...]:
        return (self.num_frames, self.cfg.latent_channels)

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(audio)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latent)

    # ---- conditions ---------------------------------------------------------------------
    def prepare(self, clips: Sequence[Clip], cot: Sequence[dict[str, str]] | None = None) -> dict[str, Any]:
        """{'frames': uint8 [B, Tv, 3, S, S], 'video_mask': [B, Tv], 'text_ids', 'text_mask': [B, 4, L]}."""
        if cot is not None and len(cot) != len(clips):
            raise ValueError(f"prepare: {len(cot)} plans for {len(clips)} clips")
        frames, valid = [], []
        for clip in clips:
            try:
                f, v = resample_frames(clip.frames, clip.fps, self.cfg.video_fps, self.num_video, self.cfg.video_size)
            except ValueError as e:
                raise ValueError(f"clip '{clip.clip_id}': {e}") from None
            frames.append(f)
            valid.append(v)
        plans = list(cot) if cot is not None else [c.cot for c in clips]
        out: dict[str, Any] = {"frames": torch.stack(frames), "video_mask": torch.stack(valid)}
        out.update(self.text.tokenize(plans))
        return out

    def encode_conditions(self, prepared: dict[str, Any]) -> Conditions:
        dev = self.null_token.device
        frames = prepared["frames"].to(dev)
        video_mask = prepared["video_mask"].to(dev)
        features = self.video(frames)
        video = features + self.video_pos[: frames.shape[1]].to(features.dtype) + self.video_segment
        text, text_mask = self.text(prepared["text_ids"].to(dev), prepared["text_mask"].to(dev))
        tokens = torch.cat([video, text], 1)
        mask = torch.cat([video_mask, text_mask], 1)
        mask[:, 0] = mask[:, 0] | ~mask.any(1)  # never an all-masked row
        cond = {"tokens": tokens, "mask": mask}
        if self.cfg.sync_stream:
            cond["sync"] = self.sync_proj(features) * video_mask[..., None].to(features.dtype)
        return cond

    def null_conditions(self, cond: Conditions) -> Conditions:
        tokens = cond["tokens"]
        null = self.null_token.to(tokens.dtype).expand(tokens.shape[0], tokens.shape[1], -1)
        mask = torch.zeros_like(cond["mask"])
        mask[:, 0] = True
        out = {"tokens": null, "mask": mask}
        if "sync" in cond:
            out["sync"] = torch.zeros_like(cond["sync"])
        return out

    def drop_conditions(self, cond: Conditions, drop: torch.Tensor) -> Conditions:
        """cond with the samples where drop [B] is True replaced by the null condition."""
        null = self.null_conditions(cond)
        d = drop.to(cond["mask"].device)
        return {k: torch.where(d.reshape(-1, *[1] * (v.dim() - 1)), null[k], v) for k, v in cond.items()}

    def guidance_scales(self, scale: float) -> torch.Tensor:
        """`scale` on every latent channel but the codec's stereo-image ones (ITD, ILD), which get
        `policy.stereo_guidance_scale` (when set)."""
        scales = torch.full((self.cfg.latent_channels,), float(scale))
        if self.cfg.stereo_guidance_scale is not None:
            scales[self.stereo_channels] = float(self.cfg.stereo_guidance_scale)
        return scales

    # ---- network ------------------------------------------------------------------------
    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, cond: Conditions) -> torch.Tensor:
        b, frames, _ = x_t.shape
        if frames > self.audio_pos.shape[0]:
            raise ValueError(f"latent has {frames} frames, the policy generates at most {self.audio_pos.shape[0]}")
        t = t.to(x_t.dtype).expand(b) if t.dim() == 0 else t.to(x_t.dtype)
        ctx, mask = cond["tokens"], cond["mask"]
        m = mask.to(ctx.dtype)[..., None]
        pooled = (ctx * m).sum(1) / m.sum(1).clamp_min(1.0)
        c = self.t_embed(t) + self.pool_proj(pooled)
        h = self.x_in(x_t) + self.audio_pos[:frames].to(x_t.dtype)  # fp32 buffer under a bf16 learner
        if "sync" in cond:
            h = h + cond["sync"][:, self.sync_index[:frames]]
        for block in self.blocks:
            h = block(h, c, ctx, mask)
        return self.final(h, c)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """State dict without frozen external weights (a transformers text encoder)."""
        skip = tuple("text." + p for p in self.text.frozen_prefixes())
        return {k: v for k, v in self.state_dict().items() if not (skip and k.startswith(skip))}
