"""MS-CLAP 2023's caption tokens: GPT-2 byte-level BPE from local `vocab.json` + `merges.txt`.

As msclap: the text gets ' <|endoftext|>' appended and is padded with '!' (id 0) to 77 tokens, with
an attention mask of ones over the tokens. msclap does not truncate (a longer caption breaks its
batch); here a caption longer than 77 tokens keeps its first 76 tokens and the end-of-text token,
with a warning. The tokenizer is built with the `tokenizers` library (what transformers' GPT-2 fast
tokenizer wraps), whose constructor is the same under transformers 4 and 5.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Sequence

import torch

log = logging.getLogger(__name__)

TOKENIZER_FILES: tuple[str, ...] = ("vocab.json", "merges.txt")
"""Files a tokenizer directory must hold (the Hugging Face `gpt2` repository has both)."""
END_OF_TEXT = "<|endoftext|>"
"""GPT-2's end-of-text token, appended to every caption."""
PAD = "!"
"""msclap's pad token; its id must be 0, since the pooling rule counts non-zero ids."""


class TokenizerFilesError(ValueError):
    """A tokenizer directory lacks a file or holds one that is not GPT-2's format; the message names it."""


@dataclass
class CaptionTokenizer:
    """A GPT-2 BPE tokenizer and the ids msclap's caption rule needs."""

    bpe: object
    """`tokenizers.Tokenizer` (byte-level BPE, end-of-text as a special token)."""
    vocab_size: int
    """Entries of vocab.json (must equal the model's embedding rows)."""
    eot_id: int
    """Id of '<|endoftext|>'."""
    source: str
    """Directory the files came from (for messages)."""

    def ids(self, text: str) -> list[int]:
        """Token ids of `text + ' <|endoftext|>'`, as msclap builds them (no padding, no truncation)."""
        return list(self.bpe.encode(text + " " + END_OF_TEXT).ids)


def load_caption_tokenizer(directory: str) -> CaptionTokenizer:
    """GPT-2 BPE from `directory`/vocab.json and merges.txt; `TokenizerFilesError` naming any missing or bad file."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    if not os.path.isdir(directory):
        raise TokenizerFilesError(f"tokenizer directory '{directory}' does not exist")
    paths = {name: os.path.join(directory, name) for name in TOKENIZER_FILES}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        raise TokenizerFilesError(f"tokenizer file(s) missing: {', '.join(missing)} "
                                  f"(GPT-2's {' + '.join(TOKENIZER_FILES)})")
    try:
        with open(paths["vocab.json"], encoding="utf-8") as f:
            vocab = json.load(f)
        bpe = Tokenizer(models.BPE.from_file(paths["vocab.json"], paths["merges.txt"]))
    except Exception as err:
        raise TokenizerFilesError(f"tokenizer files in '{directory}' cannot be read as GPT-2 BPE "
                                  f"({type(err).__name__}: {err})") from err
    if vocab.get(PAD) != 0:
        raise TokenizerFilesError(f"{paths['vocab.json']}: pad token '{PAD}' has id {vocab.get(PAD)}, not 0 "
                                  "(msclap pools at the number of non-zero ids)")
    if END_OF_TEXT not in vocab:
        raise TokenizerFilesError(f"{paths['vocab.json']}: has no '{END_OF_TEXT}' token")
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens([AddedToken(END_OF_TEXT, special=True)])
    return CaptionTokenizer(bpe=bpe, vocab_size=len(vocab), eot_id=int(vocab[END_OF_TEXT]), source=directory)


def caption_ids(ids: Sequence[int], text_len: int, eot_id: int) -> tuple[list[int], bool]:
    """(ids fitted to at most `text_len` tokens, whether they were cut): a cut keeps the end-of-text token last."""
    ids = list(ids)
    if len(ids) <= text_len:
        return ids, False
    return ids[: text_len - 1] + [eot_id], True


def tokenize_captions(tok: CaptionTokenizer, texts: Sequence[str], text_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(`input_ids`, `attention_mask`), both `[B, text_len]` int64: captions padded with id 0 ('!')."""
    ids = torch.zeros(len(texts), text_len, dtype=torch.long)
    mask = torch.zeros(len(texts), text_len, dtype=torch.long)
    for i, text in enumerate(texts):
        row, cut = caption_ids(tok.ids(text), text_len, tok.eot_id)
        if cut:
            log.warning("ms_clap: caption of %d tokens truncated to %d (first %d tokens + end-of-text): %.60r...",
                        len(tok.ids(text)), text_len, text_len - 1, text)
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask
