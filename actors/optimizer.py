"""The learner's torch optimizer from `grpo.optimizer` (DeepSpeed wraps it; its own optimizers JIT-compile)."""
from __future__ import annotations

from typing import Iterable

import torch

OPTIMIZERS = ("adamw", "sgd")
"""Allowed `grpo.optimizer` values."""


def build_optimizer(params: Iterable[torch.nn.Parameter] | list[dict], name: str, lr: float, weight_decay: float,
                    momentum: float) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay) or SGD with heavy-ball momentum (L2 weight decay) over `params`
    (parameters, or torch parameter groups whose own "lr" overrides lr)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"grpo.momentum must be in [0, 1), got {momentum}")
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"grpo.optimizer must be one of {OPTIMIZERS}, got {name!r}")
