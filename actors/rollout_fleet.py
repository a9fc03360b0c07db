"""The set of rollout workers: versioned weight broadcast, group dispatch, and replacement of dead workers.

A worker that dies mid-step is replaced by a new actor (same index, latest weights) and its groups
are sampled again with the same seeds, so the step completes with nothing lost and the same result.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import ray
from ray.exceptions import RayActorError

from actors.config import RolloutConfig
from actors.placement import placement_options
from actors.rollout_worker import GroupRollout, RolloutWorker
from policies.config import PolicyConfig, SamplerConfig

log = logging.getLogger(__name__)


@dataclass
class GroupRequest:
    """One group to sample."""

    clip_ref: Any
    """ObjectRef of the clip."""
    seed: int
    """Noise seed of the group."""
    sde_steps: list[int]
    """SDE step indices (empty = ODE only)."""
    group_size: int
    """Members."""
    cot: dict[str, str] | None = None
    """Plan to use instead of the clip's own."""
    forward_draws: int = 0
    """DiffusionNFT: shared forward-process draws of the finished members to record (0 = none)."""
    draw_times: tuple[float, float] = (0.0, 1.0)
    """DiffusionNFT: [lo, hi] the draws' times are stratified over (`nft.time_range`)."""


@dataclass
class PendingGroup:
    """A group in flight: the worker it went to and the refs of its results."""

    worker_index: int
    """Index of the worker."""
    worker: Any
    """The actor handle the call went to (to tell a stale failure from a fresh one)."""
    meta_ref: Any
    """Ref of the small metadata dict."""
    payload_ref: Any
    """Ref of the records payload for the learner."""
    wave_refs: list[Any]
    """Refs of the G waveforms."""


class RolloutFleet:
    """N rollout workers with one weight version at a time."""

    def __init__(self, cfg: RolloutConfig, policy_cfg: PolicyConfig, sampler_cfg: SamplerConfig,
                 initial_weights: Any = None, version: int = 0, max_replacements: int = 8):
        self.cfg, self.policy_cfg, self.sampler_cfg = cfg, policy_cfg, sampler_cfg
        self.weights_ref, self.version = initial_weights, version
        self.replacements = 0
        self.max_replacements = max_replacements
        self.workers = [self._spawn(i) for i in range(cfg.num_workers)]

    def _spawn(self, index: int):
        return RolloutWorker.options(num_cpus=self.cfg.num_cpus, num_gpus=self.cfg.num_gpus,
                                     **placement_options(self.cfg.node_resource, index, "rollout worker")).remote(
            self.policy_cfg, self.sampler_cfg, index, self.cfg.torch_threads, self.weights_ref, self.version,
            self.cfg.dtype)

    def set_weights(self, version: int, weights_ref: Any) -> None:
        """Queue a weight update on every worker (applied after the work already queued on it)."""
        self.version, self.weights_ref = version, weights_ref
        for w in self.workers:
            w.set_weights.remote(version, weights_ref)

    def sampling_precisions(self) -> list[str]:
        """The distinct precisions the workers sample in (`rollout.dtype` resolved on each worker's device;
        `auto` can differ between nodes), sorted."""
        return sorted(set(ray.get([w.sampling_precision.remote() for w in self.workers])))

    def submit(self, requests: Sequence[GroupRequest]) -> list["PendingGroup"]:
        """Dispatch requests round-robin; nothing blocks."""
        return [self._call(i % len(self.workers), req) for i, req in enumerate(requests)]

    def _call(self, wi: int, req: GroupRequest) -> "PendingGroup":
        worker = self.workers[wi]
        refs = worker.rollout.options(num_returns=2 + req.group_size).remote(
            req.clip_ref, req.seed, req.sde_steps, req.group_size, req.cot, req.forward_draws,
            tuple(req.draw_times))
        return PendingGroup(wi, worker, refs[0], refs[1], list(refs[2:]))

    def gather(self, requests: Sequence[GroupRequest], pending: list["PendingGroup"]) -> list[GroupRollout]:
        """Results in request order, replacing dead workers and resampling their groups."""
        results: list[GroupRollout | None] = [None] * len(requests)
        todo = list(enumerate(pending))
        while todo:
            retry = []
            for i, p in todo:
                try:
                    meta = ray.get(p.meta_ref)
                except RayActorError as e:
                    retry.append((i, p, e))
                    continue
                results[i] = GroupRollout(meta["clip_id"], meta["version"], p.wave_refs, p.payload_ref,
                                          meta["sample_rate"], meta["seconds"], meta["worker"])
            todo = []
            for i, p, err in retry:
                self._replace(p.worker_index, p.worker, err)
                todo.append((i, self._call(p.worker_index, requests[i])))
        return results  # type: ignore[return-value]

    def run(self, requests: Sequence[GroupRequest]) -> list[GroupRollout]:
        """submit + gather."""
        return self.gather(requests, self.submit(requests))

    def _replace(self, wi: int, failed: Any, err: Exception) -> None:
        if self.workers[wi] is not failed:
            return  # already replaced after an earlier failure of the same actor
        self.replacements += 1
        if self.replacements > self.max_replacements:
            raise RuntimeError(f"rollout worker {wi} keeps dying ({self.replacements} replacements): {err}")
        log.warning("rollout worker %d died (%s); starting a replacement at weight version %d",
                    wi, type(err).__name__, self.version)
        self.workers[wi] = self._spawn(wi)

    def shutdown(self) -> None:
        """Kill every worker."""
        for w in self.workers:
            ray.kill(w)
