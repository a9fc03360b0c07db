"""Semantic teacher on LAION-CLAP: cosine between the audio and the CoT text, from a local checkpoint.

Audio is mixed to mono, resampled to 48 kHz and cropped (from the start) or repeat-padded to 10 s;
the text is the CoT's semantic module or the whole plan. Reward = plain cosine, in [-1, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from common.types import Clip, Grade
from rewards.base import Teacher, TeacherError, register_backend
from rewards.models.audio_prep import crop_start, mono_at
from rewards.models.cot_text import COT_TEXT_CHOICES, cot_text
from rewards.models.embedding_math import paired_cosine


@dataclass
class LaionClapOptions:
    """Options of the `laion_clap` semantic backend."""

    checkpoint: str = ""
    """Local path of a LAION-CLAP checkpoint (.pt as released, e.g. 630k-audioset-best.pt). Required."""
    amodel: str = "HTSAT-tiny"
    """Audio encoder: a laion_clap model-config name (HTSAT-tiny for the 630k checkpoints, HTSAT-base
    for the music ones) or a path to a .json config in the same format."""
    tmodel: str = "roberta"
    """Text encoder: `roberta` (every released checkpoint; needs roberta-base in the HF cache),
    `transformer` (CLIP-style, bundled vocabulary, no hub files), `bert` or `bart`."""
    enable_fusion: bool = False
    """Feature-fusion audio branch (the *-fusion-* checkpoints); needs torchaudio."""
    text: str = "semantic"
    """Text graded against: `semantic` (the CoT's semantic module) or `full` (all four modules joined)."""
    device: str = "auto"
    """Torch device: `auto` (CUDA when visible), `cpu`, `cuda`, `cuda:1`..."""
    batch_size: int = 8
    """Clips embedded per forward pass."""

    def __post_init__(self):
        if self.text not in COT_TEXT_CHOICES:
            raise TeacherError(f"semantic/laion_clap: option text='{self.text}' is not one of "
                               f"{', '.join(COT_TEXT_CHOICES)}")
        if self.batch_size < 1:
            raise TeacherError(f"semantic/laion_clap: option batch_size must be >= 1, got {self.batch_size}")


@register_backend("semantic", "laion_clap", LaionClapOptions)
class LaionClapTeacher(Teacher):
    """Grades audio-text agreement with a LAION-CLAP model (plain cosine similarity)."""

    reward_range = (-1.0, 1.0)
    clip_seconds = 10.0
    """Audio graded per clip: the first 10 s (shorter audio is repeat-padded by laion_clap)."""

    def __init__(self, options: LaionClapOptions | None = None):
        from rewards.models.checkpoint_files import require_path, resolve_device
        from rewards.models.laion_clap_loading import load_laion_clap

        self.options = options or LaionClapOptions()
        owner = self.describe()
        path = require_path(self.options.checkpoint, owner)
        device = resolve_device(self.options.device, owner)
        self.clap = load_laion_clap(path, self.options.amodel, self.options.tmodel, self.options.enable_fusion,
                                    device, owner)

    def grade(self, audio: Sequence[np.ndarray], sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        from rewards.models.laion_clap_loading import embed_audio, embed_texts

        owner = self.describe()
        if len(audio) != len(clips):
            raise TeacherError(f"{owner}: got {len(audio)} waveforms for {len(clips)} clips")
        texts = [cot_text(c, self.options.text, owner) for c in clips]
        unique = sorted(set(texts))
        text_emb = embed_texts(self.clap, unique)
        text_rows = text_emb[[unique.index(t) for t in texts]]

        sr, n = self.clap.sample_rate, self.clap.clip_samples
        waves = [crop_start(mono_at(a, sample_rate, sr, c.clip_id, owner), n) for a, c in zip(audio, clips)]
        bs = self.options.batch_size
        audio_emb = [embed_audio(self.clap, waves[i : i + bs]) for i in range(0, len(waves), bs)]
        cos = paired_cosine(np.concatenate([e.cpu().numpy() for e in audio_emb]), text_rows.cpu().numpy())
        return [Grade(reward=float(c), diagnostics={"cosine": float(c), "seconds_graded": w.shape[-1] / sr})
                for c, w in zip(cos, waves)]
