"""CoT text -> condition tokens: a builtin hashing tokenizer + trained embedding, or a frozen T5.

Each CoT module (`common.types.COT_MODULES`) is tokenized on its own into at most
`max_tokens_per_module` tokens, so `prepare` yields ids [B, 4, L] and a mask [B, 4, L]; the
encoder returns [B, 4*L, width] plus the mask, with a learned segment embedding per module and a
learned position embedding within a module added to every token.
"""
from __future__ import annotations

import re
import zlib
from typing import Sequence

import torch
from torch import nn

from common.types import COT_MODULES
from policies.config import TextEncoderConfig

PAD_ID = 0
"""Token id of padding in the builtin tokenizer."""

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def hash_word_ids(text: str, vocab_size: int, max_tokens: int) -> list[int]:
    """Deterministic word ids in [1, vocab_size): lower-cased words and punctuation, CRC32-hashed."""
    if vocab_size < 2:
        raise ValueError(f"policy.text_encoder.vocab_size must be >= 2, got {vocab_size}")
    words = _WORD.findall(text.lower())[:max_tokens]
    return [1 + zlib.crc32(w.encode("utf-8")) % (vocab_size - 1) for w in words]


def pad_ids(rows: Sequence[Sequence[int]], length: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [R, length] int64, mask [R, length] bool) from ragged id lists."""
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, row in enumerate(rows):
        row = list(row)[:length]
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    return ids, mask


class CotTextEncoder(nn.Module):
    """Tokenizes CoT plans (`tokenize`, CPU side) and embeds them (`forward`)."""

    def __init__(self, cfg: TextEncoderConfig, width: int):
        super().__init__()
        self.cfg = cfg
        self.length = cfg.max_tokens_per_module
        self.segment = nn.Parameter(torch.randn(len(COT_MODULES), width) * 0.02)
        self.position = nn.Parameter(torch.randn(self.length, width) * 0.02)
        self.tokenizer = None
        if cfg.kind == "builtin":
            self.embed = nn.Embedding(cfg.vocab_size, width)
            nn.init.normal_(self.embed.weight, std=0.02)
        elif cfg.kind == "transformers":
            self.encoder, self.tokenizer = _load_frozen_encoder(cfg.path)
            self.proj = nn.Linear(self.encoder.config.d_model if hasattr(self.encoder.config, "d_model")
                                  else self.encoder.config.hidden_size, width)
        else:
            raise ValueError(f"policy.text_encoder.kind: unknown '{cfg.kind}' (builtin or transformers)")

    def train(self, mode: bool = True) -> "CotTextEncoder":
        """Train mode for the trained parts; a frozen encoder always stays in eval mode (no dropout)."""
        super().train(mode)
        if self.cfg.kind == "transformers":
            self.encoder.eval()
        return self

    def frozen_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes (relative to this module) of frozen weights not saved in checkpoints."""
        return ("encoder.",) if self.cfg.kind == "transformers" else ()

    def tokenize(self, cots: Sequence[dict[str, str]]) -> dict[str, torch.Tensor]:
        """{'text_ids': [B, 4, L] int64, 'text_mask': [B, 4, L] bool} for a batch of plans."""
        texts = [c.get(m, "") or "" for c in cots for m in COT_MODULES]
        if self.tokenizer is None:
            rows = [hash_word_ids(t, self.cfg.vocab_size, self.length) for t in texts]
            ids, mask = pad_ids(rows, self.length, PAD_ID)
        else:
            enc = self.tokenizer(texts, max_length=self.length, truncation=True, padding="max_length",
                                 return_tensors="pt")
            ids, mask = enc["input_ids"].long(), enc["attention_mask"].bool()
        shape = (len(cots), len(COT_MODULES), self.length)
        return {"text_ids": ids.reshape(shape), "text_mask": mask.reshape(shape)}

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens [B, 4*L, width] and mask [B, 4*L] from `tokenize`'s output."""
        b, m, length = ids.shape
        if self.tokenizer is None:
            emb = self.embed(ids)
        else:
            with torch.no_grad():
                flat_mask = mask.reshape(b * m, length)
                # An empty module still gets one attended position so the encoder sees no all-masked row.
                safe = flat_mask.clone()
                safe[:, 0] = True
                hidden = self.encoder(input_ids=ids.reshape(b * m, length), attention_mask=safe.long())
                hidden = hidden.last_hidden_state.reshape(b, m, length, -1)
            emb = self.proj(hidden.float())
        emb = emb + self.segment[None, :, None, :] + self.position[None, None, :, :]
        return emb.reshape(b, m * length, -1), mask.reshape(b, m * length)


def _load_frozen_encoder(path: str | None):
    """(frozen encoder, tokenizer) from a local transformers directory."""
    import os

    if not path:
        raise ValueError("policy.text_encoder.path is required when policy.text_encoder.kind=transformers")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"policy.text_encoder.path: no directory at '{path}'")
    from transformers import AutoConfig, AutoModel, AutoTokenizer, T5EncoderModel

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    if getattr(config, "model_type", "") in ("t5", "mt5", "umt5"):
        encoder = T5EncoderModel.from_pretrained(path, local_files_only=True)
    else:
        encoder = AutoModel.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if len(tokenizer) < 4:
        raise ValueError(f"policy.text_encoder.path: tokenizer at '{path}' has only {len(tokenizer)} tokens")
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder, tokenizer
