"""StereoCRW's ITD read-out from patch-feature affinities (pure tensor maths, no model).

Left patch `i` and right patch `j` start `(j - i) * patch_stride` samples apart. For each left
patch, a softmax over the right patches within +-max_delay of it (a band around the diagonal of
the affinity matrix) weights those delays: the soft-argmax delay is that patch's ITD. The first
and last `max_offset` patches, whose band is cut by the edges, are dropped; the clip's ITD is the
mean of the rest (IFICL/stereocrw vis_scripts/vis_functs.py:78-105, mode 'mean'; used as is by
PrismAudio's reward_itd.py). Positive ITD: the right channel lags the left (source on the left),
the same sign as `rewards.dsp.gcc_phat_itd`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def max_delay_offset(max_delay_s: float, sample_rate: int, patch_stride: int) -> int:
    """How many patch steps the largest allowed delay spans: floor(sr * max_delay / stride)."""
    return int(math.floor(sample_rate * max_delay_s / patch_stride + 1e-9))


def delay_matrix(patch_num: int, patch_stride: int, sample_rate: int) -> torch.Tensor:
    """`[P, P]` delays in seconds: entry (i, j) = (j - i) * patch_stride / sample_rate."""
    idx = torch.arange(patch_num, dtype=torch.float64)
    return ((idx[None, :] - idx[:, None]) * patch_stride / sample_rate).float()


def affinity(left_feats: torch.Tensor, right_feats: torch.Tensor, tau: float) -> torch.Tensor:
    """`[B, P, D]` features of both channels -> `[B, P, P]` cosine similarities divided by tau."""
    left = F.normalize(left_feats, p=2, dim=-1)
    right = F.normalize(right_feats, p=2, dim=-1)
    return left @ right.transpose(-2, -1) / tau


def soft_argmax_itd(aff: torch.Tensor, delays: torch.Tensor, offset: int) -> torch.Tensor:
    """Per-patch ITDs `[B, P - 2*offset]` (seconds) from affinities `[B, P, P]` and delays `[P, P]`."""
    p = aff.shape[-1]
    if offset < 1 or p <= 2 * offset:
        raise ValueError(f"soft_argmax_itd: need 1 <= max offset < patches/2, got offset {offset} for {p} patches")
    i = torch.arange(p, device=aff.device)
    band = (i[None, :] - i[:, None]).abs() <= offset
    weights = torch.softmax(aff.masked_fill(~band, float("-inf")), dim=-1)
    itd = (weights * delays.to(aff.device)).sum(dim=-1)
    return itd[:, offset:-offset]
