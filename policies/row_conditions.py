"""Encoding a learner batch's condition inputs once per distinct row.

A learner row batch carries one copy of its clip's condition inputs per row: a group of G samples
with K window steps (or J forward draws) repeats the same frames and tokens G x K times. The video
and text encoders would run on every copy. `encode_row_conditions` finds the distinct rows (rows of
one clip id whose inputs are equal), encodes those, and gathers the result back to every row. The
gather's backward sums the rows' gradients into the shared encoding, so loss and gradients are
those of encoding every row (up to float summation order), at the cost of one encoding per clip.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from policies.base import Conditions


def _same_row(cond_inputs: dict[str, Any], i: int, j: int) -> bool:
    return all(torch.equal(v[i], v[j]) for v in cond_inputs.values())


def distinct_rows(cond_inputs: dict[str, torch.Tensor], clip_ids: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, inverse): `first` [U] holds one row number per distinct row, `inverse` [M] the position
    in `first` of each row's twin, so row i's inputs equal row first[inverse[i]]'s. Rows are compared
    only within one clip id, and exactly (a clip whose rows differ, say by plan, keeps each variant)."""
    m = len(clip_ids)
    for key, v in cond_inputs.items():
        if not isinstance(v, torch.Tensor) or v.ndim == 0 or v.shape[0] != m:
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"cond_inputs[{key!r}] has shape {shape}; expected {m} rows (one per clip id)")
    first: list[int] = []
    inverse = torch.empty(m, dtype=torch.long)
    by_clip: dict[str, list[int]] = {}  # clip id -> positions in `first` of its variants
    for i, clip in enumerate(clip_ids):
        variants = by_clip.setdefault(clip, [])
        for pos in variants:
            if _same_row(cond_inputs, i, first[pos]):
                inverse[i] = pos
                break
        else:
            variants.append(len(first))
            inverse[i] = len(first)
            first.append(i)
    return torch.tensor(first, dtype=torch.long), inverse


def encode_row_conditions(policy: Any, cond_inputs: dict[str, torch.Tensor], clip_ids: Sequence[str]) -> Conditions:
    """policy.encode_conditions(cond_inputs), computed on the distinct rows only and gathered to all M rows."""
    first, inverse = distinct_rows(cond_inputs, clip_ids)
    if len(first) == len(clip_ids):
        return policy.encode_conditions(cond_inputs)
    cond = policy.encode_conditions({k: v[first] for k, v in cond_inputs.items()})
    return {k: v[inverse.to(v.device)] for k, v in cond.items()}
