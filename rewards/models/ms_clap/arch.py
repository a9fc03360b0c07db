"""MS-CLAP 2023's architecture and input format as one typed config (defaults: the released model).

The defaults give exactly the tensors of `CLAP_weights_2023.pth` (`shared/checkpoint-layouts/
msclap_2023.layout.json`); the other values exist for small random-weight models in tests.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class MsClapArch:
    """Every size and constant that the MS-CLAP model and its inputs depend on."""

    sample_rate: int = 44100
    """Audio rate the model is fed at (msclap's `sampling_rate`)."""
    clip_seconds: int = 7
    """Seconds of audio per model input (msclap's `duration`): 308,700 samples at 44.1 kHz."""
    n_fft: int = 1024
    """STFT size and window length of HTS-AT's spectrogram."""
    hop: int = 320
    """STFT hop in samples (965 frames for 7 s at 44.1 kHz)."""
    mel_bins: int = 64
    """Mel bands (HTS-AT's image is spec_size // mel_bins chunks of frames stacked along them)."""
    mel_sample_rate: int = 32000
    """Rate the mel matrix is built for. msclap's HTS-AT module config wins over its YAML (44,100);
    the saved `melW` tensor is what the model uses, this only sets the random-weight build."""
    fmin: float = 50.0
    """Lowest mel frequency of the built mel matrix (Hz)."""
    fmax: float = 14000.0
    """Highest mel frequency of the built mel matrix (Hz)."""
    htsat_embed_dim: int = 96
    """HTS-AT (Swin) patch embedding width; the audio embedding is 8x this (768)."""
    htsat_depths: tuple[int, ...] = (2, 2, 6, 2)
    """Swin blocks per stage."""
    htsat_heads: tuple[int, ...] = (4, 8, 16, 32)
    """Attention heads per stage."""
    htsat_window: int = 8
    """Swin window size (tokens)."""
    spec_size: int = 256
    """Side of the square spectrogram image HTS-AT folds the log-mel into."""
    patch_size: int = 4
    """Swin patch size (and stride)."""
    num_classes: int = 527
    """AudioSet classes of HTS-AT's token-semantic head (unused by the score, kept for the weights)."""
    text_vocab: int = 50257
    """GPT-2 vocabulary size."""
    text_positions: int = 1024
    """GPT-2 position embeddings (and the size of the legacy causal-mask buffers)."""
    text_width: int = 768
    """GPT-2 hidden size."""
    text_layers: int = 12
    """GPT-2 blocks."""
    text_heads: int = 12
    """GPT-2 attention heads."""
    text_len: int = 77
    """Tokens per caption (padded with '!', id 0)."""
    proj_dim: int = 1024
    """Shared embedding size of the two projection heads."""

    def __post_init__(self):
        object.__setattr__(self, "htsat_depths", tuple(int(d) for d in self.htsat_depths))
        object.__setattr__(self, "htsat_heads", tuple(int(h) for h in self.htsat_heads))
        if len(self.htsat_depths) != len(self.htsat_heads):
            raise ValueError(f"MsClapArch: htsat_depths {self.htsat_depths} and htsat_heads {self.htsat_heads} "
                             "need one entry per stage")
        if self.spec_size % self.mel_bins:
            raise ValueError(f"MsClapArch: spec_size {self.spec_size} must be a multiple of mel_bins {self.mel_bins}")
        if self.text_width % self.text_heads:
            raise ValueError(f"MsClapArch: text_width {self.text_width} is not a multiple of text_heads "
                             f"{self.text_heads}")
        if self.text_len > self.text_positions:
            raise ValueError(f"MsClapArch: text_len {self.text_len} exceeds text_positions {self.text_positions}")

    @property
    def clip_samples(self) -> int:
        """Samples per model input: clip_seconds x sample_rate."""
        return int(self.clip_seconds * self.sample_rate)

    @property
    def audio_width(self) -> int:
        """Width of HTS-AT's pooled embedding (the audio projection's input)."""
        return self.htsat_embed_dim * 2 ** (len(self.htsat_depths) - 1)


def arch_from_options(overrides: Mapping[str, Any] | None, owner: str) -> MsClapArch:
    """The released architecture with `overrides` (field -> value) applied; unknown fields raise naming them."""
    overrides = dict(overrides or {})
    fields = {f.name for f in dataclasses.fields(MsClapArch)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"{owner}: option arch: unknown fields {unknown}; known: {', '.join(sorted(fields))}")
    return MsClapArch(**overrides)
