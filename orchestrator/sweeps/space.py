"""What a reward-weight sweep explores and what one trial reserves: the Tune search space, the
trial's placement-group bundles, and the yardstick total that compares trials.

Trial resources: one placement group per trial holds every role of its training run.
Bundle 0 runs the trial's controller (the Tune function actor); the other bundles are one per
rollout worker, pool replica and learner rank, plus one for the controller's short tasks
(experience building). Tune starts the controller with `placement_group_capture_child_tasks`,
so rollout workers, pool replicas and tasks created without a strategy land in the group, and
the learner group takes the enclosing group's bundles instead of creating its own
(`actors.learner_group.enclosing_placement_group`).
"""
from __future__ import annotations

import copy
from typing import Any, Mapping

from common.types import TEACHERS
from orchestrator.config.schema import PrismConfig, SweepConfig

CPU_STEP = 1e-4
"""Ray's resource granularity: fractional CPUs are rounded up to it."""


def check_sweep_config(sc: SweepConfig) -> None:
    """Raise ValueError naming the `sweep.*` key that cannot work."""
    if sc.num_samples < 1:
        raise ValueError(f"sweep.num_samples must be >= 1, got {sc.num_samples}")
    if sc.max_concurrent < 1:
        raise ValueError(f"sweep.max_concurrent must be >= 1, got {sc.max_concurrent}")
    for key in ("trial_cpu_fraction", "head_cpus", "task_cpus", "asha_reduction_factor"):
        if getattr(sc, key) <= 0:
            raise ValueError(f"sweep.{key} must be > 0, got {getattr(sc, key)}")
    if not sc.pareto_z >= 0:
        raise ValueError(f"sweep.pareto_z must be >= 0, got {sc.pareto_z}")
    if sc.asha and sc.asha_reduction_factor <= 1:
        raise ValueError(f"sweep.asha_reduction_factor must be > 1, got {sc.asha_reduction_factor}")
    for t in TEACHERS:
        values = list(getattr(sc.weights, t))
        if any(v < 0 for v in values):
            raise ValueError(f"sweep.weights.{t}: weights must be >= 0, got {values}")
        if sc.search == "random" and len(values) not in (0, 1, 2):
            raise ValueError(f"sweep.weights.{t}: search=random takes [low, high], got {values}")
        if sc.search == "random" and len(values) == 2 and values[0] > values[1]:
            raise ValueError(f"sweep.weights.{t}: low {values[0]} > high {values[1]}")


def weight_space(sc: SweepConfig, base: Mapping[str, float]) -> dict[str, Any]:
    """Tune's param_space: one entry per teacher, a grid, a uniform range or a fixed weight."""
    from ray import tune

    check_sweep_config(sc)
    space: dict[str, Any] = {}
    for t in TEACHERS:
        values = [float(v) for v in getattr(sc.weights, t)]
        if not values:
            space[t] = float(base[t])
        elif len(values) == 1:
            space[t] = values[0]
        elif sc.search == "grid":
            space[t] = tune.grid_search(values)
        else:
            space[t] = tune.uniform(values[0], values[1])
    return space


def _scaled(cpus: float, fraction: float) -> float:
    steps = max(1, round(cpus * fraction / CPU_STEP + 0.4999))
    return steps * CPU_STEP


def scale_trial_cpus(cfg: PrismConfig, fraction: float) -> PrismConfig:
    """A copy of `cfg` whose rollout workers, pool replicas and learner ranks ask `fraction` of
    their CPUs (rounded up to Ray's granularity); GPUs are unchanged."""
    out = copy.deepcopy(cfg)
    if fraction == 1.0:
        return out
    out.rollout.num_cpus = _scaled(cfg.rollout.num_cpus, fraction)
    out.learner.num_cpus = _scaled(cfg.learner.num_cpus, fraction)
    for t in TEACHERS:
        pool = getattr(out.pools, t)
        pool.num_cpus = _scaled(pool.num_cpus, fraction)
    return out


def _bundle(cpus: float, gpus: float) -> dict[str, float]:
    return {"CPU": float(cpus), **({"GPU": float(gpus)} if gpus > 0 else {})}


def trial_bundles(cfg: PrismConfig) -> list[dict[str, float]]:
    """Placement-group bundles of one trial: controller, tasks, rollout workers, pool replicas,
    learner ranks (each sized exactly as the role asks, so every role finds room)."""
    sc = cfg.sweep
    bundles = [_bundle(sc.head_cpus, 0), _bundle(sc.task_cpus, 0)]
    bundles += [_bundle(cfg.rollout.num_cpus, cfg.rollout.num_gpus)] * cfg.rollout.num_workers
    for t in TEACHERS:
        pool = getattr(cfg.pools, t)
        bundles += [_bundle(pool.num_cpus, pool.num_gpus)] * pool.replicas
    bundles += [_bundle(cfg.learner.num_cpus, cfg.learner.num_gpus)] * cfg.learner.num_ranks
    return bundles


def reference_total(val: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted sum of per-teacher validation means under one fixed set of weights.

    Each trial's own `total` uses its own weights, so totals of different trials are not
    comparable; this one (with the sweep config's weights) is, and ASHA ranks trials by it."""
    return float(sum(float(weights[t]) * float(val[t]) for t in TEACHERS))
