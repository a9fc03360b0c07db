"""Forward-process draws of finished samples, for likelihood-free RL (DiffusionNFT).

A group's members x0 [G, *latent] are noised again at J (noise, time) pairs shared by all members
(the times stratified over `nft.time_range`):
x_t = (1 - t) x0 + t noise (the flow-matching convention of policies/sampling.py), and the policy's
conditional velocity at each x_t is recorded as the rollout policy's own (`old_velocity`), so the
learner needs no second copy of the weights it started the step from.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from policies.base import Conditions, Policy
from policies.config import SamplerConfig
from policies.rollout import RolloutResult, expand_conditions, rollout_group


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


def check_time_range(time_range: Sequence[float]) -> tuple[float, float]:
    """(lo, hi) of `nft.time_range`; raises unless 0 <= lo < hi <= 1."""
    values = [float(x) for x in time_range]
    if len(values) != 2 or not 0.0 <= values[0] < values[1] <= 1.0:
        raise ValueError(f"nft.time_range must be [lo, hi] with 0 <= lo < hi <= 1, got {list(time_range)}")
    return values[0], values[1]


def stratified_times(draws: int, time_range: Sequence[float], generator: torch.Generator) -> torch.Tensor:
    """`draws` times [J], draw j uniform in the j-th of `draws` equal slices of [lo, hi]."""
    if draws < 1:
        raise ValueError(f"nft.draws must be >= 1, got {draws}")
    lo, hi = check_time_range(time_range)
    u = torch.rand((draws,), generator=generator, device=generator.device).cpu()
    return lo + (hi - lo) * (torch.arange(draws, dtype=torch.float32) + u) / draws


@torch.no_grad()
def forward_draws(policy: Policy, cond: Conditions, clean: torch.Tensor, draws: int,
                  generator: torch.Generator, time_range: Sequence[float] = (0.0, 1.0)) -> ForwardDraws:
    """`draws` shared (noise, time) pairs for the members `clean` [G, *latent] (cond: batch G), drawn
    from `generator` (times stratified over `time_range`, see `stratified_times`), with the policy's
    conditional velocity at each noised member."""
    if draws < 1:
        raise ValueError(f"nft.draws must be >= 1, got {draws}")
    g, shape = clean.shape[0], tuple(clean.shape[1:])
    noise = torch.randn((draws, *shape), generator=generator, device=generator.device).to(clean.device)
    times = stratified_times(draws, time_range, generator).to(clean.device)
    old = []
    for j in range(draws):
        x_t = noised(clean, noise[j].expand(g, *shape), times[j].expand(g))
        old.append(policy.velocity(x_t, times[j].expand(g), cond))
    return ForwardDraws(clean_latents=clean, noise=noise, times=times, old_velocity=torch.stack(old, 1))


@torch.no_grad()
def sample_group(policy: Policy, prepared: dict, group_size: int, sampler_cfg: SamplerConfig, sde_steps: Sequence[int],
                 generator: torch.Generator, draws: int = 0, time_range: Sequence[float] = (0.0, 1.0),
                 network_dtype: torch.dtype | None = None) -> tuple[RolloutResult, ForwardDraws | None]:
    """What a rollout worker makes of one request: the group (`rollout_group`, its network in
    `network_dtype`, keep_means off: the learner recomputes means) and, with `draws` > 0 (DiffusionNFT),
    its forward draws from the same generator. The draws' `old_velocity` is always float32, whatever
    `network_dtype`: it is the learner's own velocity at the start of the step."""
    result = rollout_group(policy, prepared, group_size, sampler_cfg, list(sde_steps), generator,
                           sampler_cfg.guidance_scale, keep_means=False, network_dtype=network_dtype)
    if draws <= 0:
        return result, None
    cond = expand_conditions(policy.encode_conditions(prepared), group_size)
    return result, forward_draws(policy, cond, result.latents_final, draws, generator, time_range)
