"""Synchformer's video encoder: a MotionFormer ViT-B/16 with divided space-time attention.

Input: segments of 16 RGB frames at 224x224, normalized to [-1, 1], shaped `[N, 3, 16, 224, 224]`.
Tubelets of 2x16x16 give 8 x 14 x 14 patch tokens plus one CLS token. Each of the 12 blocks
attends over time (per spatial position), then over space (per frame), then an MLP, all
pre-norm (`norm3`, `norm1`, `norm2` respectively, as the checkpoint names them). After the final
norm the CLS token is dropped and each frame's 196 patches are pooled by `spatial_attn_agg`:
output `[N, 8, 768]`, one vector per pair of frames.

Facts from hkchengrex/av-benchmark av_bench/synchformer/{motionformer,video_model_builder,
vit_helper}.py and divided_224_16x4.yaml; written afresh in plain torch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rewards.models.synchformer.cls_pool import ClsTokenPool

EMBED_DIM = 768
DEPTH = 12
HEADS = 12
PATCH = 16
TUBELET_FRAMES = 2
FRAMES_PER_SEGMENT = 16
IMAGE_SIZE = 224
GRID = IMAGE_SIZE // PATCH  # 14 patches per side
TIME_TOKENS = FRAMES_PER_SEGMENT // TUBELET_FRAMES  # 8


class PatchEmbed2D(nn.Module):
    """The unused 2D patch embedding the checkpoint still carries (`patch_embed.proj`)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv2d(3, EMBED_DIM, kernel_size=PATCH, stride=PATCH)
        self.requires_grad_(False)


class PatchEmbed3D(nn.Module):
    """2x16x16 tubelets -> tokens `[N, 8*14*14, D]`, time-major (frame block, then row, then column)."""

    def __init__(self):
        super().__init__()
        k = (TUBELET_FRAMES, PATCH, PATCH)
        self.proj = nn.Conv3d(3, EMBED_DIM, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DividedAttention(nn.Module):
    """Multi-head attention along one axis (time or space) of `[N, 1 + T*P, D]` tokens.

    The CLS query attends to every token; each patch query attends to the CLS token plus the
    patches sharing its spatial position (`axis='time'`) or its frame (`axis='space'`).
    """

    def __init__(self, dim: int = EMBED_DIM, heads: int = HEADS):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, axis: str, frames: int) -> torch.Tensor:
        n, length, dim = x.shape
        h, dh = self.heads, dim // self.heads
        patches = (length - 1) // frames
        q, k, v = (t.reshape(n, length, h, dh).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # [n, h, 1, dh]

        def split(t: torch.Tensor) -> torch.Tensor:
            # [n, h, T*P, dh] -> [n*h*groups, group_len, dh]
            t = t[:, :, 1:].reshape(n, h, frames, patches, dh)
            if axis == "time":
                t = t.transpose(2, 3)  # groups = patches, sequence over frames
            return t.reshape(-1, t.shape[-2], dh)

        groups = patches if axis == "time" else frames
        cls_k = k[:, :, :1].unsqueeze(2).expand(n, h, groups, 1, dh).reshape(-1, 1, dh)
        cls_v = v[:, :, :1].unsqueeze(2).expand(n, h, groups, 1, dh).reshape(-1, 1, dh)
        out = F.scaled_dot_product_attention(
            split(q), torch.cat([cls_k, split(k)], dim=1), torch.cat([cls_v, split(v)], dim=1)
        )
        if axis == "time":
            out = out.reshape(n, h, patches, frames, dh).transpose(2, 3)
        out = out.reshape(n, h, frames * patches, dh)
        out = torch.cat([cls_out, out], dim=2).transpose(1, 2).reshape(n, length, dim)
        return self.proj(out)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int = EMBED_DIM, hidden: int = 4 * EMBED_DIM):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DividedSpaceTimeBlock(nn.Module):
    """Time attention (norm3), then space attention (norm1), then MLP (norm2); residual each."""

    def __init__(self, dim: int = EMBED_DIM):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DividedAttention(dim)
        self.timeattn = DividedAttention(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        x = x + self.timeattn(self.norm3(x), "time", frames)
        x = x + self.attn(self.norm1(x), "space", frames)
        return x + self.mlp(self.norm2(x))


class MotionFormer(nn.Module):
    """Video segments `[N, 3, 16, 224, 224]` in [-1, 1] -> features `[N, 8, 768]`."""

    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, EMBED_DIM))
        self.pos_embed = nn.Parameter(torch.zeros(1, GRID * GRID + 1, EMBED_DIM))
        self.temp_embed = nn.Parameter(torch.zeros(1, TIME_TOKENS, EMBED_DIM))
        self.patch_embed = PatchEmbed2D()
        self.patch_embed_3d = PatchEmbed3D()
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(EMBED_DIM, eps=1e-6)
        self.spatial_attn_agg = ClsTokenPool(EMBED_DIM, HEADS, 4 * EMBED_DIM)
        for p in (self.cls_token, self.pos_embed, self.temp_embed):
            nn.init.trunc_normal_(p, std=0.02)

    def positional_embedding(self) -> torch.Tensor:
        """`[1, 1 + 8*196, D]`: the spatial table tiled over time plus the temporal table per frame block."""
        spatial = self.pos_embed[:, 1:].repeat(1, TIME_TOKENS, 1)
        temporal = self.temp_embed.repeat_interleave(GRID * GRID, dim=1)
        return torch.cat([self.pos_embed[:, :1], spatial + temporal], dim=1)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.shape[1:] != (3, FRAMES_PER_SEGMENT, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(
                f"MotionFormer: expected segments [N, 3, {FRAMES_PER_SEGMENT}, {IMAGE_SIZE}, {IMAGE_SIZE}], "
                f"got {tuple(video.shape)}"
            )
        n = video.shape[0]
        x = self.patch_embed_3d(video)
        x = torch.cat([self.cls_token.expand(n, -1, -1), x], dim=1) + self.positional_embedding()
        for block in self.blocks:
            x = block(x, TIME_TOKENS)
        x = self.norm(x[:, 1:])  # [n, 8*196, D], time-major
        per_frame = x.reshape(n * TIME_TOKENS, GRID * GRID, EMBED_DIM)
        return self.spatial_attn_agg(per_frame).reshape(n, TIME_TOKENS, EMBED_DIM)
