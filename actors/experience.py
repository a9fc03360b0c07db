"""The learner's batch formats: rows of experience, all sharing one row interface (`RowBatch`).

`TransitionBatch` (GRPO): window transitions of rollouts, one row per (sample, SDE step).
`CleanSampleBatch` (DiffusionNFT): finished samples, one row per (sample, forward draw).
Plain, picklable data (tensors on the CPU while it travels through the Ray object store).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Optional, Sequence, TypeVar

import torch

B = TypeVar("B", bound="RowBatch")

ROW_FIELDS: tuple[str, ...] = (
    "latents", "next_latents", "sigmas", "sigmas_next", "old_log_probs", "advantages", "versions",
)
"""Tensor fields whose first dim is the row dim M."""

MODEL_INPUT_FIELDS: tuple[str, ...] = ("latents", "next_latents")
"""Tensor fields that `to(dtype=...)` casts (with the floating condition inputs); the per-row
scalars (sigmas, log-probs, advantages) stay float32 so ratios are computed at full precision."""


class RowBatch:
    """What every batch format shares: tensor fields with M rows (`row_fields`), per-row condition
    inputs, clip ids; row selection, device/dtype moves and validation work on any of them."""

    row_fields: ClassVar[tuple[str, ...]] = ()
    """Tensor fields whose first dim is the row dim M."""
    model_input_fields: ClassVar[tuple[str, ...]] = ()
    """Tensor fields that `to(dtype=...)` casts (with the floating condition inputs)."""
    cond_inputs: dict[str, torch.Tensor]
    clip_ids: list[str]

    def __post_init__(self) -> None:
        self.validate()

    def __len__(self) -> int:
        return int(getattr(self, self.row_fields[0]).shape[0])

    def validate(self) -> None:
        """Raise ValueError naming the field whose row count differs from the first row field's."""
        m = len(self)
        name0 = type(self).__name__
        for name in self.row_fields:
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name0}.{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.ndim == 0 or t.shape[0] != m:
                raise ValueError(f"{name0}.{name} has shape {tuple(t.shape)}; expected {m} rows")
        for key, t in self.cond_inputs.items():
            if not isinstance(t, torch.Tensor) or t.ndim == 0 or t.shape[0] != m:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{name0}.cond_inputs[{key!r}] has shape {shape}; expected {m} rows")
        if len(self.clip_ids) != m:
            raise ValueError(f"{name0}.clip_ids has {len(self.clip_ids)} entries; expected {m} rows")

    def select(self: B, index: torch.Tensor | Sequence[int]) -> B:
        """The rows at `index` (a 1-D index tensor or list of row numbers), in that order."""
        idx = torch.as_tensor(index, dtype=torch.long)
        fields = {name: getattr(self, name)[idx] for name in self.row_fields}
        return type(self)(
            cond_inputs={k: v[idx] for k, v in self.cond_inputs.items()},
            clip_ids=[self.clip_ids[i] for i in idx.tolist()],
            **fields,
        )

    def to(self: B, device: torch.device | str, dtype: Optional[torch.dtype] = None) -> B:
        """A copy on `device`; with dtype, the model-input fields and floating condition inputs are cast to it."""

        def move(t: torch.Tensor, cast: bool) -> torch.Tensor:
            if cast and dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return dataclasses.replace(
            self,
            cond_inputs={k: move(v, True) for k, v in self.cond_inputs.items()},
            **{name: move(getattr(self, name), name in self.model_input_fields) for name in self.row_fields},
        )


@dataclass
class TransitionBatch(RowBatch):
    """M recorded SDE transitions x_t -> x_next with what GRPO needs to re-score them."""

    row_fields: ClassVar[tuple[str, ...]] = ROW_FIELDS
    model_input_fields: ClassVar[tuple[str, ...]] = MODEL_INPUT_FIELDS

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

    def validate(self) -> None:
        """RowBatch's row checks, and latents and next_latents of one shape."""
        super().validate()
        if self.latents.shape != self.next_latents.shape:
            raise ValueError(
                f"TransitionBatch latents {tuple(self.latents.shape)} and next_latents "
                f"{tuple(self.next_latents.shape)} differ"
            )


@dataclass
class CleanSampleBatch(RowBatch):
    """M (finished sample, forward draw) rows with what DiffusionNFT needs (policies/forward_draws.py)."""

    row_fields: ClassVar[tuple[str, ...]] = (
        "clean_latents", "noise", "times", "old_velocity", "advantages", "teacher_advantages", "versions")
    model_input_fields: ClassVar[tuple[str, ...]] = ("clean_latents", "noise", "old_velocity")

    cond_inputs: dict[str, torch.Tensor]
    """Per-row condition inputs (what `policy.prepare` returns, as tensors), batch dim M."""
    clean_latents: torch.Tensor
    """The finished sample x0 of the row, [M, *latent]."""
    noise: torch.Tensor
    """The draw's noise, [M, *latent]."""
    times: torch.Tensor
    """The draw's time t in (0, 1), [M]."""
    old_velocity: torch.Tensor
    """The rollout policy's conditional velocity at x_t = (1 - t) x0 + t noise, [M, *latent]."""
    advantages: torch.Tensor
    """Group-relative advantage of the sample, [M]."""
    teacher_advantages: torch.Tensor
    """Each teacher's part of that advantage, [M, T] in `common.types.TEACHERS` order (they sum to it;
    orchestrator/grpo/teacher_parts.py), for `nft.teacher_channels`; [M, 0] when the run does not route."""
    versions: torch.Tensor
    """Weight version of the rollout policy that produced the sample, int64 [M]."""
    clip_ids: list[str]
    """Clip id of each row, length M."""

    def validate(self) -> None:
        """RowBatch's row checks, and clean_latents, noise and old_velocity of one shape."""
        super().validate()
        shapes = {n: tuple(getattr(self, n).shape) for n in ("clean_latents", "noise", "old_velocity")}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"CleanSampleBatch: clean_latents, noise and old_velocity differ in shape: {shapes}")


def concat(batches: Sequence[B]) -> B:
    """All rows of `batches` (one batch format), in order. Condition inputs must have the same keys in every batch."""
    if not batches:
        raise ValueError("concat: no batches given")
    kinds = sorted({type(b).__name__ for b in batches})
    if len(kinds) > 1:
        raise ValueError(f"concat: batches of different formats {kinds}")
    cls = type(batches[0])
    keys = set(batches[0].cond_inputs)
    for i, b in enumerate(batches):
        if set(b.cond_inputs) != keys:
            raise ValueError(
                f"concat: batch {i} has condition keys {sorted(b.cond_inputs)}, batch 0 has {sorted(keys)}"
            )
    return cls(
        cond_inputs={k: torch.cat([b.cond_inputs[k] for b in batches]) for k in batches[0].cond_inputs},
        clip_ids=[c for b in batches for c in b.clip_ids],
        **{name: torch.cat([getattr(b, name) for b in batches]) for name in cls.row_fields},
    )


def split(batch: B, n: int) -> list[B]:
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


def minibatches(batch: B, size: int, generator: torch.Generator) -> list[B]:
    """Rows shuffled by `generator` then cut into chunks of `size` (the last may be smaller).

    Deterministic: the same generator state gives the same chunks."""
    if size < 1:
        raise ValueError(f"minibatches: size must be >= 1, got {size}")
    order = torch.randperm(len(batch), generator=generator)
    return [batch.select(order[i : i + size]) for i in range(0, len(batch), size)]


def draw_blocks(batch: "CleanSampleBatch") -> torch.Tensor:
    """Block id [M] of each DiffusionNFT row: rows of one group at one shared forward draw (same clip id,
    rollout weight version and draw time) share a block; ids count up in order of first appearance.
    A block holds every member of its group at that draw, so its advantages sum as the group's do."""
    if not isinstance(batch, CleanSampleBatch):
        raise TypeError(f"draw_blocks: rows must be CleanSampleBatch (DiffusionNFT), got {type(batch).__name__}")
    ids: dict[tuple[str, int, float], int] = {}
    versions, times = batch.versions.tolist(), batch.times.double().tolist()
    return torch.tensor([ids.setdefault((c, int(v), float(t)), len(ids))
                         for c, v, t in zip(batch.clip_ids, versions, times)], dtype=torch.long)


def micro_batch_plan(batch: B, count: int, generator: torch.Generator, blocks: Optional[torch.Tensor] = None
                     ) -> list[tuple[B, float]]:
    """Exactly `count` (micro-batch, loss weight) pairs over the rows of `batch`, shuffled by
    `generator`, chunk sizes differing by at most one. With `blocks` (an id per row, e.g. `draw_blocks`)
    the blocks are shuffled instead and none is split: chunk k takes the shuffled blocks whose first row
    falls in [k M / count, (k + 1) M / count) of the shuffled rows, so sizes differ by up to a block.

    Data-parallel ranks must all take the same number of micro steps (each backward is a
    collective), so a rank holding fewer rows than `count` fills the rest with one-row chunks of
    weight 0.0: they run forward and backward (keeping the collectives in step) but add nothing to
    the gradient. Raises ValueError on an empty batch (nothing to pad with)."""
    if count < 1:
        raise ValueError(f"micro_batch_plan: count must be >= 1, got {count}")
    m = len(batch)
    if m == 0:
        raise ValueError("micro_batch_plan: the batch has no rows")
    if blocks is None:
        order = torch.randperm(m, generator=generator)
        real = min(count, m)
        bounds = [i * m // real for i in range(real + 1)]
        plan = [(batch.select(order[bounds[i] : bounds[i + 1]]), 1.0) for i in range(real)]
    else:
        blocks = torch.as_tensor(blocks, dtype=torch.long)
        if blocks.shape != (m,):
            raise ValueError(f"micro_batch_plan: blocks {tuple(blocks.shape)} must give one id per row ({m})")
        unique = torch.unique(blocks)
        chunks: list[list[torch.Tensor]] = [[] for _ in range(count)]
        start = 0
        for b in unique[torch.randperm(len(unique), generator=generator)]:
            rows = torch.nonzero(blocks == b).flatten()
            chunks[min(count - 1, start * count // m)].append(rows)
            start += len(rows)
        plan = [(batch.select(torch.cat(c)), 1.0) for c in chunks if c]
    order = torch.arange(m) if blocks is not None else order
    real = len(plan)
    plan += [(batch.select(order[:1]), 0.0)] * (count - real)
    return plan
