"""MS-CLAP as plain torch: laion_clap's HTS-AT, a transformers GPT-2 built from a config, two projections.

Module names follow msclap's `CLAP` class, so `state_dict()` has the names, shapes and order of
`CLAP_weights_2023.pth`. Nothing is fetched: GPT-2 comes from `GPT2Config`, its weights from the file.
laion_clap (a PrismRL dependency) is imported when a model is built, not when this module is.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from rewards.models.ms_clap.arch import MsClapArch


class Projection(nn.Module):
    """msclap's projection head: e1 = W1 x; out = LayerNorm(e1 + dropout(W2 gelu(e1))), no biases."""

    def __init__(self, d_in: int, d_out: int, p: float = 0.5):
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.linear1(x)
        e2 = self.drop(self.linear2(F.gelu(e1)))
        return self.layer_norm(e1 + e2)


def htsat_front_end_config(arch: MsClapArch) -> SimpleNamespace:
    """The `config` object laion_clap's HTS-AT reads its spectrogram settings from."""
    return SimpleNamespace(sample_rate=arch.mel_sample_rate, window_size=arch.n_fft, hop_size=arch.hop,
                           mel_bins=arch.mel_bins, fmin=arch.fmin, fmax=arch.fmax, class_num=arch.num_classes)


def build_htsat(arch: MsClapArch) -> nn.Module:
    """laion_clap's `HTSAT_Swin_Transformer` with MS-CLAP's sizes and front end (random weights)."""
    from laion_clap.clap_module.htsat import HTSAT_Swin_Transformer

    return HTSAT_Swin_Transformer(
        spec_size=arch.spec_size, patch_size=arch.patch_size, patch_stride=(arch.patch_size, arch.patch_size),
        num_classes=arch.num_classes, embed_dim=arch.htsat_embed_dim, depths=list(arch.htsat_depths),
        num_heads=list(arch.htsat_heads), window_size=arch.htsat_window, config=htsat_front_end_config(arch))


class HtsatBase(nn.Module):
    """`audio_encoder.base`: holds the HTS-AT as `.htsat` (msclap's HTSATWrapper)."""

    def __init__(self, arch: MsClapArch):
        super().__init__()
        self.htsat = build_htsat(arch)

    def log_mel(self, waves: torch.Tensor) -> torch.Tensor:
        """`[B, 1, T, mel_bins]` dB log-mel of `[B, N]` waveforms (before HTS-AT's BatchNorm)."""
        return self.htsat.logmel_extractor(self.htsat.spectrogram_extractor(waves))

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Pooled HTS-AT embedding `[B, audio_width]`: the mean of the final Swin tokens."""
        return self.htsat({"waveform": waves}, device=waves.device)["embedding"]


class AudioEncoder(nn.Module):
    """`audio_encoder`: HTS-AT then the projection."""

    def __init__(self, arch: MsClapArch):
        super().__init__()
        self.base = HtsatBase(arch)
        self.projection = Projection(arch.audio_width, arch.proj_dim)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.projection(self.base(waves))


def gpt2_config(arch: MsClapArch):
    """A transformers `GPT2Config` of the given size (GPT-2 small by default; nothing from the hub)."""
    from transformers import GPT2Config

    eot = arch.text_vocab - 1  # '<|endoftext|>' is GPT-2's last id
    return GPT2Config(vocab_size=arch.text_vocab, n_positions=arch.text_positions, n_embd=arch.text_width,
                      n_layer=arch.text_layers, n_head=arch.text_heads, bos_token_id=eot, eos_token_id=eot)


def pooled_index(input_ids: torch.Tensor) -> torch.Tensor:
    """msclap's pooling position per row: (number of non-zero ids) - 1.

    The captions are padded with '!' (id 0), so this is normally the end-of-text token; a '!' inside
    the text counts as padding too and moves the index one step earlier per '!'.
    """
    return torch.ne(input_ids, 0).sum(-1) - 1


class TextEncoder(nn.Module):
    """`caption_encoder`: GPT-2, the hidden state at `pooled_index`, then the projection."""

    def __init__(self, arch: MsClapArch, meta: bool = False):
        super().__init__()
        from transformers import GPT2Model

        if meta:  # shapes only: no memory, no random init (layout checks)
            with torch.device("meta"):
                self.base = GPT2Model(gpt2_config(arch))
        else:
            self.base = GPT2Model(gpt2_config(arch))
        self.projection = Projection(arch.text_width, arch.proj_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        rows = torch.arange(input_ids.shape[0], device=hidden.device)
        return self.projection(hidden[rows, pooled_index(input_ids)])


class MsClapModel(nn.Module):
    """msclap's `CLAP`: `logit_scale`, `audio_encoder`, `caption_encoder` (state_dict in that order)."""

    def __init__(self, arch: MsClapArch | None = None, meta_text: bool = False):
        """meta_text: build GPT-2 on the meta device (tensor shapes only, for layout checks; cannot run)."""
        super().__init__()
        self.arch = arch or MsClapArch()
        self.audio_encoder = AudioEncoder(self.arch)
        self.caption_encoder = TextEncoder(self.arch, meta=meta_text)
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))

    def forward(self, waves: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """(text embeddings, audio embeddings, exp(logit_scale)), as msclap's CLAP.forward."""
        return self.caption_encoder(input_ids, attention_mask), self.audio_encoder(waves), self.logit_scale.exp()


def similarity(audio_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """msclap's `compute_similarity`: exp(logit_scale) x cosine, `[B_audio, B_text]`."""
    a = audio_emb / torch.norm(audio_emb, dim=-1, keepdim=True)
    t = text_emb / torch.norm(text_emb, dim=-1, keepdim=True)
    return (logit_scale.exp() * t @ a.T).T
