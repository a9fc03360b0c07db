"""DiffusionNFT's optimality probability r of a sample (plain functions): from its advantage, or per
latent channel from its teachers' advantage parts routed to channels (`nft.teacher_channels`)."""
from __future__ import annotations

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
