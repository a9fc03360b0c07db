"""Pareto optimality over several rewards, all maximized (plain Python, no Ray).

Exact: a point dominates another when it is at least as good on every objective and strictly
better on one (`dominates`, `pareto_mask`). The Pareto front is the set of points no other point
dominates.

Beyond noise (what the sweep report uses): validation means carry noise, so a point dominates
another only when it is nowhere worse by more than `z` standard errors of their paired difference
and somewhere better by more than `z` s.e. (`dominates_beyond_noise`, `pareto_mask_beyond_noise`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence


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


# ----- dominance beyond noise ------------------------------------------------------------------------
NOISE_Z = 2.0
"""Default margin, in standard errors of a paired difference, that separates "better" from "within
noise" (`sweep.pareto_z`). With z = 2 a true tie is called better on one teacher about 2.3% of the time."""


@dataclass(frozen=True)
class Estimate:
    """One trial's result on one objective (a teacher): its change from before training, the
    change's paired standard error, and (when known) the per-clip validation means after training
    that a paired comparison with another trial needs."""

    change: float
    """Mean over validation clips of (after training - before training)."""
    se: float
    """Standard error of `change` (per-clip differences, paired); math.inf when unknown (one clip)."""
    clips: Optional[Mapping[str, float]] = None
    """{clip_id: mean validation reward after training}; None when the trial did not report them."""

    def usable(self) -> bool:
        """Whether the estimate can be compared at all: a finite change and an s.e. >= 0 (an
        infinite s.e., unknown, is usable and decides nothing)."""
        return math.isfinite(self.change) and self.se >= 0


def gap(a: Estimate, b: Estimate) -> tuple[float, float]:
    """(how much better `a` is than `b`, the standard error of that gap).

    Paired clip by clip when both carry per-clip values on the same clip ids (at least two clips
    finite in both): the mean and s.e. (sample std / sqrt(n)) of (a - b) over those clips, so the
    spread between clips, which both trials share, cancels. Otherwise (a trial without per-clip
    values, or different clips) the fallback: a.change - b.change with s.e. sqrt(se_a^2 + se_b^2),
    which treats the two changes as independent and is wider than the paired s.e. when the clips
    move together."""
    if a.clips is not None and b.clips is not None and set(a.clips) == set(b.clips):
        d = [float(a.clips[c]) - float(b.clips[c]) for c in a.clips]
        d = [x for x in d if math.isfinite(x)]
        if len(d) >= 2:
            mean = sum(d) / len(d)
            var = sum((x - mean) ** 2 for x in d) / (len(d) - 1)
            return mean, math.sqrt(var / len(d))
    return a.change - b.change, math.sqrt(a.se ** 2 + b.se ** 2)


def dominates_beyond_noise(a: Mapping[str, Estimate], b: Mapping[str, Estimate], z: float = NOISE_Z) -> bool:
    """True when `a` is better than `b` beyond noise: on no objective is `a` worse by more than `z`
    standard errors of the gap (`gap`), and on at least one it is better by more than `z` s.e.

    Both must have the same objectives (every one maximized). A gap of exactly 0 with s.e. 0 is a
    tie, not a win."""
    if set(a) != set(b):
        raise ValueError(f"dominates_beyond_noise: different objectives {sorted(a)} and {sorted(b)}")
    if not z >= 0:
        raise ValueError(f"dominates_beyond_noise: z must be >= 0, got {z}")
    better = False
    for key in a:
        diff, se = gap(a[key], b[key])
        if diff < -z * se:
            return False
        better = better or diff > z * se
    return better


def dominators_beyond_noise(points: Sequence[Optional[Mapping[str, Estimate]]], z: float = NOISE_Z) -> list[list[int]]:
    """For each point, the indices of the points that dominate it beyond noise.

    A point that is None or has an unusable estimate (a failed trial, or one stopped before its
    final validation) is compared with nothing: it dominates no point and no point dominates it."""
    ok = [p is not None and bool(p) and all(e.usable() for e in p.values()) for p in points]
    return [[j for j, q in enumerate(points) if ok[i] and ok[j] and j != i and dominates_beyond_noise(q, p, z)]
            for i, p in enumerate(points)]


def pareto_mask_beyond_noise(points: Sequence[Optional[Mapping[str, Estimate]]], z: float = NOISE_Z) -> list[bool]:
    """For each point, whether it is Pareto-optimal beyond noise: comparable (see
    `dominators_beyond_noise`) and dominated beyond noise by no other point.

    Differences within `z` s.e. decide nothing, so trials that are all within noise of one another
    are all optimal. The relation is not transitive; in principle (cycles of wins with different
    s.e.) no point could be optimal, and then the mask is all False."""
    ok = [p is not None and bool(p) and all(e.usable() for e in p.values()) for p in points]
    return [ok[i] and not doms for i, doms in enumerate(dominators_beyond_noise(points, z))]
