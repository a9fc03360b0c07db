"""Each teacher's share of a sample's group advantage (plain numpy, no Ray).

The total reward is a weighted sum over teachers (`rewards.combine`), and its group advantage is linear
in it: A = clip((R - mean_group R) / (std + eps)). So A splits exactly into one part per teacher,
A_t = s * w_t (x_t - mean_group x_t), where x_t is the teacher's raw grade (`sum_then_normalize`) or its
within-group standardized grade (`normalize_then_sum`), and s = 1 / (std + eps) times, where the clip
binds, the factor that brings the sum to the clipped value. sum_t A_t = A.

DiffusionNFT can route each part to the latent channels its teacher reads (`nft.teacher_channels`): a
teacher's advantage then moves only its own channels, and the parts of the others, which carry no
gradient there, stop adding noise to them.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from orchestrator.grpo.advantages import STD_MODES
from rewards.combine import COMBINE_MODES, standardize_within_groups


def teacher_advantage_parts(per_teacher: Mapping[str, np.ndarray], weights: Mapping[str, float], teachers: Sequence[str],
                            combine: str = "sum_then_normalize", std_mode: str = "batch", eps: float = 1e-4,
                            clip: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(A [P, G], parts [P, G, T]) for grades [P, G] per teacher, in `teachers` order: A is what
    `group_advantages(combine_grades(per_teacher, weights, combine), std_mode, eps, clip)` gives, and
    parts[..., t] is teacher t's share of it (they sum to A over the last axis; see the module docstring).
    A teacher with weight 0 gets a zero part. Raises naming a teacher whose grades are missing or not finite."""
    if combine not in COMBINE_MODES:
        raise ValueError(f"rewards.combine: unknown mode {combine!r}; expected one of {', '.join(COMBINE_MODES)}")
    if std_mode not in STD_MODES:
        raise ValueError(f"grpo.adv_std must be one of {STD_MODES}, got {std_mode!r}")
    if eps <= 0:
        raise ValueError(f"teacher_advantage_parts: eps must be > 0, got {eps}")
    graded = []
    for t in teachers:
        if t not in per_teacher:
            raise ValueError(f"teacher_advantage_parts: no grades for teacher {t!r}")
        r = np.asarray(per_teacher[t], dtype=np.float64)
        if r.ndim != 2:
            raise ValueError(f"teacher_advantage_parts: grades of {t!r} must be [prompts, group], got shape {r.shape}")
        if not np.isfinite(r).all():
            p, g = np.argwhere(~np.isfinite(r))[0]
            raise ValueError(f"teacher_advantage_parts: {t!r} grade at [prompt {p}, member {g}] is not finite")
        x = standardize_within_groups(r) if combine == "normalize_then_sum" else r
        graded.append(float(weights.get(t, 0.0)) * x)
    weighted = np.stack(graded, axis=-1)  # [P, G, T]: w_t x_t
    parts = weighted - weighted.mean(axis=1, keepdims=True)  # w_t (x_t - group mean)
    total = parts.sum(axis=-1)  # the combined reward minus its group mean
    if std_mode == "batch":
        std = np.full(total.shape, weighted.sum(axis=-1).std())  # population std of all P*G combined rewards
    else:
        std = np.broadcast_to(total.std(axis=1, keepdims=True), total.shape)
    unclipped = total / (std + eps)
    adv = np.clip(unclipped, -clip, clip)
    # where the clip binds, scale the parts so they sum to the clipped advantage
    scale = np.where(np.abs(unclipped) > clip, adv / np.where(unclipped == 0, 1.0, unclipped), 1.0) / (std + eps)
    return adv, parts * scale[..., None]
