"""The GRPO objective: PPO-clip on per-transition log-prob ratios plus a KL penalty to a frozen
reference policy (plain functions, no Ray).
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import torch

from actors.experience import TransitionBatch
from orchestrator.config.schema import GRPOConfig
from policies.row_conditions import encode_row_conditions

LogProbFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
"""(policy, cond, latents, next_latents, sigmas, sigmas_next, guidance_scale, noise_level)
-> (log_prob [M], mean [M, *latent], std broadcastable to mean)."""


def ppo_clip_loss(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO-clip surrogate: mean(max(-A*r, -A*clip(r, 1-eps, 1+eps))) with r = exp(logp - logp_old).

    Returns (loss, clip_fraction, approx_kl): clip_fraction is the share of rows whose ratio left
    [1-eps, 1+eps]; approx_kl = mean(0.5 * (logp - logp_old)^2). The last two carry no gradient.
    """
    if not (log_prob.shape == old_log_prob.shape == advantages.shape) or log_prob.ndim != 1:
        raise ValueError(
            "ppo_clip_loss: log_prob, old_log_prob and advantages must all be [M]; got "
            f"{tuple(log_prob.shape)}, {tuple(old_log_prob.shape)}, {tuple(advantages.shape)}"
        )
    log_ratio = log_prob.float() - old_log_prob.float()
    ratio = torch.exp(log_ratio)
    adv = advantages.float()
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = torch.maximum(unclipped, clipped).mean()
    with torch.no_grad():
        clip_fraction = ((ratio - 1.0).abs() > clip_range).float().mean()
        approx_kl = 0.5 * (log_ratio**2).mean()
    return loss, clip_fraction, approx_kl


def kl_to_reference(mean: torch.Tensor, ref_mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Closed-form KL between two Gaussians of equal std, per row: mean over non-batch dims of
    (mean - ref_mean)^2 / (2 std^2). std is [M] or broadcastable to `mean`. Returns [M]."""
    if mean.shape != ref_mean.shape:
        raise ValueError(f"kl_to_reference: mean {tuple(mean.shape)} and ref_mean {tuple(ref_mean.shape)} differ")
    std = torch.as_tensor(std, dtype=torch.float32, device=mean.device)
    if mean.numel() == 0:  # no stochastic coordinates (an empty noise subspace): no divergence
        return torch.zeros(mean.shape[0], device=mean.device)
    if std.ndim == 1 and mean.ndim > 1:
        std = std.reshape(-1, *([1] * (mean.ndim - 1)))
    sq = (mean.float() - ref_mean.float()) ** 2 / (2.0 * std.float() ** 2)
    return sq.reshape(sq.shape[0], -1).mean(dim=1)


def _default_log_prob_fn() -> LogProbFn:
    from policies.rollout import transition_log_prob

    return transition_log_prob


def grpo_loss(
    policy: torch.nn.Module,
    ref_policy: torch.nn.Module,
    batch: TransitionBatch,
    grpo_cfg: GRPOConfig,
    guidance_scale: float,
    noise_level: float,
    log_prob_fn: Optional[LogProbFn] = None,
    noise_channels: str = "all",
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO loss of one minibatch of window transitions: ppo + kl_beta * mean KL to the reference.

    The policy recomputes the log-prob of each recorded x_t -> x_next step; the reference's mean
    is computed under no_grad (its std equals the policy's: it depends only on the schedule).
    log_prob_fn defaults to `policies.rollout.transition_log_prob`; noise_channels (the rollout's
    `sampler.noise_channels`) is passed to it when not `all`. ref_policy may be any object with the
    policy's methods (policies/trainable.py: a LoRA policy's adapters-disabled view).
    Metrics: loss, policy_loss, kl, clip_fraction, approx_kl, ratio_mean (python floats), and
    ref_forward_s, the seconds of the reference forward (0 when kl_beta=0).
    """
    fn = log_prob_fn or _default_log_prob_fn()
    args = (batch.latents, batch.next_latents, batch.sigmas, batch.sigmas_next, guidance_scale, noise_level)
    kwargs = {} if noise_channels == "all" else {"noise_channels": noise_channels}
    cond = encode_row_conditions(policy, batch.cond_inputs, batch.clip_ids)
    log_prob, mean, std = fn(policy, cond, *args, **kwargs)
    policy_loss, clip_fraction, approx_kl = ppo_clip_loss(
        log_prob, batch.old_log_probs.to(log_prob.device), batch.advantages.to(log_prob.device), grpo_cfg.clip_range
    )
    ref_forward_s = 0.0
    if grpo_cfg.kl_beta > 0:
        clock = time.perf_counter()
        with torch.no_grad():
            ref_cond = encode_row_conditions(ref_policy, batch.cond_inputs, batch.clip_ids)
            _, ref_mean, _ = fn(ref_policy, ref_cond, *args, **kwargs)
        if ref_mean.is_cuda:
            torch.cuda.synchronize(ref_mean.device)
        ref_forward_s = time.perf_counter() - clock
        kl = kl_to_reference(mean, ref_mean, std).mean()
    else:
        kl = torch.zeros((), device=log_prob.device)
    loss = policy_loss + grpo_cfg.kl_beta * kl
    with torch.no_grad():
        ratio_mean = torch.exp(log_prob.float() - batch.old_log_probs.to(log_prob.device).float()).mean()
    metrics = {
        "loss": float(loss.detach()),
        "policy_loss": float(policy_loss.detach()),
        "kl": float(kl.detach()),
        "clip_fraction": float(clip_fraction),
        "approx_kl": float(approx_kl),
        "ratio_mean": float(ratio_mean),
        "ref_forward_s": ref_forward_s,
    }
    return loss, metrics
