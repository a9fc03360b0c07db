"""The learner's batch format: window transitions of rollouts, one row per (sample, SDE step).

Plain, picklable data (tensors on the CPU while it travels through the Ray object store).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

ROW_FIELDS: tuple[str, ...] = (
    "latents", "next_latents", "sigmas", "sigmas_next", "old_log_probs", "advantages", "versions",
)
"""Tensor fields whose first dim is the row dim M."""

MODEL_INPUT_FIELDS: tuple[str, ...] = ("latents", "next_latents")
"""Tensor fields that `to(dtype=...)` casts (with the floating condition inputs); the per-row
scalars (sigmas, log-probs, advantages) stay float32 so ratios are computed at full precision."""


@dataclass
class TransitionBatch:
    """M recorded SDE transitions x_t -> x_next with what GRPO needs to re-score them."""

    cond_inputs: dict[str, torch.Tensor]
    """Per-row condition inputs (what `policy.prepare` returns, as tensors), batch dim M."""
    latents: torch.Tensor
    """x_t, [M, *latent_shape]."""
    next_latents: torch.Tensor
    """x_next drawn by the SDE step, [M, *latent_shape]."""
    sigmas: torch.Tensor
    """Current sigma (t) of each step, [M]."""
    sigmas_next: torch.Tensor
    """Next sigma of each step, [M] (smaller than `sigmas`)."""
    old_log_probs: torch.Tensor
    """Log-prob of x_next under the rollout policy, [M]."""
    advantages: torch.Tensor
    """Group-relative advantage of the sample the row belongs to, [M]."""
    versions: torch.Tensor
    """Weight version of the rollout policy that produced the row, int64 [M]."""
    clip_ids: list[str]
    """Clip id of each row (for error messages and bookkeeping), length M."""

    def __post_init__(self) -> None:
        self.validate()

    def __len__(self) -> int:
        return int(self.sigmas.shape[0])

    def validate(self) -> None:
        """Raise ValueError naming the field whose row count differs from `sigmas`'."""
        m = int(self.sigmas.shape[0])
        for name in ROW_FIELDS:
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"TransitionBatch.{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.ndim == 0 or t.shape[0] != m:
                raise ValueError(f"TransitionBatch.{name} has shape {tuple(t.shape)}; expected {m} rows")
        for key, t in self.cond_inputs.items():
            if not isinstance(t, torch.Tensor) or t.ndim == 0 or t.shape[0] != m:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"TransitionBatch.cond_inputs[{key!r}] has shape {shape}; expected {m} rows")
        if len(self.clip_ids) != m:
            raise ValueError(f"TransitionBatch.clip_ids has {len(self.clip_ids)} entries; expected {m} rows")
        if self.latents.shape != self.next_latents.shape:
            raise ValueError(
                f"TransitionBatch latents {tuple(self.latents.shape)} and next_latents "
                f"{tuple(self.next_latents.shape)} differ"
            )

    def select(self, index: torch.Tensor | Sequence[int]) -> "TransitionBatch":
        """The rows at `index` (a 1-D index tensor or list of row numbers), in that order."""
        idx = torch.as_tensor(index, dtype=torch.long)
        fields = {name: getattr(self, name)[idx] for name in ROW_FIELDS}
        return TransitionBatch(
            cond_inputs={k: v[idx] for k, v in self.cond_inputs.items()},
            clip_ids=[self.clip_ids[i] for i in idx.tolist()],
            **fields,
        )

    def to(self, device: torch.device | str, dtype: Optional[torch.dtype] = None) -> "TransitionBatch":
        """A copy on `device`; with dtype, latents and floating condition inputs are cast to it."""

        def move(t: torch.Tensor, cast: bool) -> torch.Tensor:
            if cast and dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return dataclasses.replace(
            self,
            cond_inputs={k: move(v, True) for k, v in self.cond_inputs.items()},
            **{name: move(getattr(self, name), name in MODEL_INPUT_FIELDS) for name in ROW_FIELDS},
        )


def concat(batches: Sequence[TransitionBatch]) -> TransitionBatch:
    """All rows of `batches`, in order. Condition inputs must have the same keys in every batch."""
    if not batches:
        raise ValueError("concat: no batches given")
    keys = set(batches[0].cond_inputs)
    for i, b in enumerate(batches):
        if set(b.cond_inputs) != keys:
            raise ValueError(
                f"concat: batch {i} has condition keys {sorted(b.cond_inputs)}, batch 0 has {sorted(keys)}"
            )
    return TransitionBatch(
        cond_inputs={k: torch.cat([b.cond_inputs[k] for b in batches]) for k in batches[0].cond_inputs},
        clip_ids=[c for b in batches for c in b.clip_ids],
        **{name: torch.cat([getattr(b, name) for b in batches]) for name in ROW_FIELDS},
    )


def split(batch: TransitionBatch, n: int) -> list[TransitionBatch]:
    """n contiguous parts whose sizes differ by at most one (the first parts take the extra rows)."""
    if n < 1:
        raise ValueError(f"split: n must be >= 1, got {n}")
    m = len(batch)
    sizes = [m // n + (1 if i < m % n else 0) for i in range(n)]
    parts, start = [], 0
    for size in sizes:
        parts.append(batch.select(range(start, start + size)))
        start += size
    return parts


def minibatches(batch: TransitionBatch, size: int, generator: torch.Generator) -> list[TransitionBatch]:
    """Rows shuffled by `generator` then cut into chunks of `size` (the last may be smaller).

    Deterministic: the same generator state gives the same chunks."""
    if size < 1:
        raise ValueError(f"minibatches: size must be >= 1, got {size}")
    order = torch.randperm(len(batch), generator=generator)
    return [batch.select(order[i : i + size]) for i in range(0, len(batch), size)]


def micro_batch_plan(
    batch: TransitionBatch, count: int, generator: torch.Generator
) -> list[tuple[TransitionBatch, float]]:
    """Exactly `count` (micro-batch, loss weight) pairs over the rows of `batch`, shuffled by
    `generator`, chunk sizes differing by at most one.

    Data-parallel ranks must all take the same number of micro steps (each backward is a
    collective), so a rank holding fewer rows than `count` fills the rest with one-row chunks of
    weight 0.0: they run forward and backward (keeping the collectives in step) but add nothing to
    the gradient. Raises ValueError on an empty batch (nothing to pad with)."""
    if count < 1:
        raise ValueError(f"micro_batch_plan: count must be >= 1, got {count}")
    m = len(batch)
    if m == 0:
        raise ValueError("micro_batch_plan: the batch has no rows")
    order = torch.randperm(m, generator=generator)
    real = min(count, m)
    bounds = [i * m // real for i in range(real + 1)]
    plan = [(batch.select(order[bounds[i] : bounds[i + 1]]), 1.0) for i in range(real)]
    plan += [(batch.select(order[:1]), 0.0)] * (count - real)
    return plan
