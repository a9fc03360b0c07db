"""Typed configuration of the four teachers and how their grades combine."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List


@dataclass
class RewardWeights:
    """Weight of each teacher in the total reward (PrismAudio's defaults)."""

    semantic: float = 1.0
    """Weight of the semantic (CLAP-style) grade."""
    timing: float = 0.6
    """Weight of the audio-visual synchrony grade."""
    aesthetic: float = 0.1
    """Weight of the production-quality grade."""
    spatial: float = 0.4
    """Weight of the stereo-image (ITD) grade."""


@dataclass
class TeacherConfig:
    """One teacher: which backend grades, with which options."""

    backend: str = "signal"
    """Registered backend name (see `rewards.registry`)."""
    options: Dict[str, Any] = field(default_factory=dict)
    """Backend options; checked against the backend's own options dataclass (unknown keys fail)."""


@dataclass
class RewardsConfig:
    """The four teachers and the combination rule."""

    weights: RewardWeights = field(default_factory=RewardWeights)
    """Weight per teacher."""
    combine: str = "sum_then_normalize"
    """`sum_then_normalize` (PrismAudio: weighted sum, then group advantages) or
    `normalize_then_sum` (each teacher standardized within its group first)."""
    on_bad_grade: str = "error"
    """What a NaN, infinite or out-of-range grade does: `error` stops the step naming teacher,
    backend and clip id; `drop` drops that sample with a counted warning."""
    semantic: TeacherConfig = field(default_factory=lambda: TeacherConfig(backend="signal"))
    """Semantic teacher: `signal`, `laion_clap` or `ms_clap`."""
    timing: TeacherConfig = field(default_factory=lambda: TeacherConfig(backend="onset"))
    """Timing teacher: `onset` or `synchformer`."""
    aesthetic: TeacherConfig = field(default_factory=lambda: TeacherConfig(backend="signal"))
    """Aesthetic teacher: `signal` or `audiobox`."""
    spatial: TeacherConfig = field(default_factory=lambda: TeacherConfig(backend="gcc_phat"))
    """Spatial teacher: `gcc_phat` or `stereocrw`."""
    plugins: List[str] = field(default_factory=list)
    """Python modules imported before teachers are built, in the controller and in every pool replica;
    a module registers its own backends with `@rewards.base.register_backend(teacher, name)`."""
