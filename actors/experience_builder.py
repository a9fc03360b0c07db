"""Turning one group's rollout records plus its advantages into the learner's rows, inside Ray.

Runs as a small Ray task next to the data: the records arrive from the rollout worker through
the object store and the batch goes back into it; the controller only passes refs and G floats.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import ray
import torch

from actors.experience import CleanSampleBatch, RowBatch, TransitionBatch


def _as_rows(value: Any, rows: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(value)) if not isinstance(value, torch.Tensor) else value
    if t.ndim == 0 or t.shape[0] != 1:
        raise ValueError(f"condition inputs of one group must have batch dim 1, got shape {tuple(t.shape)}")
    return t.expand(rows, *t.shape[1:]).clone()


def assemble_transitions(payload: dict[str, Any], advantages: Sequence[float], version: int,
                         clip_id: str) -> TransitionBatch:
    """Rows (member g, window step k) of one group, g-major: latents [G*K, ...], advantage of member g."""
    rec = payload["records"]
    G, K = rec.log_probs.shape[:2]
    if len(advantages) != G:
        raise ValueError(f"clip {clip_id}: {len(advantages)} advantages for a group of {G}")
    flat = lambda t: t.reshape(G * K, *t.shape[2:])  # noqa: E731
    prepared = payload["prepared"]
    return TransitionBatch(
        cond_inputs={k: _as_rows(v, G * K) for k, v in prepared.items()},
        latents=flat(rec.latents).float(),
        next_latents=flat(rec.next_latents).float(),
        sigmas=torch.as_tensor(rec.sigmas, dtype=torch.float32).repeat(G),
        sigmas_next=torch.as_tensor(rec.sigmas_next, dtype=torch.float32).repeat(G),
        old_log_probs=flat(rec.log_probs).float(),
        advantages=torch.tensor(advantages, dtype=torch.float32).repeat_interleave(K),
        versions=torch.full((G * K,), int(version), dtype=torch.int64),
        clip_ids=[clip_id] * (G * K),
    )


def assemble_clean_samples(payload: dict[str, Any], advantages: Sequence[float], version: int,
                           clip_id: str) -> CleanSampleBatch:
    """Rows (member g, draw j) of one group's forward draws (payload["draws"], policies/forward_draws.py),
    g-major: clean latents [G*J, ...], the draw's noise and time, the rollout policy's velocity."""
    draws = payload["draws"]
    G, J = draws.old_velocity.shape[:2]
    if len(advantages) != G:
        raise ValueError(f"clip {clip_id}: {len(advantages)} advantages for a group of {G}")
    shape = tuple(draws.clean_latents.shape[1:])
    prepared = payload["prepared"]
    return CleanSampleBatch(
        cond_inputs={k: _as_rows(v, G * J) for k, v in prepared.items()},
        clean_latents=draws.clean_latents.float().repeat_interleave(J, dim=0),
        noise=draws.noise.float().repeat(G, *([1] * len(shape))),
        times=torch.as_tensor(draws.times, dtype=torch.float32).repeat(G),
        old_velocity=draws.old_velocity.float().reshape(G * J, *shape),
        advantages=torch.tensor(advantages, dtype=torch.float32).repeat_interleave(J),
        versions=torch.full((G * J,), int(version), dtype=torch.int64),
        clip_ids=[clip_id] * (G * J),
    )


def assemble_experience(payload: dict[str, Any], advantages: Sequence[float], version: int, clip_id: str) -> RowBatch:
    """The learner's rows of one group: forward-draw rows when the rollout recorded draws (DiffusionNFT),
    else SDE transitions (GRPO)."""
    if payload.get("draws") is not None:
        return assemble_clean_samples(payload, advantages, version, clip_id)
    return assemble_transitions(payload, advantages, version, clip_id)


@ray.remote(num_cpus=0.05)
def build_experience(payload: dict[str, Any], advantages: list[float], version: int, clip_id: str) -> RowBatch:
    """Ray task wrapper of `assemble_experience` (payload arrives resolved from its ref)."""
    return assemble_experience(payload, advantages, version, clip_id)
