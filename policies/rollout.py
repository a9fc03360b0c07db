"""Group rollouts with recorded SDE transitions, and their log-probs under current weights.

`rollout_group` samples G members for one prompt. With fast_grpo and mix_grpo the members share
one initial noise and the ODE prefix up to the first SDE step, computed ONCE on a batch of one
(so it is identical bit for bit), branch at the window start with independent SDE noise, take
the SDE window and go on with the ODE to t=0. With flow_grpo every member starts from its own
initial noise and every step is an SDE step (as in Flow-GRPO). All velocities are
classifier-free guided with `guidance_scale`. Everything is drawn from the caller's generator,
so a rollout is deterministic given the generator state and the weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from policies.base import Conditions, Policy
from policies.config import SamplerConfig
from policies.noise_subspace import policy_noise_mask
from policies.precision import network_precision
from policies.sampling import make_sigmas, ode_step, sde_log_prob, sde_step


@dataclass
class RolloutRecords:
    """The SDE transitions of one group (K = number of SDE steps)."""

    latents: torch.Tensor
    """x before each SDE step [G, K, *latent]."""
    next_latents: torch.Tensor
    """x after each SDE step [G, K, *latent]."""
    log_probs: torch.Tensor
    """Sampling-time log-probs [G, K] (mean over latent elements)."""
    means: Optional[torch.Tensor]
    """Transition means [G, K, *latent] (None when not kept)."""
    sigmas: torch.Tensor
    """sigma of each SDE step [K]."""
    sigmas_next: torch.Tensor
    """sigma after each SDE step [K]."""
    step_indices: torch.Tensor
    """Sampler step index of each SDE step [K] (int64)."""


@dataclass
class RolloutResult:
    """What one group rollout produced."""

    latents_final: torch.Tensor
    """Final latents at t=0 [G, *latent]."""
    waveforms: list[np.ndarray]
    """Decoded stereo float32 waveforms [2, N], one per member."""
    records: RolloutRecords
    """The SDE transitions (what the learner trains on)."""
    prepared: dict[str, Any]
    """The condition inputs of the prompt (batch of one), shared by the group."""


def expand_conditions(cond: Conditions, n: int) -> Conditions:
    """A batch-of-one condition repeated n times (contiguous)."""
    return {k: v.expand(n, *v.shape[1:]).contiguous() for k, v in cond.items()}


def _randn(shape: Sequence[int], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=generator, device=generator.device).to(device)


@torch.no_grad()
def rollout_group(
    policy: Policy,
    prepared: dict[str, Any],
    group_size: int,
    sampler_cfg: SamplerConfig,
    sde_steps: Sequence[int],
    generator: torch.Generator,
    guidance_scale: Optional[float] = None,
    keep_means: bool = True,
    network_dtype: Optional[torch.dtype] = None,
) -> RolloutResult:
    """Sample `group_size` members for one prompt (prepared: `policy.prepare([clip])`).

    Flow-GRPO (`sampler.schedule=flow_grpo`) and any group without SDE steps start each member from its
    own noise; the other schedules share one ODE prefix up to the first SDE step, where members branch.
    `network_dtype` (torch.bfloat16 under `rollout.dtype`) runs the velocity network under autocast;
    the latents, the sampler steps, log-probs and the decode stay float32."""
    n = sampler_cfg.num_steps
    gs = sampler_cfg.guidance_scale if guidance_scale is None else guidance_scale
    sde = sorted(set(int(i) for i in sde_steps))
    if sde and (sde[0] < 0 or sde[-1] >= n):
        raise ValueError(f"SDE steps {sde} outside [0, sampler.num_steps={n})")
    first_tensor = next(iter(prepared.values()))
    if first_tensor.shape[0] != 1:
        raise ValueError(f"rollout_group takes the prepared inputs of ONE clip, got a batch of {first_tensor.shape[0]}")
    device = next(policy.parameters()).device
    sigmas = make_sigmas(n, sampler_cfg.shift).to(device)
    cond1 = policy.encode_conditions(prepared)
    latent = tuple(policy.latent_shape())
    mask = policy_noise_mask(policy, sampler_cfg.noise_channels)

    def velocity(x: torch.Tensor, i: int, cond: Conditions) -> torch.Tensor:
        with network_precision(device, network_dtype):
            v = policy.guided_velocity(x, sigmas[i].expand(x.shape[0]), cond, gs)
        return v.to(x.dtype)

    if sampler_cfg.schedule == "flow_grpo" or not sde:
        # no shared ODE prefix: each member from its own noise (member 0's the same as a group of one's)
        start, x = 0, _randn((group_size, *latent), generator, device)
    else:
        start = sde[0] if sde else n
        x = _randn((1, *latent), generator, device)
        for i in range(start):
            x = ode_step(x, velocity(x, i, cond1), sigmas[i], sigmas[i + 1])
        x = x.expand(group_size, *latent).clone()
    cond = expand_conditions(cond1, group_size)
    xs, nexts, lps, means = [], [], [], []
    for i in range(start, n):
        v = velocity(x, i, cond)
        if i in sde:
            noise = _randn(x.shape, generator, device)
            step = sde_step(x, v, sigmas[i], sigmas[i + 1], sampler_cfg.noise_level, noise=noise, mask=mask)
            xs.append(x)
            nexts.append(step.x_next)
            lps.append(step.log_prob)
            if keep_means:
                means.append(step.mean)
            x = step.x_next
        else:
            x = ode_step(x, v, sigmas[i], sigmas[i + 1])
    empty = torch.zeros((group_size, 0, *latent), device=device)
    idx = torch.tensor(sde, dtype=torch.long)
    records = RolloutRecords(
        latents=torch.stack(xs, 1) if xs else empty,
        next_latents=torch.stack(nexts, 1) if nexts else empty.clone(),
        log_probs=torch.stack(lps, 1) if lps else torch.zeros((group_size, 0), device=device),
        means=(torch.stack(means, 1) if means else empty.clone()) if keep_means else None,
        sigmas=sigmas[idx.to(device)].clone(),
        sigmas_next=sigmas[(idx + 1).to(device)].clone(),
        step_indices=idx,
    )
    return RolloutResult(latents_final=x, waveforms=policy.waveforms(x), records=records, prepared=prepared)


def transition_log_prob(
    policy: Policy,
    cond: Conditions,
    latents: torch.Tensor,
    next_latents: torch.Tensor,
    sigmas: torch.Tensor,
    sigmas_next: torch.Tensor,
    guidance_scale: float,
    noise_level: float,
    noise_channels: str = "all",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log_prob, mean, std) of recorded transitions under the current weights, WITH grad.

    Either one transition per sample: latents [B, *latent], sigmas [B] (or scalar), cond batch B
    -> log_prob [B]; or K per sample: latents [B, K, *latent], sigmas [K] (or [B, K]), cond
    batch B -> log_prob [B, K], mean [B, K, *latent], std [B, K, 1, ...]. noise_channels is the
    rollout's `sampler.noise_channels`: log_prob is then the density over those channels, and mean
    holds those channels only.
    """
    ndim = 1 + len(policy.latent_shape())
    if latents.dim() == ndim:
        sig = torch.as_tensor(sigmas, dtype=latents.dtype, device=latents.device).expand(latents.shape[0])
        sig_next = torch.as_tensor(sigmas_next, dtype=latents.dtype, device=latents.device).expand(latents.shape[0])
        v = policy.guided_velocity(latents, sig, cond, guidance_scale)
        mask = policy_noise_mask(policy, noise_channels)
        return sde_log_prob(latents, next_latents, v, sig, sig_next, noise_level, mask)
    if latents.dim() != ndim + 1:
        raise ValueError(f"latents must be [B, *latent] or [B, K, *latent], got shape {tuple(latents.shape)}")
    b, k = latents.shape[:2]
    sig = torch.as_tensor(sigmas, dtype=latents.dtype, device=latents.device).expand(b, k).reshape(-1)
    sig_next = torch.as_tensor(sigmas_next, dtype=latents.dtype, device=latents.device).expand(b, k).reshape(-1)
    flat_cond = {name: t.repeat_interleave(k, dim=0) for name, t in cond.items()}
    lp, mean, std = transition_log_prob(
        policy, flat_cond, latents.flatten(0, 1), next_latents.flatten(0, 1), sig, sig_next, guidance_scale, noise_level,
        noise_channels,
    )
    return lp.reshape(b, k), mean.reshape(b, k, *mean.shape[1:]), std.reshape(b, k, *std.shape[1:])


@torch.no_grad()
def sample_ode(
    policy: Policy, cond: Conditions, sampler_cfg: SamplerConfig, generator: torch.Generator,
    guidance_scale: Optional[float] = None,
    network_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """Plain guided Euler sampling (evaluation): final latents [B, *latent] for a batch of conditions
    (`network_dtype` as in `rollout_group`)."""
    gs = sampler_cfg.guidance_scale if guidance_scale is None else guidance_scale
    device = next(policy.parameters()).device
    b = next(iter(cond.values())).shape[0]
    sigmas = make_sigmas(sampler_cfg.num_steps, sampler_cfg.shift).to(device)
    x = _randn((b, *policy.latent_shape()), generator, device)
    for i in range(sampler_cfg.num_steps):
        with network_precision(device, network_dtype):
            v = policy.guided_velocity(x, sigmas[i].expand(b), cond, gs)
        x = ode_step(x, v.to(x.dtype), sigmas[i], sigmas[i + 1])
    return x
