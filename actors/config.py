"""Typed configuration of the Ray roles: reward pools, rollout workers, learner group."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PoolConfig:
    """One reward pool: N replicas of one teacher, sized and placed on its own."""

    replicas: int = 1
    """Number of replica actors."""
    num_cpus: float = 0.25
    """CPUs reserved per replica (fractions allowed)."""
    num_gpus: float = 0.0
    """GPUs reserved per replica (fractions allowed)."""
    max_batch: int = 8
    """Most samples a replica grades in one call."""
    max_wait_s: float = 0.05
    """Longest a partial batch waits for more samples before it is sent."""
    call_timeout_s: float = 120.0
    """A replica call slower than this counts as failed: the replica is restarted, the batch retried."""
    max_retries: int = 3
    """Retries of one batch before the pool gives up and raises."""
    max_queue: int = 1024
    """Backpressure: submitting more pending samples than this blocks the caller."""
    start_timeout_s: float = 300.0
    """A replica not started (teacher built) within this many seconds fails the pool (e.g. no free resources)."""
    torch_threads: int = 1
    """torch intra-op threads inside each replica."""
    node_resource: str = ""
    """Name of a custom Ray resource marking the nodes this pool's replicas prefer (soft node affinity,
    see actors/placement.py); a replica whose node is gone is restarted on any live node. Empty: Ray places them."""


@dataclass
class PoolsConfig:
    """Pool sizing per teacher."""

    semantic: PoolConfig = field(default_factory=PoolConfig)
    """Pool of the semantic teacher."""
    timing: PoolConfig = field(default_factory=PoolConfig)
    """Pool of the timing teacher."""
    aesthetic: PoolConfig = field(default_factory=PoolConfig)
    """Pool of the aesthetic teacher."""
    spatial: PoolConfig = field(default_factory=PoolConfig)
    """Pool of the spatial teacher."""


@dataclass
class RolloutConfig:
    """Rollout workers: each holds a policy copy at a known weight version."""

    num_workers: int = 2
    """Number of rollout actors."""
    num_cpus: float = 0.5
    """CPUs per rollout actor."""
    num_gpus: float = 0.0
    """GPUs per rollout actor."""
    torch_threads: int = 1
    """torch intra-op threads inside each rollout actor."""
    dtype: str = "fp32"
    """Precision of the policy's network while sampling (rollouts and validation): `fp32`, `bf16`, or
    `auto` (bf16 on a GPU that supports it or a CPU with AVX-512 BF16 / AMX, fp32 elsewhere;
    policies/precision.py). Latents, sampler steps, the decode and DiffusionNFT's v_old (the forward
    draws) stay fp32. Fast-GRPO needs fp32: its learner re-scores the rollout's SDE log-probs, and bf16
    moves them by more than the clip range (`BF16_RATIO_TOLERANCE`), so bf16 requires
    `train.algorithm=nft`. Demo policy on an AVX-512 BF16 CPU: a guided forward 2.0x faster, velocity
    off fp32 by 1.8% (relative norm)."""
    node_resource: str = ""
    """Name of a custom Ray resource marking the nodes rollout workers prefer (soft node affinity, see
    actors/placement.py); a worker whose node is gone is replaced on any live node. Empty: Ray places them."""


BF16_RATIO_TOLERANCE = 1e-2
"""Largest |exp(logp_bf16 - logp_fp32) - 1| of a transition re-scored by a `learner.dtype=bf16` learner
against the fp32 rollout's log-prob at the same weights (tests/test_bf16_parity.py checks it). Measured
(issue 18, CPU): demo policy (width 192, depth 4, 128 x 100 latent, pretrained-demo weights) max
|d logp| 6.6e-3, mean 2.5e-3 per transition; tiny test policy max 7.3e-3, mean 2.9e-3. The error is
mostly the log-prob computed in bf16 (latents, sigmas and the Gaussian density are cast); the bf16
velocity alone, with the density in fp32, gives 1.8e-3 (demo) and 3.5e-4 (tiny)."""


@dataclass
class LearnerConfig:
    """The DeepSpeed learner group."""

    num_ranks: int = 2
    """Data-parallel ranks (each a Ray actor in one placement group)."""
    zero_stage: int = 2
    """DeepSpeed ZeRO stage: 1, 2 or 3."""
    backend: str = "auto"
    """Collective backend: `gloo` (CPU), `nccl` (GPU) or `auto` (nccl when GPUs are assigned)."""
    dtype: str = "fp32"
    """Training precision: `fp32` or `bf16`. bf16 log-probs agree with the fp32 rollout's within
    `BF16_RATIO_TOLERANCE` (ratio error up to 6.6e-3 on the demo policy), which is LARGER than the PPO
    clip range of every preset (`grpo.clip_range` 1e-3 demo, 1e-4 cluster/prismaudio): a bf16 learner
    clips on numerics alone (demo policy on-policy: 59% of rows beyond 1e-3, 98% beyond 1e-4), so the
    clip range must exceed about 1e-2 for bf16 to be usable; otherwise train in fp32."""
    num_cpus: float = 0.5
    """CPUs per learner rank."""
    num_gpus: float = 0.0
    """GPUs per learner rank."""
    torch_threads: int = 1
    """torch intra-op threads inside each rank."""
    placement_strategy: str = "PACK"
    """Placement group strategy for the ranks: PACK, SPREAD, STRICT_PACK or STRICT_SPREAD."""
    zero3_param_persistence_threshold: int = 100000
    """ZeRO-3: parameters with fewer elements stay whole on every rank instead of being sharded
    (DeepSpeed's stage3_param_persistence_threshold; 0 shards every parameter)."""
    setup_timeout_s: float = 600.0
    """Longest the group waits for its ranks to start, join the process group and build the engine."""
    experience_timeout_s: float = 300.0
    """Longest a rank waits for its share of a step's experience; past it (or at once when Ray reports
    the objects lost, e.g. with the node that held them) every rank gives the step up together and the
    controller produces the step again (actors/lost_objects.py)."""
