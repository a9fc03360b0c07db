"""Checking a teacher's grades before they reach the optimizer.

A NaN, infinite or out-of-range reward means the teacher is broken for that sample; training on it
would silently corrupt the step. `error` stops with a message naming teacher, backend and clip id;
`drop` masks the sample out and logs a counted warning.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

ON_BAD_GRADE: tuple[str, ...] = ("error", "drop")
"""What a bad grade does (`rewards.on_bad_grade`)."""


class BadGradeError(ValueError):
    """A teacher gave a NaN, infinite or out-of-range reward; the message names teacher, backend and clip."""


def bad_grade_reasons(rewards: np.ndarray, reward_range: tuple[float, float]) -> list[str | None]:
    """Per reward: None when valid, else why not (`NaN`, `infinite`, `out of range [lo, hi]`)."""
    lo, hi = reward_range
    reasons: list[str | None] = []
    for r in np.asarray(rewards, dtype=np.float64).ravel():
        if np.isnan(r):
            reasons.append("NaN")
        elif np.isinf(r):
            reasons.append("infinite")
        elif r < lo or r > hi:
            reasons.append(f"out of range [{lo}, {hi}]")
        else:
            reasons.append(None)
    return reasons


def check_grades(
    teacher: str,
    backend: str,
    clip_ids: Sequence[str],
    rewards: np.ndarray,
    reward_range: tuple[float, float],
    on_bad: str = "error",
) -> np.ndarray:
    """Keep-mask (bool, shape of `rewards`): False where the reward is NaN, infinite or out of range.

    on_bad: `error` raises BadGradeError on the first bad reward (teacher, backend, clip id, value);
    `drop` returns the mask and logs one warning with the count and the first few clip ids.
    """
    if on_bad not in ON_BAD_GRADE:
        raise ValueError(f"rewards.on_bad_grade: unknown value '{on_bad}'; expected one of {', '.join(ON_BAD_GRADE)}")
    values = np.asarray(rewards, dtype=np.float64)
    if values.size != len(clip_ids):
        raise ValueError(
            f"check_grades: {teacher}/{backend} returned {values.size} rewards for {len(clip_ids)} clips"
        )
    reasons = bad_grade_reasons(values, reward_range)
    bad = [(cid, v, why) for cid, v, why in zip(clip_ids, values.ravel(), reasons) if why is not None]
    if bad and on_bad == "error":
        cid, v, why = bad[0]
        raise BadGradeError(
            f"teacher '{teacher}' backend '{backend}' gave reward {v} for clip '{cid}': {why}"
            + (f" ({len(bad) - 1} more bad grade(s) in this batch)" if len(bad) > 1 else "")
        )
    if bad:
        shown = ", ".join(f"'{cid}' ({why})" for cid, _, why in bad[:5])
        log.warning("dropped %d of %d grade(s) from %s/%s: %s%s", len(bad), values.size, teacher, backend, shown,
                    " ..." if len(bad) > 5 else "")
    return np.array([why is None for why in reasons], dtype=bool).reshape(values.shape)
