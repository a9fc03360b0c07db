"""Rollout workers: Ray actors that hold a policy copy at a known weight version and sample groups.

Waveforms and window records go into the object store from here (`ray.put`); the controller only
receives their refs and small metadata. An actor runs one method at a time, so a weight update
(`set_weights`) never interleaves with a rollout: no sample ever comes from a half-updated model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import ray
import torch

from common.types import Clip
from policies.config import PolicyConfig, SamplerConfig


@dataclass
class GroupRollout:
    """Small metadata of one sampled group; the tensors stay in the object store."""

    clip_id: str
    """The prompt clip."""
    version: int
    """Weight version that produced the group."""
    wave_refs: list[Any]
    """One ObjectRef per member: float32 stereo waveform [2, N]."""
    records_ref: Any
    """ObjectRef of the group's RolloutRecords plus condition inputs (for the learner)."""
    sample_rate: int
    """Sample rate of the waveforms."""
    seconds: float
    """Wall time of the rollout inside the worker."""
    worker: int = 0
    """Index of the worker that made it."""


@ray.remote(max_restarts=0)
class RolloutWorker:
    """One policy copy; samples groups for training and clips for validation."""

    def __init__(self, policy_cfg: PolicyConfig, sampler_cfg: SamplerConfig, index: int, torch_threads: int = 1,
                 initial_state: Any = None, version: int = 0, dtype: str = "fp32"):
        from policies.build import build_policy
        from policies.precision import resolve_sampling_dtype

        torch.set_num_threads(max(1, torch_threads))
        self.index = index
        self.sampler_cfg = sampler_cfg
        self.device = torch.device("cuda") if ray.get_gpu_ids() and torch.cuda.is_available() else torch.device("cpu")
        self.policy = build_policy(policy_cfg).to(self.device)  # on its GPU when Ray assigned one
        self.policy.eval()
        self.network_dtype = resolve_sampling_dtype(dtype, self.device)
        """The sampler's network precision (`rollout.dtype` resolved here, on this worker's device); None is fp32."""
        self.version = -1
        if initial_state is not None:
            self.set_weights(version, initial_state)
        else:
            self.version = version

    def set_weights(self, version: int, state: dict[str, torch.Tensor]) -> int:
        """Load a full state dict (Ray resolves the ref argument before this runs); returns the version."""
        self.policy.load_state_dict(state)
        self.version = int(version)
        return self.version

    def sampling_precision(self) -> str:
        """`bf16` or `fp32`: what `rollout.dtype` resolved to on this worker's device."""
        return "bf16" if self.network_dtype is torch.bfloat16 else "fp32"

    def get_version(self) -> int:
        """Weight version currently loaded."""
        return self.version

    def pid(self) -> int:
        """OS process id (for fault-injection tests)."""
        import os

        return os.getpid()

    def rollout(self, clip: Clip, seed: int, sde_steps: list[int], group_size: int,
                cot: dict[str, str] | None = None, forward_draws: int = 0,
                draw_times: tuple[float, float] = (0.0, 1.0)) -> tuple:
        """Sample one group. Called with `num_returns = 2 + group_size`: returns (metadata, records
        payload, waveform_0 ... waveform_{G-1}) as separate objects, so the controller fetches only the
        metadata and hands the other refs on. Return values are owned by the caller, so they outlive
        this worker should it die later in the step. With `forward_draws` > 0 (DiffusionNFT) the payload
        also holds that many shared (noise, time) draws of the finished members and this policy's
        velocity at each (`payload["draws"]`, policies/forward_draws.py; times stratified over
        `draw_times`), from the same generator."""
        from policies.forward_draws import sample_group

        start = time.perf_counter()
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            prepared = self.policy.prepare([clip], None if cot is None else [cot])
            result, draws = sample_group(self.policy, prepared, group_size, self.sampler_cfg, sde_steps, gen,
                                         forward_draws, draw_times, self.network_dtype)
            draws = None if draws is None else _on_cpu(draws)
        # DiffusionNFT trains on the draws alone: the SDE transitions stay out of the object store.
        records = None if draws is not None else _on_cpu(result.records)
        payload = {"records": records, "prepared": prepared, "clip_id": clip.clip_id,
                   "version": self.version, "draws": draws}
        meta = {"clip_id": clip.clip_id, "version": self.version, "sample_rate": self.policy.sample_rate,
                "seconds": time.perf_counter() - start, "worker": self.index}
        return (meta, payload, *result.waveforms)


def _on_cpu(records):
    """The records (or forward draws) with every tensor on the CPU (they travel through the object store to CPU tasks)."""
    import dataclasses

    return dataclasses.replace(records, **{f.name: getattr(records, f.name).cpu() for f in dataclasses.fields(records)
                                           if isinstance(getattr(records, f.name), torch.Tensor)})
