"""GPU benchmark for a machine with one GPU (finishes within about 8 minutes): the cluster-size policy
under the real pipeline, with the learner on NCCL in bf16 (ZeRO-2, one rank) and a rollout worker
sharing the GPU.

    prismrl bench gpu [cluster] [key=value ...] [bench.steps=3]
    python -m benchmarks.gpu

Reports rollout seconds per clip (one group of G samples, inside the worker), learner seconds per
step, weight-sync seconds, samples/s and the peak GPU memory (torch.cuda.max_memory_allocated) in
every learner rank and rollout worker. Data: a small SynthScenes set written under the run dir, with
clips as long as the policy's audio. The policy starts from random weights (policy.checkpoint=null)
unless one is given: the timings do not depend on the weights.

With no GPU (torch.cuda.is_available() false, or Ray reports no GPU resource) it stops at once with
`GpuUnavailable`; `prismrl bench gpu` then exits with code 2.
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.types import TEACHERS
from orchestrator.cli.bench import GpuUnavailable
from orchestrator.config.schema import PrismConfig

GIB = float(1 << 30)
OBJECT_STORE_MB = 8192
"""Object store of a local Ray at least this big: cluster-size weights and EMA refs are ~0.5 GB each."""


@dataclass
class GpuOptions:
    """Options of `prismrl bench gpu` (set as bench.<field>=value)."""

    steps: int = 3
    """Training steps; the first is warm-up (CUDA kernels, NCCL, DeepSpeed) and not averaged."""
    clips: int = 24
    """SynthScenes clips generated for the run (about 10% go to the val split)."""
    gpu_fraction_learner: float = 0.5
    """Share of the GPU reserved for the learner rank (Ray num_gpus); the rollout worker gets the rest."""


def require_gpu(ray_resources: dict[str, float] | None = None) -> None:
    """Raise GpuUnavailable unless torch sees a CUDA device and (when given) Ray has a GPU resource."""
    import torch

    if not torch.cuda.is_available():
        raise GpuUnavailable("prismrl bench gpu: no GPU: torch.cuda.is_available() is False on this machine "
                             "(run it on a node with one CUDA GPU and a CUDA build of torch)")
    if ray_resources is not None and ray_resources.get("GPU", 0.0) < 1.0:
        raise GpuUnavailable(f"prismrl bench gpu: Ray reports no GPU resource (cluster resources: "
                             f"GPU={ray_resources.get('GPU', 0.0)}); start Ray with --num-gpus=1 or on a GPU node")


def gpu_config(cfg: PrismConfig, opts: GpuOptions, manifest: str) -> PrismConfig:
    """One-GPU layout of the config: 1 NCCL bf16 ZeRO-2 learner rank, 1 rollout worker, CPU reward pools."""
    out = copy.deepcopy(cfg)
    out.data.manifest = manifest
    out.grpo.steps = opts.steps
    out.train.mode, out.train.checkpoint_every, out.train.val_every = "sync", 0, 0
    out.train.resume, out.train.checkpoint_dir = "none", None
    out.learner.num_ranks, out.learner.zero_stage, out.learner.backend, out.learner.dtype = 1, 2, "nccl", "bf16"
    out.learner.num_gpus = opts.gpu_fraction_learner
    out.rollout.num_workers, out.rollout.num_gpus = 1, 1.0 - opts.gpu_fraction_learner
    for t in TEACHERS:
        pool = getattr(out.pools, t)
        pool.num_gpus, pool.replicas, pool.num_cpus = 0.0, 1, 1.0
    out.tracking.progress = False
    return out


def synth_data(cfg: PrismConfig, opts: GpuOptions) -> str:
    """A SynthScenes set under <run_dir>/data with clips of the policy's duration; returns the manifest."""
    from orchestrator.data.synth import write_synthscenes

    synth = copy.deepcopy(cfg.data.synth)
    synth.n = opts.clips
    synth.min_duration_s = synth.max_duration_s = cfg.policy.duration_s
    synth.sample_rate = cfg.policy.sample_rate
    return write_synthscenes(os.path.join(cfg.run_dir, "data"), synth, progress=False)


def _peak_cuda_bytes(actor_self: Any) -> int:
    """Runs inside an actor (via __ray_call__): the process's peak allocated CUDA memory."""
    import torch

    return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else 0


def run(cfg: PrismConfig, opts: GpuOptions | None = None) -> dict[str, Any]:
    """Train `opts.steps` steps on one GPU and report per-stage seconds and peak GPU memory."""
    import ray
    import torch

    from benchmarks.throughput import _stage_timed_trainer
    from orchestrator.runtime.ray_setup import init_ray

    opts = opts or GpuOptions()
    if opts.steps < 2:
        raise ValueError(f"bench.steps must be >= 2 (one warm-up step and at least one measured), got {opts.steps}")
    require_gpu()
    os.makedirs(cfg.run_dir, exist_ok=True)
    cfg = copy.deepcopy(cfg)
    cfg.ray.object_store_mb = max(cfg.ray.object_store_mb, OBJECT_STORE_MB)
    owns_ray = init_ray(cfg)
    trainer = None
    try:
        require_gpu(ray.cluster_resources())
        t0 = time.perf_counter()
        run_cfg = gpu_config(cfg, opts, synth_data(cfg, opts))
        data_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        trainer = _stage_timed_trainer(run_cfg)
        setup_s = time.perf_counter() - t0
        history = trainer.fit()
        measured, group_s = history[1:], [s for step in trainer.group_seconds[1:] for s in step]
        learner_mem = ray.get([a.__ray_call__.remote(_peak_cuda_bytes) for a in trainer.roles.learner.actors])
        rollout_mem = ray.get([w.__ray_call__.remote(_peak_cuda_bytes) for w in trainer.roles.fleet.workers])
        rank_info = trainer.roles.learner.rank_info
    finally:
        if trainer is not None:
            trainer.shutdown()
        if owns_ray:
            ray.shutdown()
    prompts = run_cfg.grpo.prompts_per_step
    step_s = float(np.mean([h["time/step"] for h in measured]))
    return {
        "rollout_s_per_clip": float(np.mean(group_s)),
        "learner_s_per_step": float(np.mean([h["time/learn"] for h in measured])),
        "sync_s": float(np.mean([h["time/sync"] for h in measured])),
        "step_s": step_s,
        "samples_per_s": prompts * run_cfg.grpo.group_size / step_s,
        "reward_phase_s": float(np.mean([max(h[f"time/reward.{t}"] for t in TEACHERS) for h in measured])),
        "gpu_memory_gib": {"learner_ranks": [b / GIB for b in learner_mem], "rollout_workers": [b / GIB for b in rollout_mem]},
        "device": torch.cuda.get_device_name(0),
        "learner": [{k: r.get(k) for k in ("backend", "device", "num_params", "timings")} for r in rank_info],
        "setup_s": {"data": data_s, "roles": setup_s},
        "setup": {"steps": opts.steps, "measured_steps": len(measured), "prompts_per_step": prompts,
                  "group_size": run_cfg.grpo.group_size, "num_steps": run_cfg.sampler.num_steps,
                  "duration_s": run_cfg.policy.duration_s, "width": run_cfg.policy.width,
                  "depth": run_cfg.policy.depth, "dtype": run_cfg.learner.dtype, "zero_stage": run_cfg.learner.zero_stage},
    }


def markdown(result: dict[str, Any]) -> str:
    """The headline figures as a table."""
    mem = result["gpu_memory_gib"]
    rows = [("device", result["device"]),
            ("rollout s per clip (G samples)", f"{result['rollout_s_per_clip']:.3f}"),
            ("learner s per step", f"{result['learner_s_per_step']:.3f}"),
            ("weight sync s", f"{result['sync_s']:.3f}"),
            ("reward phase s", f"{result['reward_phase_s']:.3f}"),
            ("step s", f"{result['step_s']:.3f}"),
            ("samples/s", f"{result['samples_per_s']:.2f}"),
            ("peak GPU memory, learner ranks (GiB)", ", ".join(f"{m:.2f}" for m in mem["learner_ranks"])),
            ("peak GPU memory, rollout workers (GiB)", ", ".join(f"{m:.2f}" for m in mem["rollout_workers"]))]
    return "\n".join(["| figure | value |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)])


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.gpu [CONFIG] [key=value ...]`: same as `prismrl bench gpu`."""
    from orchestrator.cli.bench import main as bench_main

    import sys

    return bench_main(["gpu", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    from orchestrator.runtime.ray_setup import loopback_for_local_ray

    loopback_for_local_ray()
    raise SystemExit(main())
