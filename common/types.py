"""Plain data records that cross package boundaries.

`policies/` and `rewards/` may import this module and nothing of each other; `actors/` and
`orchestrator/` pass these records (or Ray object refs to them) between roles.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

COT_MODULES: tuple[str, ...] = ("semantic", "temporal", "aesthetic", "spatial")
"""The four modules of a PrismAudio chain-of-thought plan, in their canonical order."""

TEACHERS: tuple[str, ...] = ("semantic", "timing", "aesthetic", "spatial")
"""The four reward teachers, in their canonical order."""


def join_cot(cot: dict[str, str]) -> str:
    """One text condition from the four CoT modules, the way PrismAudio concatenates them."""
    return " ".join(f"{m.capitalize()}: {cot.get(m, '').strip()}" for m in COT_MODULES)


@dataclass
class Clip:
    """One paired video-audio example, decoded and ready for a policy or a teacher."""

    clip_id: str
    """Stable identifier, unique within a manifest."""
    split: str
    """`train`, `val` or `test`."""
    frames: np.ndarray
    """Video frames, uint8, shape [T, H, W, 3] (RGB)."""
    fps: float
    """Frame rate of `frames`."""
    audio: np.ndarray
    """Ground-truth stereo waveform, float32, shape [2, N], in [-1, 1]."""
    sample_rate: int
    """Sample rate of `audio` in Hz."""
    cot: dict[str, str]
    """The four-module plan: keys are `COT_MODULES`."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Scene metadata (classes, event times, azimuth track...); never read by model teachers."""
    video_path: str = ""
    """Where the video came from (for error messages and for teachers that re-read it)."""
    audio_path: str = ""
    """Where the ground-truth audio came from."""
    features: dict[str, Any] = field(default_factory=dict)
    """Cached generator features of the clip (manifest column `features_path`), name -> array or
    string; empty when the manifest has none. PrismAudio's: `video_features` [36, 1024],
    `text_features` [L, 1024], `sync_features` [216, 768], `caption_cot`."""

    @property
    def duration(self) -> float:
        """Length of the ground-truth audio in seconds."""
        return self.audio.shape[-1] / float(self.sample_rate)


@dataclass
class Grade:
    """One teacher's grade of one generated clip."""

    reward: float
    """The scalar reward this teacher's formula gives."""
    diagnostics: dict[str, float] = field(default_factory=dict)
    """Extra numbers the teacher measured (predicted offset, ITD, axis scores...)."""
