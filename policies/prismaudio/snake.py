"""SnakeBeta, the periodic activation of the Oobleck VAE (BigVGAN's form, as stable-audio-tools uses it).

snake_beta(x) = x + sin(a * x)^2 / (b + 1e-9) per channel, with a = exp(alpha) and b = exp(beta):
the parameters `alpha` and `beta` are stored in log scale and start at zero (a = b = 1).
"""
from __future__ import annotations

import torch
from torch import nn

EPS = 1e-9
"""Added to b before dividing, as the reference does (`no_div_by_zero`)."""


def snake_beta(x: torch.Tensor, log_alpha: torch.Tensor, log_beta: torch.Tensor) -> torch.Tensor:
    """x [B, C, L] -> x + sin(exp(log_alpha) x)^2 / (exp(log_beta) + 1e-9), parameters [C] per channel."""
    alpha = log_alpha.exp()[:, None]
    inv_beta = 1.0 / (log_beta.exp()[:, None] + EPS)
    if torch.is_grad_enabled() and (x.requires_grad or log_alpha.requires_grad or log_beta.requires_grad):
        return x + inv_beta * torch.sin(x * alpha).pow(2)
    # Without autograd: the same operations in the same order, on one temporary instead of five.
    out = (x * alpha).sin_()
    return out.mul_(out).mul_(inv_beta).add_(x)


class SnakeBeta(nn.Module):
    """Per-channel SnakeBeta with log-scale `alpha` and `beta` of shape [channels]."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snake_beta(x, self.alpha, self.beta)
