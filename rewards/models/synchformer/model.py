"""The full Synchformer (video encoder, audio encoder, projections, offset classifier).

Module names and parameter order match `synchformer_state_dict.pth` (the av-benchmark / MMAudio
re-save of the original `sync_model_audioset.pt`): 513 tensors, 237,460,245 parameters, no prefix.
"""
from __future__ import annotations

import torch
from torch import nn

from rewards.models.synchformer.ast_encoder import AudioEncoder
from rewards.models.synchformer.motionformer import MotionFormer
from rewards.models.synchformer.sync_transformer import SEGMENTS, SyncTransformer


class Synchformer(nn.Module):
    """Predicts the audio-visual offset of 14 paired 0.64 s segments (4.8 s of a clip)."""

    def __init__(self):
        super().__init__()
        self.vfeat_extractor = MotionFormer()
        self.afeat_extractor = AudioEncoder()
        self.vproj = nn.Linear(768, 768)
        self.aproj = nn.Linear(768, 768)
        self.transformer = SyncTransformer()

    @torch.no_grad()
    def video_features(self, segments: torch.Tensor, chunk: int = 4) -> torch.Tensor:
        """Video segments `[S, 3, 16, 224, 224]` -> features `[S, 8, 768]`, `chunk` segments at a time."""
        return torch.cat([self.vfeat_extractor(s) for s in segments.split(chunk)], dim=0)

    @torch.no_grad()
    def audio_features(self, mels: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """Normalized log-mel segments `[S, 128, 66]` -> features `[S, 6, 768]`."""
        return torch.cat([self.afeat_extractor(m) for m in mels.split(chunk)], dim=0)

    @torch.no_grad()
    def offset_logits(self, video_feats: torch.Tensor, audio_feats: torch.Tensor) -> torch.Tensor:
        """Features `[B, 14, 8, D]` and `[B, 14, 6, D]` -> offset logits `[B, 21]`."""
        if video_feats.shape[1] != SEGMENTS or audio_feats.shape[1] != SEGMENTS:
            raise ValueError(
                f"Synchformer: the offset classifier takes exactly {SEGMENTS} segments per stream, "
                f"got video {tuple(video_feats.shape)} and audio {tuple(audio_feats.shape)}"
            )
        b = video_feats.shape[0]
        vis = self.vproj(video_feats).reshape(b, -1, video_feats.shape[-1])
        aud = self.aproj(audio_feats).reshape(b, -1, audio_feats.shape[-1])
        return self.transformer(vis, aud)
