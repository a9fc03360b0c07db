"""DiffusionNFT's objective (arXiv 2509.16117) on `CleanSampleBatch` rows (see `NFTConfig`)."""
from __future__ import annotations

import time

import torch

from actors.experience import CleanSampleBatch
from common.types import TEACHERS
from orchestrator.config.schema import NFTConfig
from orchestrator.nft.optimality import optimality, routed_optimality
from orchestrator.nft.routing import teacher_routes
from policies.forward_draws import noised
from policies.noise_subspace import policy_noise_mask
from policies.row_conditions import encode_row_conditions

__all__ = ["nft_objective", "nft_loss", "optimality", "velocity_kl"]


def nft_objective(velocity: torch.Tensor, old_velocity: torch.Tensor, target: torch.Tensor, r: torch.Tensor,
                  beta: float, channel_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per row: r |v+ - u|^2 + (1 - r) |v- - u|^2 (mean over non-row dims), with the implicit policies
    v+ = (1 - beta) v_old + beta v and v- = (1 + beta) v_old - beta v; returns [M]. With a bool
    `channel_mask` [C] over the last (channel) dimension, only those channels count (`nft.channels`).
    r is [M] (one per row) or [M, C'] (one per row and counted channel: `nft.teacher_channels`)."""
    if beta <= 0:
        raise ValueError(f"nft.beta must be > 0, got {beta}")
    if not (velocity.shape == old_velocity.shape == target.shape):
        raise ValueError(f"nft_objective: velocity {tuple(velocity.shape)}, old_velocity {tuple(old_velocity.shape)} "
                         f"and target {tuple(target.shape)} must match")
    v, v_old, u = velocity.float(), old_velocity.float(), target.float()
    if channel_mask is not None:  # latent [..., channels]: only the named channels are trained
        v, v_old, u = v[..., channel_mask], v_old[..., channel_mask], u[..., channel_mask]
    positive = ((1 - beta) * v_old + beta * v - u).pow(2)
    negative = ((1 + beta) * v_old - beta * v - u).pow(2)
    if r.ndim == 1:
        return r * positive.reshape(v.shape[0], -1).mean(1) + (1 - r) * negative.reshape(v.shape[0], -1).mean(1)
    if r.ndim != 2 or r.shape[0] != v.shape[0] or r.shape[1] != v.shape[-1]:
        raise ValueError(f"nft_objective: per-channel r {tuple(r.shape)} must be [rows {v.shape[0]}, counted channels "
                         f"{v.shape[-1]}]")
    r = r.reshape(r.shape[0], *([1] * (v.dim() - 2)), r.shape[1])
    return (r * positive + (1 - r) * negative).reshape(v.shape[0], -1).mean(1)


def velocity_kl(velocity: torch.Tensor, ref_velocity: torch.Tensor, channel_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
    """|v - v_ref|^2 per row (mean over non-row dims), over every channel or, with a bool `channel_mask`
    [C] over the last dimension, over those channels (`nft.kl_channels`); returns [M]. Two flows that
    share the sampler's diffusion coefficient g(t) differ in KL by the time integral of
    |v - v_ref|^2 / (2 g^2) (Girsanov), so this is the KL's integrand at the drawn (x_t, t)."""
    if velocity.shape != ref_velocity.shape:
        raise ValueError(f"velocity_kl: velocity {tuple(velocity.shape)} and ref_velocity {tuple(ref_velocity.shape)} differ")
    diff = velocity.float() - ref_velocity.float()
    if channel_mask is not None:
        diff = diff[..., channel_mask]
    return diff.pow(2).reshape(velocity.shape[0], -1).mean(1)


def nft_loss(policy: torch.nn.Module, ref_policy: object, batch: CleanSampleBatch, nft_cfg: NFTConfig
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean DiffusionNFT objective of one minibatch, plus nft.kl_beta x the velocity KL to ref_policy
    (the frozen pretrained policy; only called when kl_beta > 0). v_old rides in the batch.

    Metrics: loss, fm_loss (plain flow-matching error of v on the policy's own samples), r_mean, kl
    (0 when kl_beta = 0), ref_forward_s (seconds of the reference forward), all python floats."""
    if not isinstance(batch, CleanSampleBatch):
        raise TypeError(f"train.algorithm=nft trains on CleanSampleBatch rows, got {type(batch).__name__} "
                        "(were the rollouts made without nft.draws?)")
    cond = encode_row_conditions(policy, batch.cond_inputs, batch.clip_ids)
    x_t = noised(batch.clean_latents, batch.noise, batch.times)
    v = policy.velocity(x_t, batch.times.to(x_t.dtype), cond)
    target = batch.noise - batch.clean_latents
    mask = policy_noise_mask(policy, nft_cfg.channels, key="nft.channels")
    routes = teacher_routes(policy, nft_cfg.channels, nft_cfg.teacher_channels, TEACHERS)
    if routes is None:
        r = optimality(batch.advantages.to(v.device), nft_cfg.adv_scale)
    elif batch.teacher_advantages.shape[1] != len(TEACHERS):
        raise ValueError(f"nft.teacher_channels is set, but the rows of clip {batch.clip_ids[0]!r} carry "
                         f"{batch.teacher_advantages.shape[1]} teacher advantage parts, not {len(TEACHERS)} "
                         f"({', '.join(TEACHERS)})")
    else:
        r = routed_optimality(batch.teacher_advantages.to(v.device), routes, nft_cfg.adv_scale)
    loss = nft_objective(v, batch.old_velocity, target, r, nft_cfg.beta, mask).mean()
    kl, ref_forward_s = torch.zeros((), device=v.device), 0.0
    if nft_cfg.kl_beta < 0:
        raise ValueError(f"nft.kl_beta must be >= 0, got {nft_cfg.kl_beta}")
    if nft_cfg.kl_beta > 0:
        clock = time.perf_counter()
        with torch.no_grad():
            ref_cond = encode_row_conditions(ref_policy, batch.cond_inputs, batch.clip_ids)
            v_ref = ref_policy.velocity(x_t, batch.times.to(x_t.dtype), ref_cond)
        ref_forward_s = time.perf_counter() - clock
        kl_mask = policy_noise_mask(policy, nft_cfg.kl_channels, key="nft.kl_channels")
        kl = velocity_kl(v, v_ref, kl_mask).mean()
        loss = loss + nft_cfg.kl_beta * kl
    with torch.no_grad():
        fm = (v.float() - target.float()).pow(2).mean()
    return loss, {"loss": float(loss.detach()), "fm_loss": float(fm), "r_mean": float(r.mean()), "kl": float(kl.detach()),
                  "ref_forward_s": ref_forward_s}
