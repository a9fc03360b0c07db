"""From Synchformer's 21 offset logits to an offset in seconds."""
from __future__ import annotations

import numpy as np

from rewards.formulas import synchformer_offset_grid


def predicted_offsets(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`[B, 21]` logits -> (offset of the argmax class in seconds `[B]`, its softmax probability `[B]`)."""
    logits = np.asarray(logits, dtype=np.float64)
    grid = synchformer_offset_grid()
    if logits.shape[-1] != grid.size:
        raise ValueError(f"expected {grid.size} offset logits per row, got shape {logits.shape}")
    cls = logits.argmax(axis=-1)
    z = logits - logits.max(axis=-1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    return grid[cls], np.take_along_axis(probs, cls[..., None], axis=-1)[..., 0]
