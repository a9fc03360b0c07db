"""Routing each teacher's share of the advantage to the latent channels it reads (`nft.teacher_channels`).

The routes' maths (r per row and channel) is `orchestrator.nft.optimality.routed_optimality`.
A route is a bool matrix [T teachers, C' channels] over the channels `nft.channels` trains (C' of them,
in latent order). A row's optimality probability on channel c is then
r_c = 0.5 + 0.5 clip(sum_t route[t, c] A_t / adv_scale, -1, 1), from the teachers' advantage parts A_t
(orchestrator/grpo/teacher_parts.py). With every teacher routed to every channel it is the plain
r = 0.5 + 0.5 clip(A / adv_scale, -1, 1) on each channel, since the parts sum to A.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch

from policies.noise_subspace import policy_noise_mask


def teacher_routes(policy, channels: str, teacher_channels: Mapping[str, str], teachers: Sequence[str]
                   ) -> Optional[torch.Tensor]:
    """Bool [T, C'] (T = len(teachers), C' = the channels `channels` selects, every channel for `all`) of
    which channels each teacher's part drives; None when `teacher_channels` is empty (no routing).
    Raises naming the teacher whose key is unknown or whose channels fall outside `nft.channels`."""
    if not teacher_channels:
        return None
    unknown = sorted(set(teacher_channels) - set(teachers))
    if unknown:
        raise ValueError(f"nft.teacher_channels: unknown teacher(s) {unknown}; teachers: {', '.join(teachers)}")
    width = int(policy.latent_shape()[-1])
    trained = policy_noise_mask(policy, channels, key="nft.channels")
    trained = torch.ones(width, dtype=torch.bool) if trained is None else trained
    rows = []
    for t in teachers:
        spec = teacher_channels.get(t)
        mask = trained if spec is None else policy_noise_mask(policy, spec, key=f"nft.teacher_channels.{t}")
        mask = torch.ones(width, dtype=torch.bool) if mask is None else mask
        outside = mask & ~trained
        if outside.any():
            raise ValueError(f"nft.teacher_channels.{t}: {spec!r} names {int(outside.sum())} channel(s) that "
                             f"nft.channels={channels!r} does not train (first: latent channel {int(outside.nonzero()[0])})")
        if not mask.any():
            raise ValueError(f"nft.teacher_channels.{t}: {spec!r} names no channel")
        rows.append(mask[trained])
    return torch.stack(rows)
