"""Semantic teacher on MS-CLAP 2023, PrismAudio's choice: `exp(logit_scale) * cos(audio, text) / 80`.

Audio is mixed to mono, resampled to 44.1 kHz and cropped (from the start) or tiled to 7 s, as
msclap's own loader does (it crops at random; here the crop is deterministic).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from common.types import Clip, Grade
from rewards.base import Teacher, TeacherError, register_backend
from rewards.formulas import ms_clap_score
from rewards.models.audio_prep import crop_start, mono_at, tile_to_length
from rewards.models.checkpoint_files import require_path, resolve_device
from rewards.models.cot_text import COT_TEXT_CHOICES, cot_text
from rewards.models.embedding_math import paired_cosine
from rewards.models.ms_clap_loading import MSCLAP_VERSIONS, embed_audio, embed_texts, load_ms_clap


@dataclass
class MsClapOptions:
    """Options of the `ms_clap` semantic backend."""

    checkpoint: str = ""
    """Local path of the msclap weights file (CLAP_weights_2023.pth). Required."""
    version: str = "2023"
    """msclap model version matching the weights: `2023` (PrismAudio) or `2022`."""
    text: str = "semantic"
    """Text graded against: `semantic` (the CoT's semantic module) or `full` (all four modules joined)."""
    device: str = "auto"
    """Torch device: `auto` (CUDA when visible), `cpu`, `cuda`..."""
    batch_size: int = 8
    """Clips embedded per forward pass."""

    def __post_init__(self):
        if self.version not in MSCLAP_VERSIONS:
            raise TeacherError(f"semantic/ms_clap: option version='{self.version}' is not one of "
                               f"{', '.join(MSCLAP_VERSIONS)}")
        if self.text not in COT_TEXT_CHOICES:
            raise TeacherError(f"semantic/ms_clap: option text='{self.text}' is not one of "
                               f"{', '.join(COT_TEXT_CHOICES)}")
        if self.batch_size < 1:
            raise TeacherError(f"semantic/ms_clap: option batch_size must be >= 1, got {self.batch_size}")


@register_backend("semantic", "ms_clap", MsClapOptions)
class MsClapTeacher(Teacher):
    """Grades audio-text agreement with MS-CLAP, scaled as in PrismAudio."""

    def __init__(self, options: MsClapOptions | None = None):
        self.options = options or MsClapOptions()
        owner = self.describe()
        path = require_path(self.options.checkpoint, owner)
        device = resolve_device(self.options.device, owner)
        self.ms = load_ms_clap(path, self.options.version, device, owner)
        bound = float(ms_clap_score(1.0, self.ms.logit_scale))
        self.reward_range = (-bound, bound)

    def grade(self, audio: Sequence[np.ndarray], sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        owner = self.describe()
        if len(audio) != len(clips):
            raise TeacherError(f"{owner}: got {len(audio)} waveforms for {len(clips)} clips")
        texts = [cot_text(c, self.options.text, owner) for c in clips]
        unique = sorted(set(texts))
        text_emb = embed_texts(self.ms, unique)[[unique.index(t) for t in texts]]

        sr, n = self.ms.sample_rate, self.ms.clip_samples
        waves = [tile_to_length(crop_start(mono_at(a, sample_rate, sr, c.clip_id, owner), n), n)
                 for a, c in zip(audio, clips)]
        bs = self.options.batch_size
        audio_emb = np.concatenate([embed_audio(self.ms, waves[i : i + bs]) for i in range(0, len(waves), bs)])
        return grades_from_embeddings(audio_emb, text_emb, self.ms.logit_scale)


def grades_from_embeddings(audio_emb: np.ndarray, text_emb: np.ndarray, logit_scale: float) -> list[Grade]:
    """MS-CLAP grades of paired `[B, D]` embeddings: reward `exp(logit_scale) * cos / 80`."""
    cos = paired_cosine(audio_emb, text_emb)
    scores = ms_clap_score(cos, logit_scale)
    return [Grade(reward=float(s), diagnostics={"cosine": float(c), "logit_scale_exp": math.exp(logit_scale)})
            for s, c in zip(scores, cos)]
