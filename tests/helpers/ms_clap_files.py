"""Small MS-CLAP files written in the upstream formats: a GPT-2-style BPE tokenizer and a random-weight
`{'model': state_dict}` checkpoint with the legacy GPT-2 buffers, every tensor float32."""
from __future__ import annotations

import json
from pathlib import Path

import torch

TINY_MERGES = ["Ġ b", "a r", "Ġb ar", "k s", "Ġ d", "o g", "Ġd og", "Ġ a", "e l", "Ġb el", "Ġbel l"]
"""Merges of the tiny tokenizer (byte-level symbols as GPT-2 writes them; 'Ġ' is a space)."""

TINY_ARCH = {"htsat_embed_dim": 8, "htsat_depths": [1, 1, 1, 1], "htsat_heads": [1, 1, 1, 1], "num_classes": 5,
             "text_positions": 80, "text_width": 32, "text_layers": 2, "text_heads": 2, "proj_dim": 16}
"""MsClapArch overrides of a small model (text_vocab is set from the tiny tokenizer)."""


def gpt2_byte_symbols() -> list[str]:
    """The 256 byte-level symbols in GPT-2's vocabulary order ('!' first, id 0)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    order, chars, extra = printable[:], printable[:], 0
    for b in range(256):
        if b not in printable:
            order.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def write_tiny_tokenizer(directory: Path) -> dict[str, int]:
    """vocab.json + merges.txt of a byte-level BPE: 256 bytes, TINY_MERGES, then '<|endoftext|>'. Returns the vocab."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = {s: i for i, s in enumerate(gpt2_byte_symbols())}
    for merge in TINY_MERGES:
        vocab["".join(merge.split())] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(TINY_MERGES) + "\n", encoding="utf-8")
    return vocab


def upstream_state(model: torch.nn.Module, n_layers: int, n_positions: int, legacy: bool = True) -> dict:
    """`model.state_dict()` as the release stores it: everything float32, plus the legacy GPT-2 buffers."""
    state = {k: v.detach().clone().to(torch.float32) for k, v in model.state_dict().items()}
    if legacy:
        mask = torch.tril(torch.ones(n_positions, n_positions)).view(1, 1, n_positions, n_positions)
        for i in range(n_layers):
            state[f"caption_encoder.base.h.{i}.attn.bias"] = mask.clone()
            state[f"caption_encoder.base.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return state


def randomize_buffers(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics and logit_scale, so a load that skipped them would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=g) * 5.0)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=g) * 20.0 + 5.0)
            elif name.endswith("num_batches_tracked"):
                buf.fill_(1234)
        model.logit_scale.fill_(3.1)
