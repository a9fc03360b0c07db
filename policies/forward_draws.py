"""Forward-process draws of finished samples, for likelihood-free RL (DiffusionNFT).

A group's members x0 [G, *latent] are noised again at J (noise, time) pairs shared by all members:
x_t = (1 - t) x0 + t noise (the flow-matching convention of policies/sampling.py), and the policy's
conditional velocity at each x_t is recorded as the rollout policy's own (`old_velocity`), so the
learner needs no second copy of the weights it started the step from.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from policies.base import Conditions, Policy


@dataclass
class ForwardDraws:
    """J shared (noise, time) pairs of one group and the rollout policy's velocity at each."""

    clean_latents: torch.Tensor
    """Finished samples x0 [G, *latent]."""
    noise: torch.Tensor
    """Noise of each draw [J, *latent], shared by the group's members."""
    times: torch.Tensor
    """Time t of each draw [J], in (0, 1)."""
    old_velocity: torch.Tensor
    """The rollout policy's conditional velocity at x_t of each member and draw [G, J, *latent]."""


def noised(clean: torch.Tensor, noise: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t noise for per-row clean [M, *], noise [M, *] and times [M]."""
    t = times.to(clean.dtype).reshape(-1, *([1] * (clean.dim() - 1)))
    return (1 - t) * clean + t * noise


@torch.no_grad()
def forward_draws(policy: Policy, cond: Conditions, clean: torch.Tensor, draws: int,
                  generator: torch.Generator) -> ForwardDraws:
    """`draws` shared (noise, time ~ U(0, 1)) pairs for the members `clean` [G, *latent] (cond: batch G),
    drawn from `generator`, with the policy's conditional velocity at each noised member."""
    if draws < 1:
        raise ValueError(f"nft.draws must be >= 1, got {draws}")
    g, shape = clean.shape[0], tuple(clean.shape[1:])
    noise = torch.randn((draws, *shape), generator=generator, device=generator.device).to(clean.device)
    times = torch.rand((draws,), generator=generator, device=generator.device).to(clean.device)
    old = []
    for j in range(draws):
        x_t = noised(clean, noise[j].expand(g, *shape), times[j].expand(g))
        old.append(policy.velocity(x_t, times[j].expand(g), cond))
    return ForwardDraws(clean_latents=clean, noise=noise, times=times, old_velocity=torch.stack(old, 1))
