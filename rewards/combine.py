"""How the four teachers' grades become one reward per sample (plain numpy, no Ray).

Grades arrive as `[P, G]` arrays: P prompts (groups) by G members. Group advantages are computed
later (orchestrator.grpo); this module only produces the total reward they start from.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

COMBINE_MODES: tuple[str, ...] = ("sum_then_normalize", "normalize_then_sum")
"""`sum_then_normalize`: weighted sum of raw grades, the advantage step normalizes afterwards
(PrismAudio). `normalize_then_sum`: each teacher's grades standardized within their group first,
so a teacher's weight, not its reward scale, sets its influence."""


def standardize_within_groups(rewards: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """`(r - group mean) / (group std + eps)` along the member axis of a `[P, G]` array."""
    r = np.asarray(rewards, dtype=np.float64)
    return (r - r.mean(axis=1, keepdims=True)) / (r.std(axis=1, keepdims=True) + eps)


def combine_grades(
    per_teacher: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    mode: str = "sum_then_normalize",
    eps: float = 1e-6,
) -> np.ndarray:
    """Total reward `[P, G]` from each teacher's grades `[P, G]` and its weight.

    Every teacher in `per_teacher` needs a weight; a teacher with a non-zero weight but no grades
    is an error (a silently missing teacher would change what is optimized).
    """
    if mode not in COMBINE_MODES:
        raise ValueError(f"rewards.combine: unknown mode '{mode}'; expected one of {', '.join(COMBINE_MODES)}")
    if not per_teacher:
        raise ValueError("combine_grades: no teacher grades given")
    missing_weight = sorted(set(per_teacher) - set(weights))
    if missing_weight:
        raise ValueError(f"combine_grades: no weight for teacher(s) {missing_weight}")
    missing_grades = sorted(t for t, w in weights.items() if w != 0 and t not in per_teacher)
    if missing_grades:
        raise ValueError(f"combine_grades: teacher(s) {missing_grades} have non-zero weight but no grades")
    arrays = {t: np.asarray(r, dtype=np.float64) for t, r in per_teacher.items()}
    shapes = {t: a.shape for t, a in arrays.items()}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 2:
        raise ValueError(f"combine_grades: every teacher's grades must share one [P, G] shape, got {shapes}")
    total = np.zeros(next(iter(shapes.values())), dtype=np.float64)
    for teacher, r in arrays.items():
        if mode == "normalize_then_sum":
            r = standardize_within_groups(r, eps)
        total += float(weights[teacher]) * r
    return total
