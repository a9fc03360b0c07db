"""Pareto optimality over several rewards, all maximized (plain Python, no Ray).

A point dominates another when it is at least as good on every objective and strictly better on
one. The Pareto front is the set of points no other point dominates.
"""
from __future__ import annotations

import math
from typing import Sequence


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when `a` is >= `b` everywhere and > somewhere (every objective maximized)."""
    if len(a) != len(b):
        raise ValueError(f"dominates: points of different lengths {len(a)} and {len(b)}")
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_mask(points: Sequence[Sequence[float]]) -> list[bool]:
    """For each point, whether it is Pareto-optimal among the finite points.

    A point with a NaN or infinite objective (a failed trial) is never optimal and never dominates.
    Identical points do not dominate each other, so duplicates on the front are all kept.
    """
    finite = [all(math.isfinite(float(x)) for x in p) for p in points]
    mask = []
    for i, p in enumerate(points):
        if not finite[i]:
            mask.append(False)
            continue
        mask.append(not any(finite[j] and j != i and dominates(q, p) for j, q in enumerate(points)))
    return mask
