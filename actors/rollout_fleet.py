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
        return RolloutWorker.options(num_cpus=self.cfg.num_cpus, num_gpus=self.cfg.num_gpus).remote(
            self.policy_cfg, self.sampler_cfg, index, self.cfg.torch_threads, self.weights_ref, self.version)

    def set_weights(self, version: int, weights_ref: Any) -> None:
        """Queue a weight update on every worker (applied after the work already queued on it)."""
        self.version, self.weights_ref = version, weights_ref
        for w in self.workers:
            w.set_weights.remote(version, weights_ref)

    def submit(self, requests: Sequence[GroupRequest]) -> list[tuple[int, Any]]:
        """Dispatch requests round-robin; returns (worker index, ObjectRef of GroupRollout) per request."""
        out = []
        for i, req in enumerate(requests):
            wi = i % len(self.workers)
            out.append((wi, self._call(wi, req)))
        return out

    def _call(self, wi: int, req: GroupRequest):
        return self.workers[wi].rollout.remote(req.clip_ref, req.seed, req.sde_steps, req.group_size, req.cot)

    def gather(self, requests: Sequence[GroupRequest], pending: list[tuple[int, Any]]) -> list[GroupRollout]:
        """Results in request order, replacing dead workers and resampling their groups."""
        results: list[GroupRollout | None] = [None] * len(requests)
        todo = list(enumerate(pending))
        while todo:
            retry = []
            for i, (wi, ref) in todo:
                try:
                    results[i] = ray.get(ref)
                except RayActorError as e:
                    retry.append((i, wi, e))
            todo = []
            for i, wi, err in retry:
                self._replace(wi, err)
                todo.append((i, (wi, self._call(wi, requests[i]))))
        return results  # type: ignore[return-value]

    def run(self, requests: Sequence[GroupRequest]) -> list[GroupRollout]:
        """submit + gather."""
        return self.gather(requests, self.submit(requests))

    def _replace(self, wi: int, err: Exception) -> None:
        if self.workers[wi] is not None:
            try:
                ray.get(self.workers[wi].get_version.remote(), timeout=0.5)
                return  # alive again (a resubmission raced the failure): keep it
            except Exception:
                pass
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
