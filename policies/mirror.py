"""Left-right mirror augmentation: the same scene seen in a mirror.

Flipping the video horizontally moves every object to the other side; swapping the two audio
channels moves every source to the other ear (ITD and ILD change sign); the plan's words "left"
and "right" swap with them. The mirrored clip is as physically valid as the original, so a
policy trained on both sees twice the spatial examples and cannot learn a left or right bias.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from common.types import Clip

_SIDE = re.compile(r"\b(left|right)(ward|wards)?\b", re.IGNORECASE)


def mirror_text(text: str) -> str:
    """`text` with left and right (and leftward/rightward) swapped, keeping capitalisation."""

    def swap(m: re.Match) -> str:
        word = "right" if m.group(1).lower() == "left" else "left"
        if m.group(1)[0].isupper():
            word = word.capitalize()
        return word + (m.group(2) or "")

    return _SIDE.sub(swap, text)


def mirror_clip(clip: Clip) -> Clip:
    """The clip mirrored: frames flipped left-right, audio channels swapped, plan's sides swapped."""
    return dataclasses.replace(
        clip,
        frames=np.ascontiguousarray(clip.frames[:, :, ::-1]),
        audio=np.ascontiguousarray(clip.audio[::-1]),
        cot={k: mirror_text(v) for k, v in clip.cot.items()},
    )
