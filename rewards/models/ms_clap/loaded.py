"""A loaded MS-CLAP (model + caption tokenizer) and its two embedding calls."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from rewards.models.ms_clap.arch import MsClapArch
from rewards.models.ms_clap.checkpoint import load_ms_clap_state
from rewards.models.ms_clap.model import MsClapModel
from rewards.models.ms_clap.text import CaptionTokenizer, TokenizerFilesError, load_caption_tokenizer, tokenize_captions


@dataclass
class MsClap:
    """MS-CLAP in eval mode on its device, with its tokenizer."""

    model: MsClapModel
    """The model with the checkpoint's weights."""
    tokenizer: CaptionTokenizer
    """GPT-2 BPE from the local files."""
    device: torch.device
    """Where the model runs."""

    @property
    def arch(self) -> MsClapArch:
        return self.model.arch

    @property
    def logit_scale(self) -> float:
        """The learned log temperature (the score multiplies the cosine by exp of it)."""
        return float(self.model.logit_scale.detach().float().cpu())


def load_ms_clap(checkpoint: str, tokenizer_dir: str, arch: MsClapArch, device: torch.device) -> MsClap:
    """Tokenizer files checked first (cheap), then the model built and loaded strictly from `checkpoint`.

    Raises `TokenizerFilesError` or `state_dict_io.CheckpointError`, each naming the file at fault.
    """
    tokenizer = load_caption_tokenizer(tokenizer_dir)
    if tokenizer.vocab_size != arch.text_vocab:
        raise TokenizerFilesError(f"tokenizer '{tokenizer_dir}' has {tokenizer.vocab_size} tokens but the model's "
                                  f"text embedding has {arch.text_vocab} rows")
    model = MsClapModel(arch)
    load_ms_clap_state(model, checkpoint)
    return MsClap(model=model.to(device).eval(), tokenizer=tokenizer, device=device)


@torch.no_grad()
def embed_texts(ms: MsClap, texts: Sequence[str]) -> np.ndarray:
    """Projected caption embeddings `[B, proj_dim]` (not normalised)."""
    ids, mask = tokenize_captions(ms.tokenizer, texts, ms.arch.text_len)
    return ms.model.caption_encoder(ids.to(ms.device), mask.to(ms.device)).float().cpu().numpy()


@torch.no_grad()
def embed_audio(ms: MsClap, waves: Sequence[np.ndarray]) -> np.ndarray:
    """Projected audio embeddings `[B, proj_dim]` (not normalised) of `[clip_samples]` waveforms at 44.1 kHz."""
    n = ms.arch.clip_samples
    bad = [i for i, w in enumerate(waves) if np.shape(w) != (n,)]
    if bad:
        raise ValueError(f"embed_audio: waveforms {bad} are not of shape ({n},); fit them with fit_clip_audio first")
    x = torch.from_numpy(np.stack([np.asarray(w, dtype=np.float32) for w in waves])).to(ms.device)
    return ms.model.audio_encoder(x).float().cpu().numpy()
