"""Throughput benchmark: steady-state samples/s of the Ray pipeline against the single-process loop.

The pipeline is the real `Trainer` (rollout fleet, four reward pools, DeepSpeed learner group) run
for `warmup_steps` then `measure_steps` steps with no checkpoints or validation in between. The
baseline is `benchmarks.sequential`, the identical work in one process, run after the pipeline's
Ray is shut down so the two never share the CPUs.

Per pipeline step, stage times (seconds):
- rollout: the rollout workers' critical path (per worker, the sum of its groups' in-worker
  seconds; the max over workers), and rollout_wait, the controller's wait for all groups;
- reward.<teacher>: from submitting the step's samples to that pool until its grades are back;
  reward: the phase (the slowest pool; pools grade concurrently);
- learn: the learner group's train step (experience fetch, micro steps, EMA) seen from the controller;
- sync: publishing the new weights and queueing them on the workers.
Orchestration overhead is the share of step wall time in none of rollout, reward, learn and sync:
dispatch, object-store transfers around the rollouts, advantages, bookkeeping. Reward, learn and
sync are timed at the controller and include their own transfers, so it is a lower bound.
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from common.types import TEACHERS
from orchestrator.config.schema import PrismConfig

STAGE_KEYS: tuple[str, ...] = ("rollout", "rollout_wait", *(f"reward.{t}" for t in TEACHERS), "reward", "learn",
                               "sync", "other")
"""Per-step stage times reported for the pipeline."""
COMPUTE_STAGES: tuple[str, ...] = ("rollout", "reward", "learn", "sync")
"""Stages whose time counts as compute (everything else is orchestration overhead)."""


@dataclass
class ThroughputOptions:
    """Options of `prismrl bench throughput` (set as bench.<field>=value)."""

    warmup_steps: int = 1
    """Steps run before measuring (DeepSpeed, worker and pool warm-up); not counted."""
    measure_steps: int = 3
    """Steps measured after the warm-up."""
    sequential: bool = True
    """Also run the single-process baseline (benchmarks/sequential.py) and report the ratio."""
    sequential_threads: int = 0
    """torch threads of the baseline; 0 = rollout.torch_threads, the threads of one pipeline actor (more
    threads than free cores slow torch down badly on a shared machine: measured 10x on 2 busy cores)."""


def rollout_critical_path(workers: Sequence[int], seconds: Sequence[float]) -> float:
    """Busy time of the rollout stage: workers run in parallel, each its own groups one after another."""
    per_worker: dict[int, float] = {}
    for w, s in zip(workers, seconds):
        per_worker[w] = per_worker.get(w, 0.0) + float(s)
    return max(per_worker.values(), default=0.0)


def step_stages(metrics: dict[str, float], rollout_busy: float) -> dict[str, float]:
    """Stage seconds of one pipeline step from the Trainer's step metrics and the rollout critical path."""
    out = {"rollout": rollout_busy, "rollout_wait": float(metrics["time/rollout"])}
    for t in TEACHERS:
        out[f"reward.{t}"] = float(metrics[f"time/reward.{t}"])
    out["reward"] = max(out[f"reward.{t}"] for t in TEACHERS)
    out["learn"], out["sync"] = float(metrics["time/learn"]), float(metrics["time/sync"])
    out["other"] = max(0.0, float(metrics["time/step"]) - sum(out[k] for k in COMPUTE_STAGES))
    return out


def overhead_fraction(wall_s: float, stages: Sequence[dict[str, float]]) -> float:
    """Share of `wall_s` (the measured steps end to end) spent in no compute stage of those steps."""
    if wall_s <= 0:
        raise ValueError(f"overhead_fraction: wall time must be > 0, got {wall_s}")
    compute = sum(s[k] for s in stages for k in COMPUTE_STAGES)
    return max(0.0, wall_s - compute) / wall_s


def _stage_timed_trainer(cfg: PrismConfig):
    """A Trainer that also keeps, per step, each group's in-worker seconds and the workers' critical path."""
    from orchestrator.training.trainer import Trainer

    class StageTimedTrainer(Trainer):
        def __init__(self, cfg: PrismConfig):
            super().__init__(cfg)
            self.rollout_busy: list[float] = []
            self.group_seconds: list[list[float]] = []

        def _collect(self, launched):
            collected = super()._collect(launched)
            groups = collected["groups"]
            self.group_seconds.append([g.seconds for g in groups])
            self.rollout_busy.append(rollout_critical_path([g.worker for g in groups], [g.seconds for g in groups]))
            return collected

    return StageTimedTrainer(cfg)


def measure_pipeline(cfg: PrismConfig, warmup_steps: int, measure_steps: int) -> dict[str, Any]:
    """Steady-state figures of the Ray pipeline over `measure_steps` steps after `warmup_steps`."""
    import ray

    from orchestrator.runtime.ray_setup import init_ray

    owns_ray = init_ray(cfg)
    trainer = None
    try:
        trainer = _stage_timed_trainer(cfg)
        if warmup_steps:
            trainer.fit(stop_after=warmup_steps)
        samples_before, t0 = trainer.samples_done, time.perf_counter()
        history = trainer.fit(stop_after=measure_steps)
        fit_s = time.perf_counter() - t0
        samples = trainer.samples_done - samples_before
        measured = history[warmup_steps:]
        busy = trainer.rollout_busy[warmup_steps:]
        devices = {"learner": [r.get("device") for r in trainer.roles.learner.rank_info]}
    finally:
        if trainer is not None:
            trainer.shutdown()
        if owns_ray:
            ray.shutdown()
    stages = [step_stages(h, b) for h, b in zip(measured, busy)]
    return {
        "samples_per_s": samples / fit_s,
        "step_s": fit_s / len(measured),
        "stages_s": {k: float(np.mean([s[k] for s in stages])) for k in STAGE_KEYS},
        "overhead_fraction": overhead_fraction(fit_s, stages),
        "reward_total": [float(h["reward/total"]) for h in history],
        "devices": devices,
    }


def bench_config(cfg: PrismConfig, opts: ThroughputOptions) -> PrismConfig:
    """The run config: warm-up + measured steps, sync mode as given, no checkpoints or validation in between."""
    out = copy.deepcopy(cfg)
    out.grpo.steps = opts.warmup_steps + opts.measure_steps
    out.train.checkpoint_every = 0
    out.train.val_every = 0
    out.train.resume = "none"
    out.tracking.progress = False
    return out


def baseline_threads(cfg: PrismConfig, opts: ThroughputOptions) -> int:
    """Threads the single-process loop gets (see ThroughputOptions.sequential_threads)."""
    return int(opts.sequential_threads if opts.sequential_threads > 0 else max(1, cfg.rollout.torch_threads))


def run(cfg: PrismConfig, opts: ThroughputOptions | None = None) -> dict[str, Any]:
    """Pipeline vs sequential samples/s, the ratio, per-stage seconds and the overhead fraction."""
    from benchmarks.sequential import run_sequential

    opts = opts or ThroughputOptions()
    if opts.measure_steps < 1:
        raise ValueError(f"bench.measure_steps must be >= 1, got {opts.measure_steps}")
    cfg = bench_config(cfg, opts)
    pipeline = measure_pipeline(cfg, opts.warmup_steps, opts.measure_steps)
    result: dict[str, Any] = {
        "pipeline_samples_per_s": pipeline["samples_per_s"],
        "overhead_fraction": pipeline["overhead_fraction"],
        "pipeline": pipeline,
        "setup": _setup(cfg, opts),
    }
    if opts.sequential:
        threads = baseline_threads(cfg, opts)
        seq = run_sequential(cfg, opts.warmup_steps, opts.measure_steps, threads)
        seq["reward_total"] = [h["reward/total"] for h in seq.pop("history")]
        result["sequential_samples_per_s"] = seq["samples_per_s"]
        result["pipeline_over_sequential"] = pipeline["samples_per_s"] / seq["samples_per_s"]
        result["sequential"] = seq
    else:
        result["sequential_samples_per_s"] = None
        result["pipeline_over_sequential"] = None
    return result


def _setup(cfg: PrismConfig, opts: ThroughputOptions) -> dict[str, Any]:
    return {
        "warmup_steps": opts.warmup_steps, "measure_steps": opts.measure_steps,
        "prompts_per_step": cfg.grpo.prompts_per_step, "group_size": cfg.grpo.group_size,
        "schedule": cfg.sampler.schedule, "num_steps": cfg.sampler.num_steps, "mode": cfg.train.mode,
        "rollout_workers": cfg.rollout.num_workers, "learner_ranks": cfg.learner.num_ranks,
        "replicas": {t: getattr(cfg.pools, t).replicas for t in TEACHERS},
        "ray_num_cpus": cfg.ray.num_cpus, "cpu_cores": os.cpu_count(),
    }


def markdown(result: dict[str, Any]) -> str:
    """Headline figures and the per-stage seconds of both loops."""
    seq = result.get("sequential") or {}
    ratio = result.get("pipeline_over_sequential")
    lines = [
        "| loop | samples/s | s/step |",
        "|---|---:|---:|",
        f"| Ray pipeline | {result['pipeline_samples_per_s']:.2f} | {result['pipeline']['step_s']:.2f} |",
    ]
    if seq:
        lines.append(f"| sequential (1 process, {seq['torch_threads']} threads) | {seq['samples_per_s']:.2f} | "
                     f"{seq['step_s']:.2f} |")
    lines += ["", f"pipeline / sequential: {ratio:.2f}x" if ratio else "pipeline / sequential: not measured",
              f"orchestration overhead: {result['overhead_fraction']:.1%} of pipeline wall time", "",
              "| stage (s/step) | pipeline | sequential |", "|---|---:|---:|"]
    seq_stages = seq.get("stages_s", {})
    for k in STAGE_KEYS:
        other = seq_stages.get(k)
        lines.append(f"| {k} | {result['pipeline']['stages_s'][k]:.3f} | {'' if other is None else f'{other:.3f}'} |")
    for k in ("advantages", "ema"):
        if k in seq_stages:
            lines.append(f"| {k} | | {seq_stages[k]:.3f} |")
    return "\n".join(lines)
