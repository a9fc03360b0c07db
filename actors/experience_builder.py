"""A group's experience as the learner receives it, and turning it into the learner's rows.

The controller hands the learner a `GroupExperience` per group: the ref of the rollout worker's
payload (records or forward draws, and the clip's prepared condition inputs, once), the group's G
advantages, its weight version and clip id. The learner rank that trains on the group fetches the
payload from the object store and assembles the rows itself (`assemble_experience`), so the rows,
which repeat the clip's condition inputs and the draws once per row, never travel through the
store, and no extra process runs per step (a Ray task per group used to: on two cores its worker
process, started again whenever it had idled past Ray's timeout, cost the learner about 2.5 s a
step with DiffusionNFT's 15 s steps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
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
                           clip_id: str, teacher_advantages: Sequence[Sequence[float]] = ()) -> CleanSampleBatch:
    """Rows (member g, draw j) of one group's forward draws (payload["draws"], policies/forward_draws.py),
    g-major: clean latents [G*J, ...], the draw's noise and time, the rollout policy's velocity; each
    member's teacher parts of its advantage when given (G rows of T), else [G*J, 0]."""
    draws = payload["draws"]
    G, J = draws.old_velocity.shape[:2]
    if len(advantages) != G:
        raise ValueError(f"clip {clip_id}: {len(advantages)} advantages for a group of {G}")
    if teacher_advantages and len(teacher_advantages) != G:
        raise ValueError(f"clip {clip_id}: teacher advantage parts of {len(teacher_advantages)} members for a group of {G}")
    parts = (torch.tensor(teacher_advantages, dtype=torch.float32) if teacher_advantages
             else torch.zeros((G, 0), dtype=torch.float32))
    shape = tuple(draws.clean_latents.shape[1:])
    prepared = payload["prepared"]
    return CleanSampleBatch(
        cond_inputs={k: _as_rows(v, G * J) for k, v in prepared.items()},
        clean_latents=draws.clean_latents.float().repeat_interleave(J, dim=0),
        noise=draws.noise.float().repeat(G, *([1] * len(shape))),
        times=torch.as_tensor(draws.times, dtype=torch.float32).repeat(G),
        old_velocity=draws.old_velocity.float().reshape(G * J, *shape),
        advantages=torch.tensor(advantages, dtype=torch.float32).repeat_interleave(J),
        teacher_advantages=parts.repeat_interleave(J, dim=0),
        versions=torch.full((G * J,), int(version), dtype=torch.int64),
        clip_ids=[clip_id] * (G * J),
    )


def assemble_experience(payload: dict[str, Any], advantages: Sequence[float], version: int, clip_id: str,
                        teacher_advantages: Sequence[Sequence[float]] = ()) -> RowBatch:
    """The learner's rows of one group: forward-draw rows when the rollout recorded draws (DiffusionNFT),
    else SDE transitions (GRPO, which uses the total advantage only)."""
    if payload.get("draws") is not None:
        return assemble_clean_samples(payload, advantages, version, clip_id, teacher_advantages)
    return assemble_transitions(payload, advantages, version, clip_id)


@dataclass(frozen=True)
class GroupExperience:
    """What the buffer holds and the learner receives for one group (small: a ref and G floats)."""

    payload: Any
    """ObjectRef of the rollout worker's payload (`actors/rollout_worker.py`: records or draws, prepared inputs)."""
    advantages: tuple[float, ...]
    """The group's advantages, one per member."""
    version: int
    """Weight version of the policy that sampled the group."""
    clip_id: str
    """The group's clip."""
    teacher_advantages: tuple[tuple[float, ...], ...] = ()
    """Per member, each teacher's part of its advantage (`common.types.TEACHERS` order), when the run
    routes teachers to channels (`nft.teacher_channels`); empty otherwise."""

    def rows(self, payload: dict[str, Any]) -> RowBatch:
        """The learner's rows of this group, from its fetched payload."""
        return assemble_experience(payload, self.advantages, self.version, self.clip_id, self.teacher_advantages)
