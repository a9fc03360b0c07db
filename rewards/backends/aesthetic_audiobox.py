"""Aesthetic teacher on Audiobox Aesthetics: reward `(CE + CU - PC + PQ) / 40` from a local checkpoint.

Audio is mixed to mono and resampled to 16 kHz; 10 s windows (the last zero-padded and masked) are
scored and averaged weighted by their length, as the package's own inference does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from common.types import Clip, Grade
from rewards.base import Teacher, TeacherError, register_backend
from rewards.formulas import aesthetic_reward
from rewards.models.audio_prep import mono_at

AXIS_SLACK = 1.0
"""How far outside the 1-10 scale an axis may land before the grade counts as broken: regression
heads overshoot a little on real audio; a checkpoint or input that is wrong overshoots by far more."""


@dataclass
class AudioboxOptions:
    """Options of the `audiobox` aesthetic backend."""

    checkpoint: str = ""
    """Local path: the released checkpoint.pt file, or a Hugging Face model directory (config.json +
    model.safetensors). Required."""
    device: str = "auto"
    """Torch device: `auto` (CUDA when visible), `cpu`, `cuda`..."""
    batch_windows: int = 4
    """10 s windows per forward pass."""

    def __post_init__(self):
        if self.batch_windows < 1:
            raise TeacherError(f"aesthetic/audiobox: option batch_windows must be >= 1, got {self.batch_windows}")


@register_backend("aesthetic", "audiobox", AudioboxOptions)
class AudioboxTeacher(Teacher):
    """Grades production quality with Meta's Audiobox Aesthetics (axes CE, CU, PC, PQ)."""

    reward_range = (float(aesthetic_reward(1 - AXIS_SLACK, 1 - AXIS_SLACK, 10 + AXIS_SLACK, 1 - AXIS_SLACK)),
                    float(aesthetic_reward(10 + AXIS_SLACK, 10 + AXIS_SLACK, 1 - AXIS_SLACK, 10 + AXIS_SLACK)))

    def __init__(self, options: AudioboxOptions | None = None):
        from rewards.models.audiobox_loading import load_audiobox
        from rewards.models.checkpoint_files import require_path, resolve_device

        self.options = options or AudioboxOptions()
        owner = self.describe()
        path = require_path(self.options.checkpoint, owner, kind="any")
        device = resolve_device(self.options.device, owner)
        self.model = load_audiobox(path, device, owner)

    def grade(self, audio: Sequence[np.ndarray], sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        from rewards.models.audiobox_loading import AXES, SAMPLE_RATE, predict_axes

        owner = self.describe()
        if len(audio) != len(clips):
            raise TeacherError(f"{owner}: got {len(audio)} waveforms for {len(clips)} clips")
        waves = [mono_at(a, sample_rate, SAMPLE_RATE, c.clip_id, owner) for a, c in zip(audio, clips)]
        axes = predict_axes(self.model, waves, self.options.batch_windows)
        rewards = aesthetic_reward(axes["CE"], axes["CU"], axes["PC"], axes["PQ"])
        return [Grade(reward=float(r), diagnostics={a: float(axes[a][i]) for a in AXES})
                for i, r in enumerate(rewards)]
