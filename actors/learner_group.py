"""The learner group: N DeepSpeed ZeRO ranks (Ray actors) in one placement group, driven as one.

The controller hands each rank a list of refs to `TransitionBatch`es; a rank `ray.get`s only its
own, so experience goes object store -> rank and never through the controller. Weights come back
as an object ref put by rank 0 (the controller owns it, so it outlives the group).

Uneven shards: `actors.experience.split(batch, num_ranks)` gives parts within one row of each
other; whatever arrives, every rank takes the same number of micro steps (see
`LearnerRank.train_step`).
"""
from __future__ import annotations

from typing import Callable, Optional, Union

import numpy as np
import ray
from ray.exceptions import RayActorError
from ray.util.placement_group import get_current_placement_group, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from torch import nn

from actors.config import LearnerConfig
from actors.learner_rank import LearnerRank, LossFn, resolve_backend
from actors.lost_objects import InputsLost
from actors.shm_buffers import remove_shm_buffers

ZERO_STAGES = (1, 2, 3)
DTYPES = ("fp32", "bf16")
STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def enclosing_placement_group():
    """The placement group this process runs in when it captures its children (a Ray Tune trial
    sized for the whole run), else None. Ray has no nested groups: ranks then take that group's bundles."""
    if not ray.get_runtime_context().should_capture_child_tasks_in_placement_group:
        return None
    return get_current_placement_group()


def check_learner_config(cfg: LearnerConfig, grpo=None) -> None:
    """Raise ValueError naming the `learner.*` (or `grpo.*`) key that cannot work."""
    if grpo is not None:
        for key in ("minibatch_size", "inner_epochs"):
            if getattr(grpo, key) < 1:
                raise ValueError(f"grpo.{key} must be >= 1, got {getattr(grpo, key)}")
    if cfg.num_ranks < 1:
        raise ValueError(f"learner.num_ranks must be >= 1, got {cfg.num_ranks}")
    if cfg.zero_stage not in ZERO_STAGES:
        raise ValueError(f"learner.zero_stage must be one of {ZERO_STAGES}, got {cfg.zero_stage}")
    if cfg.dtype not in DTYPES:
        raise ValueError(f"learner.dtype must be one of {DTYPES}, got {cfg.dtype!r}")
    if cfg.dtype == "bf16" and cfg.num_gpus <= 0:
        raise ValueError("learner.dtype=bf16 needs GPUs (learner.num_gpus > 0); the CPU learner trains in fp32")
    if cfg.placement_strategy not in STRATEGIES:
        raise ValueError(f"learner.placement_strategy must be one of {STRATEGIES}, got {cfg.placement_strategy!r}")
    resolve_backend(cfg.backend, cfg.num_gpus > 0)


class LearnerRankLost(RuntimeError):
    """A learner rank's process died (killed, out of memory, its node gone): the group cannot go on
    and must be rebuilt. `rank` names it."""

    def __init__(self, rank: int, message: str):
        super().__init__(message)
        self.rank = rank


LOST_GRACE_S = 10.0
"""After a rank fails, how long to wait for the others' results to tell a dead rank (the cause)
from a surviving rank whose collective broke because its peer died."""


def _lost_rank(refs: list, index: dict, failed, error: Exception) -> Optional[tuple[int, str]]:
    """(rank, cause) of a rank whose actor died, if the failure of `failed` comes from one."""
    if isinstance(error, RayActorError):
        return index[failed], f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    others = [r for r in refs if r != failed]
    done, _ = ray.wait(others, num_returns=len(others), timeout=LOST_GRACE_S) if others else ([], [])
    for ref in done:
        try:
            ray.get(ref)
        except RayActorError as e:
            return index[ref], f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        except Exception:
            continue
    return None


def _lost_inputs(refs: list, first: InputsLost) -> str:
    """The message of the rank that lost its experience (the others only say a peer did), once every
    rank has given the step up."""
    done, _ = ray.wait(refs, num_returns=len(refs), timeout=LOST_GRACE_S)
    messages = [str(first)]
    for ref in done:
        try:
            ray.get(ref)
        except Exception as e:
            if isinstance(getattr(e, "cause", None), InputsLost):
                messages.append(str(e.cause))
    own = [m for m in messages if "another rank lost" not in m]
    return (own or messages)[0]


class LearnerGroup:
    """Handle of the N learner ranks.

    grpo is the run's GRPOConfig; the ranks read lr, weight_decay, max_grad_norm, minibatch_size,
    inner_epochs and ema_decay from it.

    model_factory builds the (randomly initialised) model on each rank under the same seed;
    initial_state (a state_dict or an ObjectRef of one) then overwrites it. loss_fn(model,
    ref_model, batch) -> (loss, metrics) runs inside the DeepSpeed engine's forward, e.g.
    functools.partial(orchestrator.grpo.loss.grpo_loss, grpo_cfg=..., guidance_scale=..., noise_level=...).
    Both must be picklable (module-level functions or classes).
    """

    def __init__(
        self,
        cfg: LearnerConfig,
        grpo,
        model_factory: Callable[[], nn.Module],
        loss_fn: LossFn,
        initial_state: Union["ray.ObjectRef", dict, None] = None,
        seed: int = 0,
    ):
        check_learner_config(cfg, grpo)
        self.cfg, self.grpo, self.seed = cfg, grpo, seed
        self.version = 0
        self.actors: list = []
        self.rendezvous: Optional[tuple[str, int]] = None
        """(master address, port) of the process group, once chosen."""
        bundles = [{"CPU": cfg.num_cpus, **({"GPU": cfg.num_gpus} if cfg.num_gpus > 0 else {})}] * cfg.num_ranks
        enclosing = enclosing_placement_group()
        self.owns_placement_group = enclosing is None
        self.placement_group = (enclosing if enclosing is not None
                                else placement_group(bundles, strategy=cfg.placement_strategy))
        try:
            ready, _ = ray.wait([self.placement_group.ready()], timeout=cfg.setup_timeout_s)
            if not ready:
                raise TimeoutError(
                    f"learner placement group of {cfg.num_ranks} x {bundles[0]} ({cfg.placement_strategy}) "
                    f"not placed within {cfg.setup_timeout_s:.0f} s: the cluster lacks those resources"
                )
            remote_cls = ray.remote(LearnerRank)
            self.actors = [
                remote_cls.options(
                    num_cpus=cfg.num_cpus,
                    num_gpus=cfg.num_gpus,
                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                        self.placement_group, placement_group_bundle_index=-1 if enclosing else i),
                ).remote(i, cfg.num_ranks, cfg, grpo, model_factory, loss_fn, seed)
                for i in range(cfg.num_ranks)
            ]
            addresses = self._all([a.node_address.remote() for a in self.actors], "report its node address")
            port = self._all([self.actors[0].free_port.remote()], "pick a free port")[0]
            self.rendezvous = (addresses[0], int(port))
            local_rank = [addresses[:i].count(addresses[i]) for i in range(cfg.num_ranks)]
            local_size = [addresses.count(a) for a in addresses]
            if isinstance(initial_state, dict):
                initial_state = ray.put(initial_state)
            self.rank_info = self._all(
                [
                    a.setup.remote(addresses[0], port, local_rank[i], local_size[i], initial_state)
                    for i, a in enumerate(self.actors)
                ],
                "set up DeepSpeed",
                timeout=cfg.setup_timeout_s,
            )
        except BaseException:
            self._kill()
            raise

    @property
    def num_ranks(self) -> int:
        """Number of data-parallel ranks (the length `train_step` expects of its shards)."""
        return self.cfg.num_ranks

    # ----- helpers ---------------------------------------------------------------------------
    def _all(self, refs: list, what: str, timeout: Optional[float] = None) -> list:
        """Results of one call per rank; the first failure raises at once (naming the rank) rather
        than leaving the other ranks' collectives to hang."""
        index = {r: i for i, r in enumerate(refs)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=timeout)
            if not done:
                raise TimeoutError(f"learner ranks {[index[r] for r in pending]} did not {what} within {timeout} s")
            try:
                ray.get(done[0])
            except Exception as e:
                if isinstance(getattr(e, "cause", None), InputsLost):  # every rank gave the step up together
                    raise InputsLost(_lost_inputs(refs, e.cause)) from e
                lost = _lost_rank(refs, index, done[0], e)
                if lost is not None:
                    rank, cause = lost
                    raise LearnerRankLost(rank, f"learner rank {rank} was lost during '{what}': {cause}") from e
                raise RuntimeError(f"learner rank {index[done[0]]} failed to {what}: {e}") from e
        return ray.get(refs)

    # ----- training ----------------------------------------------------------------------------
    def train_step(self, shards: list[list["ray.ObjectRef"]], step: int) -> dict[str, float]:
        """One learner step: shards[i] are the TransitionBatch refs of rank i. Returns the metrics
        averaged over ranks (plus `version`, the weight version after this step). Raises InputsLost,
        with the group unchanged, when a rank's experience was lost (actors/lost_objects.py)."""
        if len(shards) != len(self.actors):
            raise ValueError(f"train_step {step}: got {len(shards)} shards for {len(self.actors)} learner ranks")
        for i, refs in enumerate(shards):
            if not refs:
                raise ValueError(f"train_step {step}: learner rank {i} was given no experience")
        per_rank = self._all([a.train_step.remote(list(s), step) for a, s in zip(self.actors, shards)], f"train step {step}")
        self.version += 1
        metrics = {k: float(np.mean([m[k] for m in per_rank])) for k in per_rank[0]}
        metrics["rows"] = float(sum(m["rows"] for m in per_rank))
        metrics["version"] = float(self.version)
        return metrics

    def get_weights(self) -> tuple[int, "ray.ObjectRef"]:
        """(version, ref of the full fp32 CPU state_dict). Every rank helps assemble it (ZeRO
        partitions); the ref is rank 0's return value, owned by the caller."""
        refs = [a.publish_weights.remote() for a in self.actors]
        self._all(refs[1:], "assemble the weights")
        ray.wait([refs[0]], fetch_local=False)
        return self.version, refs[0]

    def get_ema_weights(self) -> tuple[int, "ray.ObjectRef"]:
        """(version, ref of rank 0's EMA state_dict, fp32 CPU)."""
        ref = self.actors[0].ema_state_dict.remote()
        ray.wait([ref], fetch_local=False)
        return self.version, ref

    def rank_views(self) -> list[dict]:
        """Each rank's local weights (ZeRO-3: its own partitions) and optimizer-state size."""
        return self._all([a.local_view.remote() for a in self.actors], "report its local view")

    # ----- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self, local_dir: str, client_state: Optional[dict] = None) -> None:
        """Write a full learner checkpoint into local_dir (a directory every rank can reach: one
        node, or a shared filesystem). It is complete when this returns; write into a temporary
        directory and `os.replace(tmp, final)` it so readers never see a half-written one."""
        self._all([a.save_checkpoint.remote(local_dir, client_state or {}) for a in self.actors], "save a checkpoint")

    def load_checkpoint(self, local_dir: str) -> dict:
        """Restore weights, optimizer, ZeRO partitions, reference, EMA, RNG states and version from
        local_dir (same num_ranks and zero_stage). Returns the client_state saved with it."""
        states = self._all([a.load_checkpoint.remote(local_dir) for a in self.actors], "load a checkpoint")
        self.version = int(ray.get(self.actors[0].local_view.remote())["version"])
        return states[0]

    # ----- teardown ---------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Barrier and leave the process group on every rank, then kill the actors and free the
        placement group. Safe to call twice."""
        if self.actors:
            try:
                self._all([a.close.remote() for a in self.actors], "leave the process group", timeout=60)
            finally:
                self._kill()

    def abandon(self) -> None:
        """After a rank was lost: kill every rank without the collective goodbye (the survivors may be
        stuck in a collective with the dead one), sweep their /dev/shm buffers, free the placement group."""
        self._kill()

    def _kill(self) -> None:
        for a in self.actors:
            ray.kill(a)
        self.actors = []
        if self.rendezvous is not None:  # buffers a killed rank left on this node
            remove_shm_buffers(*self.rendezvous)
            self.rendezvous = None
        if self.placement_group is not None and self.owns_placement_group:
            remove_placement_group(self.placement_group)
            self.placement_group = None
