"""Synchformer's offset classifier: a 3-layer transformer over `[OFF] v... [MOD] a...` tokens.

14 segments give 14*8 visual and 14*6 audio tokens; with the two auxiliary tokens that is the
198 positions of the learned position table, so the classifier always sees exactly 14 segments
(4.8 s). The OFF token's output goes through `ln_f` and `off_head` to 21 logits, one per offset
class -2.0, -1.8, ..., +2.0 s. Facts from hkchengrex/av-benchmark
av_bench/synchformer/transformer.py (a minGPT-style block: ln1/attn, ln2/mlp); plain torch here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DIM = 768
HEADS = 8
LAYERS = 3
OFFSET_CLASSES = 21
SEGMENTS = 14
VIDEO_TOKENS_PER_SEGMENT = 8
AUDIO_TOKENS_PER_SEGMENT = 6
SEQ_LEN = 2 + SEGMENTS * (VIDEO_TOKENS_PER_SEGMENT + AUDIO_TOKENS_PER_SEGMENT)  # 198


class PositionTable(nn.Module):
    """The learned position table (`pos_emb_cfg.pos_emb`, name kept from the checkpoint)."""

    def __init__(self):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.randn(1, SEQ_LEN, DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos_emb


class SelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.key = nn.Linear(DIM, DIM)
        self.query = nn.Linear(DIM, DIM)
        self.value = nn.Linear(DIM, DIM)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        q, k, v = (p(x).reshape(n, length, HEADS, DIM // HEADS).transpose(1, 2) for p in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, DIM)
        return self.proj(y)


class Block(nn.Module):
    """x + attn(ln1(x)); x + mlp(ln2(x)) with mlp = Linear, GELU, Linear (indices 0 and 2)."""

    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(DIM)
        self.ln2 = nn.LayerNorm(DIM)
        self.attn = SelfAttention()
        self.mlp = nn.Sequential(nn.Linear(DIM, 4 * DIM), nn.GELU(), nn.Linear(4 * DIM, DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class SyncTransformer(nn.Module):
    """Visual `[B, 112, D]` and audio `[B, 84, D]` tokens -> offset logits `[B, 21]`."""

    def __init__(self):
        super().__init__()
        self.vis_in_lnorm = nn.LayerNorm(DIM)
        self.aud_in_lnorm = nn.LayerNorm(DIM)
        self.OFF_tok = nn.Parameter(torch.randn(1, 1, DIM))
        self.MOD_tok = nn.Parameter(torch.randn(1, 1, DIM))
        self.pos_emb_cfg = PositionTable()
        self.blocks = nn.Sequential(*(Block() for _ in range(LAYERS)))
        self.ln_f = nn.LayerNorm(DIM)
        self.off_head = nn.Linear(DIM, OFFSET_CLASSES)

    def forward(self, vis: torch.Tensor, aud: torch.Tensor) -> torch.Tensor:
        b = vis.shape[0]
        if vis.shape[1] + aud.shape[1] + 2 != SEQ_LEN:
            raise ValueError(
                f"SyncTransformer: needs {SEGMENTS} segments ({SEGMENTS * VIDEO_TOKENS_PER_SEGMENT} visual + "
                f"{SEGMENTS * AUDIO_TOKENS_PER_SEGMENT} audio tokens), got {vis.shape[1]} + {aud.shape[1]}"
            )
        x = torch.cat(
            [self.OFF_tok.expand(b, -1, -1), self.vis_in_lnorm(vis), self.MOD_tok.expand(b, -1, -1), self.aud_in_lnorm(aud)],
            dim=1,
        )
        x = self.ln_f(self.blocks(self.pos_emb_cfg(x)))
        return self.off_head(x[:, 0])
