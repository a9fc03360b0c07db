"""DiffusionNFT's objective (arXiv 2509.16117) on `CleanSampleBatch` rows (see `NFTConfig`)."""
from __future__ import annotations

import time

import torch

from actors.experience import CleanSampleBatch
from orchestrator.config.schema import NFTConfig
from policies.forward_draws import noised
from policies.noise_subspace import policy_noise_mask
from policies.row_conditions import encode_row_conditions


def optimality(advantages: torch.Tensor, adv_scale: float) -> torch.Tensor:
    """r = 0.5 + 0.5 clip(A / adv_scale, -1, 1): the probability that a sample is better than its group's."""
    if adv_scale <= 0:
        raise ValueError(f"nft.adv_scale must be > 0, got {adv_scale}")
    return 0.5 + 0.5 * torch.clamp(advantages.float() / adv_scale, -1.0, 1.0)


def nft_objective(velocity: torch.Tensor, old_velocity: torch.Tensor, target: torch.Tensor, r: torch.Tensor,
                  beta: float, channel_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per row: r |v+ - u|^2 + (1 - r) |v- - u|^2 (mean over non-row dims), with the implicit policies
    v+ = (1 - beta) v_old + beta v and v- = (1 + beta) v_old - beta v; returns [M]. With a bool
    `channel_mask` [C] over the last (channel) dimension, only those channels count (`nft.channels`)."""
    if beta <= 0:
        raise ValueError(f"nft.beta must be > 0, got {beta}")
    if not (velocity.shape == old_velocity.shape == target.shape):
        raise ValueError(f"nft_objective: velocity {tuple(velocity.shape)}, old_velocity {tuple(old_velocity.shape)} "
                         f"and target {tuple(target.shape)} must match")
    v, v_old, u = velocity.float(), old_velocity.float(), target.float()
    if channel_mask is not None:  # latent [..., channels]: only the named channels are trained
        v, v_old, u = v[..., channel_mask], v_old[..., channel_mask], u[..., channel_mask]
    positive = ((1 - beta) * v_old + beta * v - u).pow(2).reshape(v.shape[0], -1).mean(1)
    negative = ((1 + beta) * v_old - beta * v - u).pow(2).reshape(v.shape[0], -1).mean(1)
    return r * positive + (1 - r) * negative


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
    r = optimality(batch.advantages.to(v.device), nft_cfg.adv_scale)
    mask = policy_noise_mask(policy, nft_cfg.channels, key="nft.channels")
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
