"""Which sampler steps are stochastic (SDE) and trained: Fast-GRPO, Flow-GRPO and MixGRPO.

Step indices i refer to the transition sigmas[i] -> sigmas[i+1] of `make_sigmas(num_steps)`.

- fast_grpo: `window` consecutive steps; the start is drawn uniformly from the allowed starts
  {0, ..., n-1}, n = min(floor(window_range * num_steps), num_steps - window + 1) (at least 1),
  using the run's seeded generator, so each training step gets its own window and every process
  drawing from the same generator state agrees (never reseeded with a process index).
- flow_grpo: every step is an SDE step; `training_steps` optionally keeps a random subset of
  `flow_train_steps` of them for the loss.
- mix_grpo: a window of `window` steps starting at step // mix_slide_every (one step towards
  the clean end every mix_slide_every training steps), clamped at the last position
  num_steps - window: once it reaches the clean end it stays there.
"""
from __future__ import annotations

import math

import torch

SCHEDULES = ("fast_grpo", "flow_grpo", "mix_grpo")


def fast_grpo_starts(num_steps: int, window: int, window_range: float) -> list[int]:
    """The window starts fast_grpo may draw."""
    n = min(int(math.floor(window_range * num_steps + 1e-9)), num_steps - window + 1)
    return list(range(max(1, n)))


def window_for_step(
    schedule: str,
    step: int,
    num_steps: int,
    window: int,
    generator: torch.Generator | None = None,
    window_range: float = 0.5,
    mix_slide_every: int = 25,
) -> list[int]:
    """Sorted SDE step indices for training step `step` (see the module docstring)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"sampler.schedule: unknown '{schedule}'; allowed: {', '.join(SCHEDULES)}")
    if schedule == "flow_grpo":
        return list(range(num_steps))
    if not 1 <= window <= num_steps:
        raise ValueError(f"sampler.window={window} must be in [1, sampler.num_steps={num_steps}]")
    if schedule == "fast_grpo":
        if generator is None:
            raise ValueError("fast_grpo needs the run's seeded torch.Generator to draw the window start")
        starts = fast_grpo_starts(num_steps, window, window_range)
        start = starts[int(torch.randint(len(starts), (1,), generator=generator))]
    else:
        if mix_slide_every < 1:
            raise ValueError(f"sampler.mix_slide_every must be >= 1, got {mix_slide_every}")
        start = min(step // mix_slide_every, num_steps - window)
    return list(range(start, start + window))


def training_steps(sde_steps: list[int], flow_train_steps: int, generator: torch.Generator | None = None) -> list[int]:
    """The SDE steps whose transitions enter the loss: all, or a random subset of flow_train_steps."""
    if flow_train_steps <= 0 or flow_train_steps >= len(sde_steps):
        return list(sde_steps)
    if generator is None:
        raise ValueError("choosing a subset of flow_train_steps needs the run's seeded torch.Generator")
    pick = torch.randperm(len(sde_steps), generator=generator)[:flow_train_steps]
    return sorted(sde_steps[int(i)] for i in pick)
