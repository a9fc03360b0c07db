"""Group-relative advantages of GRPO (plain maths, no Ray).

PrismAudio's rule: each reward minus the mean of its own group (the G samples of one prompt),
divided by the standard deviation over the whole batch plus eps, then clipped to +-clip.
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]

STD_MODES = ("batch", "group")
"""Allowed denominators: `batch` (std over all P*G rewards) or `group` (std within each group)."""


def group_advantages(rewards: Array, std_mode: str = "batch", eps: float = 1e-4, clip: float = 5.0) -> Array:
    """Advantages of rewards shaped [P prompts, G group members]; same shape and type back.

    std_mode: `batch` divides by the (population) std of all P*G rewards, `group` by each group's
    own std. A constant group gives zeros (its numerator is zero and eps keeps the denominator
    positive), never NaN. Results are clipped to [-clip, clip].
    """
    if std_mode not in STD_MODES:
        raise ValueError(f"group_advantages: std_mode must be one of {STD_MODES}, got {std_mode!r}")
    if rewards.ndim != 2:
        raise ValueError(f"group_advantages: rewards must be [prompts, group], got shape {tuple(rewards.shape)}")
    if eps <= 0:
        raise ValueError(f"group_advantages: eps must be > 0, got {eps}")
    is_numpy = isinstance(rewards, np.ndarray)
    r = torch.as_tensor(rewards, dtype=torch.float64)
    if not torch.isfinite(r).all():
        bad = torch.nonzero(~torch.isfinite(r))[0].tolist()
        raise ValueError(f"group_advantages: reward at [prompt {bad[0]}, member {bad[1]}] is not finite")
    centred = r - r.mean(dim=1, keepdim=True)
    if std_mode == "batch":
        std = r.std(unbiased=False)
    else:
        std = r.std(dim=1, unbiased=False, keepdim=True)
    adv = (centred / (std + eps)).clamp(-clip, clip)
    if is_numpy:
        return adv.numpy().astype(rewards.dtype if np.issubdtype(rewards.dtype, np.floating) else np.float32)
    return adv.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


NULL_CONTROLS = ("none", "shuffle", "shuffle_in_group", "zero")
"""Allowed `grpo.null_control` values."""


def null_control_advantages(adv: np.ndarray, mode: str, rng: np.random.Generator,
                            keep: np.ndarray | None = None) -> np.ndarray:
    """Advantages [P, G] (or [P, G, ...]: each member's values move together, e.g. its teacher parts
    with the total in front) as a null control sees them: `none` returns them unchanged, `zero` all zeros,
    `shuffle` the same values permuted across the whole batch (every group's members get values drawn
    from all groups), `shuffle_in_group` each group's values permuted among its own kept members (bool
    `keep` [P, G]; default all), so each update keeps its size but no longer follows any reward.

    `shuffle_in_group` is the permutation null of a group-relative estimator: under "the reward does not
    depend on the sample" a group's advantages are exchangeable among its members, and each group's
    advantages keep their sum (0 when centred), as the trained run's do. `shuffle` breaks that sum, so
    the part of the members' gradients that they share (large under common random numbers, `nft.draws`)
    no longer cancels: its updates are noisier than any trained run's.
    """
    if mode not in NULL_CONTROLS:
        raise ValueError(f"grpo.null_control must be one of {NULL_CONTROLS}, got {mode!r}")
    adv = np.asarray(adv)
    if adv.ndim < 2:
        raise ValueError(f"null_control_advantages: advantages must be [prompts, group, ...], got shape {adv.shape}")
    if mode == "none":
        return adv
    if mode == "zero":
        return np.zeros_like(adv)
    members = adv.shape[0] * adv.shape[1]
    if mode == "shuffle":
        flat = adv.reshape(members, *adv.shape[2:])
        return flat[rng.permutation(members)].reshape(adv.shape)
    keep = np.ones(adv.shape[:2], bool) if keep is None else np.asarray(keep, bool)
    if keep.shape != adv.shape[:2]:
        raise ValueError(f"null_control_advantages: keep {keep.shape} must match advantages {adv.shape[:2]}")
    out = adv.copy()
    for row in range(adv.shape[0]):
        kept = np.flatnonzero(keep[row])
        out[row, kept] = adv[row, rng.permutation(kept)]
    return out
