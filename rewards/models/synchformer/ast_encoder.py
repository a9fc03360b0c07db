"""Synchformer's audio encoder: an Audio Spectrogram Transformer (AST, ViT-B) on 0.64 s log-mels.

Input: normalized log-mel segments `[N, 128 mel, 66 frames]`. 16x16 patches with stride 10 in both
axes give 12 (frequency) x 6 (time) tokens, plus CLS and distillation tokens (74 positions: the
AudioSet AST's position table truncated to a 66-frame input). 12 pre-norm encoder layers
(LayerNorm eps 1e-12), a final LayerNorm; the two auxiliary tokens are dropped and the 12
frequency tokens of each time step are pooled by `freq_attn_agg`: output `[N, 6, 768]`.

Parameter names follow the Hugging Face ASTModel layout the checkpoint uses
(`ast.embeddings.*`, `ast.encoder.layer.{i}.attention.attention.query` ...). Facts from
hkchengrex/av-benchmark av_bench/synchformer/{ast.py,hf_src/modeling_ast.py}; plain torch here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rewards.models.synchformer.cls_pool import ClsTokenPool

HIDDEN = 768
LAYERS = 12
HEADS = 12
FFN = 3072
N_MELS = 128
SPEC_FRAMES = 66
PATCH = 16
STRIDE = 10
FREQ_TOKENS = (N_MELS - PATCH) // STRIDE + 1  # 12
TIME_TOKENS = (SPEC_FRAMES - PATCH) // STRIDE + 1  # 6
LN_EPS = 1e-12


class PatchEmbeddings(nn.Module):
    """`[N, 1, F, T]` spectrogram -> `[N, F'*T', D]` tokens, frequency-major."""

    def __init__(self):
        super().__init__()
        self.projection = nn.Conv2d(1, HIDDEN, kernel_size=PATCH, stride=STRIDE)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.projection(spec).flatten(2).transpose(1, 2)


class Embeddings(nn.Module):
    """CLS + distillation tokens + patch tokens + learned positions."""

    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, HIDDEN))
        self.distillation_token = nn.Parameter(torch.zeros(1, 1, HIDDEN))
        self.patch_embeddings = PatchEmbeddings()
        self.position_embeddings = nn.Parameter(torch.zeros(1, FREQ_TOKENS * TIME_TOKENS + 2, HIDDEN))
        for p in (self.cls_token, self.distillation_token, self.position_embeddings):
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        n = spec.shape[0]
        tokens = self.patch_embeddings(spec)
        aux = torch.cat([self.cls_token.expand(n, -1, -1), self.distillation_token.expand(n, -1, -1)], dim=1)
        return torch.cat([aux, tokens], dim=1) + self.position_embeddings


class SelfAttention(nn.Module):
    """query/key/value projections (HF naming); scaled dot-product attention over all tokens."""

    def __init__(self):
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        q, k, v = (p(x).reshape(n, length, HEADS, HIDDEN // HEADS).transpose(1, 2) for p in (self.query, self.key, self.value))
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, HIDDEN)


class DenseOut(nn.Module):
    """A `dense` linear layer (HF's ASTSelfOutput / ASTIntermediate / ASTOutput naming)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


class Attention(nn.Module):
    """`attention.attention` (q/k/v) then `attention.output.dense`."""

    def __init__(self):
        super().__init__()
        self.attention = SelfAttention()
        self.output = DenseOut(HIDDEN, HIDDEN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.attention(x))


class Layer(nn.Module):
    """Pre-norm encoder layer: x + attn(LN(x)); x + out(GELU(intermediate(LN(x))))."""

    def __init__(self):
        super().__init__()
        self.attention = Attention()
        self.intermediate = DenseOut(HIDDEN, FFN)
        self.output = DenseOut(FFN, HIDDEN)
        self.layernorm_before = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.layernorm_after = nn.LayerNorm(HIDDEN, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.layernorm_before(x))
        return x + self.output(F.gelu(self.intermediate(self.layernorm_after(x))))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.ModuleList(Layer() for _ in range(LAYERS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            x = layer(x)
        return x


class ASTModel(nn.Module):
    """Embeddings, encoder, final LayerNorm: `[N, F, T]` -> `[N, 2 + 12*6, D]`."""

    def __init__(self):
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = Encoder()
        self.layernorm = nn.LayerNorm(HIDDEN, eps=LN_EPS)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.layernorm(self.encoder(self.embeddings(spec.unsqueeze(1))))


class AudioEncoder(nn.Module):
    """Log-mel segments `[N, 128, 66]` -> features `[N, 6, 768]` (one per 0.1 s time patch)."""

    def __init__(self):
        super().__init__()
        self.ast = ASTModel()
        self.freq_attn_agg = ClsTokenPool(HIDDEN, HEADS, FFN)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if spec.shape[1:] != (N_MELS, SPEC_FRAMES):
            raise ValueError(f"AST: expected log-mel segments [N, {N_MELS}, {SPEC_FRAMES}], got {tuple(spec.shape)}")
        n = spec.shape[0]
        tokens = self.ast(spec)[:, 2:]  # [n, F'*T', D], frequency-major
        per_time = tokens.reshape(n, FREQ_TOKENS, TIME_TOKENS, HIDDEN).transpose(1, 2)
        pooled = self.freq_attn_agg(per_time.reshape(n * TIME_TOKENS, FREQ_TOKENS, HIDDEN))
        return pooled.reshape(n, TIME_TOKENS, HIDDEN)
