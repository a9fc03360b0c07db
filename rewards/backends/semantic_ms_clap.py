"""Semantic teacher on MS-CLAP 2023, PrismAudio's choice: `exp(logit_scale) * cos(audio, text) / 80`.

The model is PrismRL's own (`rewards.models.ms_clap`: laion_clap's HTS-AT, a transformers GPT-2),
loaded strictly from `CLAP_weights_2023.pth`; the caption tokenizer is GPT-2's BPE from local files.
Audio: resampled to 44.1 kHz, channels averaged (`channels: mono`) or laid end to end as msclap's
loader does (`channels: concat`), then the first 7 s (tiled when shorter). Text: the CoT's semantic
module or the whole CoT (`text: full`, as PrismAudio).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Sequence

import numpy as np

from common.types import Clip, Grade
from rewards.base import Teacher, TeacherError, register_backend
from rewards.formulas import ms_clap_score
from rewards.models.cot_text import COT_TEXT_CHOICES, cot_text
from rewards.models.embedding_math import paired_cosine

MSCLAP_VERSIONS: tuple[str, ...] = ("2023",)
"""Supported releases: 2023 (HTS-AT + GPT-2). 2022 (CNN14 + BERT) is not implemented."""
CHANNEL_CHOICES: tuple[str, ...] = ("mono", "concat")
"""Channel handling (`rewards.models.ms_clap.CHANNEL_MODES`; repeated here so the options check needs no torch)."""


@dataclass
class MsClapOptions:
    """Options of the `ms_clap` semantic backend."""

    checkpoint: str = ""
    """Local path of `CLAP_weights_2023.pth` (Hugging Face `microsoft/msclap`). Required."""
    tokenizer: str = ""
    """Local directory holding GPT-2's `vocab.json` and `merges.txt` (Hugging Face `gpt2`). Required."""
    version: str = "2023"
    """Release the weights belong to; only `2023` is supported."""
    text: str = "semantic"
    """Text graded against: `semantic` (the CoT's semantic module) or `full` (the whole CoT, as PrismAudio)."""
    channels: str = "mono"
    """Stereo handling: `mono` (channel mean) or `concat` (left then right end to end, as msclap's
    loader and so PrismAudio; the first 7 s of that is mostly the left channel)."""
    device: str = "auto"
    """Torch device: `auto` (CUDA when visible), `cpu`, `cuda`..."""
    batch_size: int = 8
    """Clips embedded per forward pass. A clip's grade may differ in the last float bits with its batch
    mates; 1 makes every grade independent of the batching (texts are always embedded one by one)."""
    text_cache: int = 4096
    """Caption embeddings kept per replica (CoT texts repeat across a group and across steps); 0 = none."""
    arch: Dict[str, Any] = field(default_factory=dict)
    """Overrides of `MsClapArch` fields (small random-weight models in tests); empty = the 2023 release."""

    def __post_init__(self):
        owner = "semantic/ms_clap"
        if self.version not in MSCLAP_VERSIONS:
            raise TeacherError(f"{owner}: option version='{self.version}' is not supported (only "
                               f"{', '.join(MSCLAP_VERSIONS)}; the 2022 release's CNN14 + BERT model is "
                               "not implemented)")
        if self.text not in COT_TEXT_CHOICES:
            raise TeacherError(f"{owner}: option text='{self.text}' is not one of {', '.join(COT_TEXT_CHOICES)}")
        if self.channels not in CHANNEL_CHOICES:
            raise TeacherError(f"{owner}: option channels='{self.channels}' is not one of "
                               f"{', '.join(CHANNEL_CHOICES)}")
        if self.batch_size < 1:
            raise TeacherError(f"{owner}: option batch_size must be >= 1, got {self.batch_size}")
        if self.text_cache < 0:
            raise TeacherError(f"{owner}: option text_cache must be >= 0, got {self.text_cache}")


@register_backend("semantic", "ms_clap", MsClapOptions)
class MsClapTeacher(Teacher):
    """Grades audio-text agreement with MS-CLAP 2023, scaled as in PrismAudio."""

    def __init__(self, options: MsClapOptions | None = None):
        from rewards.models.checkpoint_files import require_path, resolve_device
        from rewards.models.ms_clap import CheckpointError, TokenizerFilesError, arch_from_options, load_ms_clap

        self.options = options or MsClapOptions()
        owner = self.describe()
        path = require_path(self.options.checkpoint, owner)
        tok_dir = require_path(self.options.tokenizer, owner, what="tokenizer", kind="dir")
        device = resolve_device(self.options.device, owner)
        try:
            arch = arch_from_options(self.options.arch, owner)
            self.ms = load_ms_clap(path, tok_dir, arch, device)
        except TokenizerFilesError as err:
            raise TeacherError(f"{owner}: {err}") from err
        except CheckpointError as err:
            raise TeacherError(f"{owner}: checkpoint {err}") from err
        except ValueError as err:
            raise TeacherError(str(err) if str(err).startswith(owner) else f"{owner}: {err}") from err
        bound = float(ms_clap_score(1.0, self.ms.logit_scale))
        self.reward_range = (-bound, bound)
        self._text_emb: dict[str, np.ndarray] = {}

    def text_embedding(self, text: str) -> np.ndarray:
        """Projected embedding `[D]` of one caption (embedded alone, so it never depends on other texts)."""
        from rewards.models.ms_clap import embed_texts

        emb = self._text_emb.get(text)
        if emb is None:
            emb = embed_texts(self.ms, [text])[0]
            if len(self._text_emb) >= self.options.text_cache:
                self._text_emb.clear()
            if self.options.text_cache:
                self._text_emb[text] = emb
        return emb

    def grade(self, audio: Sequence[np.ndarray], sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        from rewards.models.ms_clap import embed_audio, fit_clip_audio

        owner = self.describe()
        if len(audio) != len(clips):
            raise TeacherError(f"{owner}: got {len(audio)} waveforms for {len(clips)} clips")
        text_emb = np.stack([self.text_embedding(cot_text(c, self.options.text, owner)) for c in clips])

        arch = self.ms.arch
        waves = [fit_clip_audio(a, sample_rate, arch.sample_rate, arch.clip_samples, self.options.channels,
                                c.clip_id, owner) for a, c in zip(audio, clips)]
        bs = self.options.batch_size
        audio_emb = np.concatenate([embed_audio(self.ms, waves[i : i + bs]) for i in range(0, len(waves), bs)])
        return grades_from_embeddings(audio_emb, text_emb, self.ms.logit_scale)


def grades_from_embeddings(audio_emb: np.ndarray, text_emb: np.ndarray, logit_scale: float) -> list[Grade]:
    """MS-CLAP grades of paired `[B, D]` embeddings: reward `exp(logit_scale) * cos / 80`."""
    cos = paired_cosine(audio_emb, text_emb)
    scores = ms_clap_score(cos, logit_scale)
    return [Grade(reward=float(s), diagnostics={"cosine": float(c), "logit_scale_exp": math.exp(logit_scale)})
            for s, c in zip(scores, cos)]
