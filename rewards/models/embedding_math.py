"""Similarity of paired embeddings (numpy, no model)."""
from __future__ import annotations

import numpy as np


def paired_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity `[B]` of `a[i]` and `b[i]` (`[B, D]` each), clipped to [-1, 1].

    Rows are normalised here, so unnormalised embeddings are fine; a zero row gives 0.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired_cosine: expected two [B, D] arrays of one shape, got {a.shape} and {b.shape}")
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na > 0) & (nb > 0), dots / (na * nb), 0.0)
    return np.clip(cos, -1.0, 1.0)
