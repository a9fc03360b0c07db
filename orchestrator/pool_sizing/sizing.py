"""Reward-pool sizing from measured throughput: plain arithmetic, no Ray.

Every generated sample goes to all four pools, so each pool must grade at least as fast as the
rollout fleet produces samples, times a headroom for bursts (a group's G samples arrive at once)
and replica restarts. A pool that cannot keep up starves the learner.

Throughput of a pool at n replicas comes from measurements at some replica counts: linear
interpolation between measured counts, proportional scaling below the smallest, and the
per-replica rate of the largest measured count beyond it (no further loss assumed: measure at
the scale you size for when you can).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping


@dataclass
class PoolSize:
    """The size of one reward pool."""

    teacher: str
    """Teacher the pool grades for."""
    replicas: int
    """Replica actors needed."""
    demand_samples_per_s: float
    """Rollout sample rate times headroom: what the pool must absorb."""
    capacity_samples_per_s: float
    """Estimated throughput at `replicas`."""
    per_replica_samples_per_s: float
    """Capacity / replicas."""
    utilization: float
    """Demand / capacity (<= 1): the busy share of each replica."""
    num_gpus: float
    """GPU fraction per replica: the share measured per replica times its utilization, rounded up
    to the GPU step (0 for a CPU teacher)."""

    def as_dict(self) -> dict:
        """Plain dict (for pool_sizes.json)."""
        return asdict(self)


def throughput_at(scaling: Mapping[int, float], replicas: int) -> float:
    """Estimated samples/s of a pool at `replicas` from measurements {replicas: samples/s}."""
    points = sorted((int(r), float(s)) for r, s in scaling.items())
    if not points:
        raise ValueError("throughput_at: no measurements")
    if any(r < 1 or s <= 0 or not math.isfinite(s) for r, s in points):
        raise ValueError(f"throughput_at: measurements need replicas >= 1 and samples/s > 0, got {dict(points)}")
    (r0, s0), (rn, sn) = points[0], points[-1]
    if replicas <= r0:
        return s0 * replicas / r0
    if replicas >= rn:
        return sn * replicas / rn
    for (ra, sa), (rb, sb) in zip(points, points[1:]):
        if ra <= replicas <= rb:
            return sa + (sb - sa) * (replicas - ra) / (rb - ra)
    raise AssertionError("unreachable")


def replicas_needed(scaling: Mapping[int, float], demand: float, max_replicas: int = 256) -> int:
    """Fewest replicas whose estimated throughput reaches `demand` samples/s."""
    for n in range(1, max_replicas + 1):
        if throughput_at(scaling, n) >= demand:
            return n
    raise ValueError(f"no replica count up to {max_replicas} reaches {demand:.1f} samples/s "
                     f"(measured {dict(scaling)})")


def _round_up(x: float, step: float) -> float:
    return round(math.ceil(x / step - 1e-9) * step, 6)


def size_pools(scaling: Mapping[str, Mapping[int, float]], rollout_samples_per_s: float, headroom: float = 1.5,
               measured_gpus: Mapping[str, float] | None = None, gpu_step: float = 0.05,
               max_replicas: int = 256) -> dict[str, PoolSize]:
    """A size per teacher: replicas so that capacity >= rollout rate x headroom, and the GPU fraction
    each replica needs (`measured_gpus[t]`: GPUs per replica during the measurement; 0/absent = CPU)."""
    if rollout_samples_per_s <= 0 or not math.isfinite(rollout_samples_per_s):
        raise ValueError(f"rollout sample rate must be > 0, got {rollout_samples_per_s}")
    if headroom < 1:
        raise ValueError(f"headroom must be >= 1 (a pool slower than the rollouts starves the learner), got {headroom}")
    if not 0 < gpu_step <= 1:
        raise ValueError(f"gpu_step must lie in (0, 1], got {gpu_step}")
    demand = rollout_samples_per_s * headroom
    sizes = {}
    for teacher, measured in scaling.items():
        try:
            n = replicas_needed(measured, demand, max_replicas)
        except ValueError as e:
            raise ValueError(f"pool '{teacher}': {e}") from None
        capacity = throughput_at(measured, n)
        utilization = demand / capacity
        gpus = float((measured_gpus or {}).get(teacher, 0.0))
        num_gpus = min(gpus, _round_up(gpus * utilization, gpu_step)) if gpus > 0 else 0.0
        sizes[teacher] = PoolSize(teacher, n, demand, capacity, capacity / n, utilization, num_gpus)
    return sizes
