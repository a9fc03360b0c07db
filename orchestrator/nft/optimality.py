"""DiffusionNFT's optimality probability r of a sample (plain functions): from its advantage, or per
latent channel from its teachers' advantage parts routed to channels (`nft.teacher_channels`)."""
from __future__ import annotations

import numpy as np
import torch


def optimality(advantages: torch.Tensor, adv_scale: float) -> torch.Tensor:
    """r = 0.5 + 0.5 clip(A / adv_scale, -1, 1): the probability that a sample is better than its group's."""
    if adv_scale <= 0:
        raise ValueError(f"nft.adv_scale must be > 0, got {adv_scale}")
    return 0.5 + 0.5 * torch.clamp(advantages.float() / adv_scale, -1.0, 1.0)


def routed_optimality(parts: torch.Tensor, routes: torch.Tensor, adv_scale: float) -> torch.Tensor:
    """r [M, C'] = 0.5 + 0.5 clip(parts @ routes / adv_scale, -1, 1) for advantage parts [M, T] and routes [T, C']."""
    if parts.ndim != 2 or routes.ndim != 2 or parts.shape[1] != routes.shape[0]:
        raise ValueError(f"routed_optimality: parts {tuple(parts.shape)} must be [rows, teachers] and routes "
                         f"{tuple(routes.shape)} [teachers, channels]")
    return optimality(parts.float() @ routes.to(parts.device).float(), adv_scale)


def balanced_advantages(advantages: np.ndarray, adv_scale: float, keep: np.ndarray | None = None) -> np.ndarray:
    """Advantages [P prompts, G members] clipped to +-adv_scale as `optimality` clips them, then, in each
    group, the larger of the positive and the negative sums over its kept members (bool `keep` [P, G];
    default all) shrunk to the smaller one, every member of that side by the same factor.

    Centred advantages sum to 0 in a group, but clipping removes mass from one tail only, so the
    clipped values, and the members' 2r - 1 with them, do not. DiffusionNFT's gradient at v = v_old is
    sum_i (2 r_i - 1) g_i over the members' flow-matching gradients g_i: a non-zero sum adds that sum x
    their common part (flow matching on the policy's own samples) to every group, the same direction
    in every step, whatever the rewards. After balancing, sum_i (2 r_i - 1) = 0 in every group, and
    each r stays in [0, 1]. Members not kept are returned as 0."""
    if adv_scale <= 0:
        raise ValueError(f"nft.adv_scale must be > 0, got {adv_scale}")
    adv = np.asarray(advantages, dtype=np.float64)
    if adv.ndim != 2:
        raise ValueError(f"balanced_advantages: advantages must be [prompts, group], got shape {adv.shape}")
    keep = np.ones(adv.shape, bool) if keep is None else np.asarray(keep, bool)
    if keep.shape != adv.shape:
        raise ValueError(f"balanced_advantages: keep {keep.shape} must match advantages {adv.shape}")
    clipped = np.where(keep, np.clip(adv, -adv_scale, adv_scale), 0.0)
    positive = np.clip(clipped, 0.0, None).sum(axis=1, keepdims=True)
    negative = -np.clip(clipped, None, 0.0).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink_positive = np.where(positive > negative, negative / positive, 1.0)
        shrink_negative = np.where(negative > positive, positive / negative, 1.0)
    out = np.where(clipped > 0, clipped * shrink_positive, clipped * shrink_negative)
    return out.astype(np.asarray(advantages).dtype if np.issubdtype(np.asarray(advantages).dtype, np.floating)
                      else np.float32)
