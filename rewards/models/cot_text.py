"""Which text a semantic teacher compares the audio with: one CoT module or the whole plan."""
from __future__ import annotations

from common.types import Clip, join_cot
from rewards.base import TeacherError

COT_TEXT_CHOICES: tuple[str, ...] = ("semantic", "full")
"""`semantic`: the CoT's semantic module; `full`: all four modules joined as the generator sees them."""


def cot_text(clip: Clip, which: str, owner: str) -> str:
    """The text of `clip` to grade against; an empty result raises naming `owner` and the clip id."""
    if which not in COT_TEXT_CHOICES:
        raise TeacherError(f"{owner}: option text='{which}' is not one of {', '.join(COT_TEXT_CHOICES)}")
    text = (clip.cot or {}).get("semantic", "").strip() if which == "semantic" else join_cot(clip.cot or {})
    if which == "semantic" and not text:
        raise TeacherError(f"{owner}: clip '{clip.clip_id}' has an empty semantic CoT module (option text='semantic')")
    return text
