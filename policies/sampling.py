"""Rectified-flow samplers with exact transition log-probs (plain functions, no model, no Ray).

Convention: x_t = (1 - t) x0 + t * noise, the model predicts v = noise - x0, sigmas run from 1
(noise) to 0 (data) and equal t. The SDE step is Flow-GRPO's (as used by PrismAudio):

  sigma_t = a * sqrt(s / (1 - s))        (s = 1 is replaced by s_next in the denominator)
  dt      = s_next - s  (< 0)
  mean    = x * (1 + sigma_t^2 * dt / (2 s)) + v * (1 + sigma_t^2 * (1 - s) / (2 s)) * dt
  std     = sigma_t * sqrt(-dt)
  x_next  = mean + std * eps

log_prob is the Gaussian log-density of x_next under N(mean, std^2), averaged (MEAN, not sum)
over all non-batch dimensions, as Flow-GRPO does: per-element units keep the PPO ratio on the
same scale for every latent size. With a = 0 the step is exactly the Euler ODE step
x + v * dt, std is 0 and the returned log_prob is all zeros (a deterministic transition has no
density; zeros keep ratios at 1 instead of producing NaNs).

`sigma`/`sigma_next` may be Python floats, 0-d tensors or per-sample tensors [B]; std comes back
as a tensor broadcastable to x ([B, 1, ..., 1]).

Noise on a subspace (`mask`, a bool tensor over the LAST dimension of x, see
policies/noise_subspace.py): the chosen coordinates take the SDE step above, the others the Euler
step x + v * dt, so the transition is Gaussian on the chosen coordinates and deterministic on the
rest. Its log_prob is the exact Gaussian log-density over the chosen coordinates (mean per element,
as without a mask); an all-False mask, like a = 0, is the ODE step with log_prob 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def make_sigmas(num_steps: int, shift: float = 1.0) -> torch.Tensor:
    """[num_steps + 1] sigmas from 1 to 0, uniform then shifted: s' = shift*s / (1 + (shift-1)*s)."""
    if num_steps < 1:
        raise ValueError(f"sampler.num_steps must be >= 1, got {num_steps}")
    if shift <= 0:
        raise ValueError(f"sampler.shift must be > 0, got {shift}")
    s = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
    s = shift * s / (1.0 + (shift - 1.0) * s)
    return s.float()


def _per_sample(value, x: torch.Tensor) -> torch.Tensor:
    """value (float, 0-d or [B]) as a float tensor of shape [B, 1, ..., 1] (or [1, ...] for scalars)."""
    t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        t = t.reshape(1)
    if t.dim() != 1 or t.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"sigma must be a scalar or have one value per sample ({x.shape[0]}), got shape {tuple(t.shape)}")
    return t.reshape(-1, *([1] * (x.dim() - 1)))


def ode_step(x: torch.Tensor, v: torch.Tensor, sigma, sigma_next) -> torch.Tensor:
    """Euler step of dx/dt = v from sigma to sigma_next."""
    return x + v * (_per_sample(sigma_next, x) - _per_sample(sigma, x))


def _is_ode(noise_level: float, mask: Optional[torch.Tensor]) -> bool:
    return noise_level == 0 or (mask is not None and not bool(mask.any()))


def sde_mean_std(x: torch.Tensor, v: torch.Tensor, sigma, sigma_next, noise_level: float,
                 mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of the Flow-GRPO transition x -> x_next; std broadcastable to x.

    With a channel mask the mean is the SDE mean on the chosen channels and the Euler step elsewhere."""
    s = _per_sample(sigma, x)
    s_next = _per_sample(sigma_next, x)
    dt = s_next - s
    if _is_ode(noise_level, mask):
        return x + v * dt, torch.zeros_like(s)
    denom_s = torch.where(s >= 1.0, s_next, s)
    sigma_t = noise_level * torch.sqrt(s / (1.0 - denom_s))
    mean = x * (1 + sigma_t**2 * dt / (2 * s)) + v * (1 + sigma_t**2 * (1 - s) / (2 * s)) * dt
    if mask is not None:
        mean = torch.where(mask.to(x.device), mean, x + v * dt)
    return mean, sigma_t * torch.sqrt(-dt)


def gaussian_log_prob(x_next: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                      mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Log N(x_next; mean, std^2) averaged over the non-batch dimensions -> [B]; with a channel mask
    (bool over the last dimension) averaged over the chosen channels only."""
    lp = -((x_next - mean) ** 2) / (2 * std**2) - torch.log(std) - LOG_SQRT_2PI
    if mask is not None:
        lp = lp[..., mask.to(lp.device)]
    return lp.mean(dim=tuple(range(1, lp.dim())))


@dataclass
class SDEStep:
    """One stochastic transition."""

    x_next: torch.Tensor
    """The sampled next latent [B, *latent]."""
    log_prob: torch.Tensor
    """Per-sample log-density of x_next (mean over elements) [B]; zeros when noise_level=0."""
    mean: torch.Tensor
    """Mean of the transition [B, *latent]."""
    std: torch.Tensor
    """Std of the transition, broadcastable to x."""


def sde_step(
    x: torch.Tensor,
    v: torch.Tensor,
    sigma,
    sigma_next,
    noise_level: float,
    generator: Optional[torch.Generator] = None,
    noise: Optional[torch.Tensor] = None,
    mask: Optional[torch.Tensor] = None,
) -> SDEStep:
    """Sample x_next ~ N(mean, std^2) (noise from `noise` if given, else from `generator`); with a
    channel mask only the chosen channels get noise (the noise tensor keeps x's full shape)."""
    mean, std = sde_mean_std(x, v, sigma, sigma_next, noise_level, mask)
    if _is_ode(noise_level, mask):
        return SDEStep(mean, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device), mean, std)
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    if mask is not None:
        noise = noise * mask.to(noise.device, noise.dtype)
    x_next = mean + std * noise
    return SDEStep(x_next, gaussian_log_prob(x_next.detach(), mean, std, mask), mean, std)


def sde_log_prob(
    x: torch.Tensor, x_next: torch.Tensor, v: torch.Tensor, sigma, sigma_next, noise_level: float,
    mask: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log_prob [B], mean, std) of a recorded transition x -> x_next under velocity v.

    Differentiable in v (the learner's PPO ratio and KL use it); zeros as log_prob when noise_level=0
    or the mask chooses nothing. With a channel mask, `mean` is the mean of the chosen channels only
    ([B, ..., chosen]): the Gaussian part of the transition, the one a KL between two policies of
    equal std compares.
    """
    mean, std = sde_mean_std(x, v, sigma, sigma_next, noise_level, mask)
    sub = mean if mask is None else mean[..., mask.to(mean.device)]
    if _is_ode(noise_level, mask):
        return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device) + 0 * mean.sum(), sub, std
    return gaussian_log_prob(x_next.detach(), mean, std, mask), sub, std
