"""The `Planner` interface: silent video in, a four-module CoT plan out (keys common.types.COT_MODULES)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np
import torch

from common.types import COT_MODULES

Video = tuple[np.ndarray, float]
"""(frames uint8 [T, H, W, 3] RGB, fps)."""


class Planner(ABC):
    """Writes the four CoT modules (semantic, temporal, aesthetic, spatial) for videos."""

    name: str = ""
    """Backend name, for messages and the `planner` field of written plans."""

    @abstractmethod
    def plan_batch(self, videos: Sequence[Video]) -> list[dict[str, str]]:
        """One plan per video, in order: a dict with every key of COT_MODULES (text may be empty)."""

    def plan(self, frames: np.ndarray, fps: float) -> dict[str, str]:
        """The plan of one video."""
        return self.plan_batch([(frames, fps)])[0]


def check_video(frames: np.ndarray, fps: float, what: str = "video") -> None:
    """ValueError naming `what` when frames are not uint8-compatible [T, H, W, 3] or fps is not positive."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"{what}: expected frames [T, H, W, 3] with T >= 1, got shape {frames.shape}")
    if not fps or fps <= 0:
        raise ValueError(f"{what}: fps must be positive, got {fps}")


def complete_plan(plan: dict[str, str]) -> dict[str, str]:
    """`plan` with every CoT module present (missing ones empty), in canonical order."""
    return {m: (plan.get(m) or "").strip() for m in COT_MODULES}


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; other names as torch spells them."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
