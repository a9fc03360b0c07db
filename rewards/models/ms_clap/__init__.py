"""MS-CLAP 2023 (PrismAudio's semantic teacher) in PrismRL: plain torch, no msclap, no torchaudio.

HTS-AT is laion_clap's class, GPT-2 a transformers model built from `GPT2Config`; both load their
weights from `CLAP_weights_2023.pth` strictly. `../shared/MSCLAP.md` describes the reference.
"""
from rewards.models.ms_clap.arch import MsClapArch, arch_from_options
from rewards.models.ms_clap.audio import CHANNEL_MODES, channels_to_one, fit_clip_audio
from rewards.models.ms_clap.checkpoint import legacy_gpt2_buffers, load_ms_clap_state
from rewards.models.ms_clap.loaded import MsClap, embed_audio, embed_texts, load_ms_clap
from rewards.models.ms_clap.model import MsClapModel, Projection, pooled_index, similarity
from rewards.models.ms_clap.text import (
    CaptionTokenizer,
    TokenizerFilesError,
    caption_ids,
    load_caption_tokenizer,
    tokenize_captions,
)
from rewards.models.state_dict_io import CheckpointError

__all__ = [
    "CHANNEL_MODES",
    "CaptionTokenizer",
    "CheckpointError",
    "MsClap",
    "MsClapArch",
    "MsClapModel",
    "Projection",
    "TokenizerFilesError",
    "arch_from_options",
    "caption_ids",
    "channels_to_one",
    "embed_audio",
    "embed_texts",
    "fit_clip_audio",
    "legacy_gpt2_buffers",
    "load_caption_tokenizer",
    "load_ms_clap",
    "load_ms_clap_state",
    "pooled_index",
    "similarity",
    "tokenize_captions",
]
