"""Building the Ray roles of a run from its config: learner group, rollout fleet, reward pools."""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from actors.learner_group import LearnerGroup
from actors.config import RolloutConfig
from actors.reward_pool import RewardPool
from actors.rollout_fleet import RolloutFleet
from common.types import TEACHERS
from orchestrator.config.schema import PrismConfig
from orchestrator.grpo.loss import grpo_loss
from orchestrator.nft.loss import nft_loss
from policies.forward_draws import check_time_range
from policies.trainable import build_trainable_policy
from rewards.base import build_teacher, check_options, import_plugins


@dataclass
class Roles:
    """Handles to every Ray role of a training run."""

    learner: LearnerGroup
    """DeepSpeed ranks."""
    fleet: RolloutFleet
    """Rollout workers."""
    pools: dict[str, RewardPool]
    """One reward pool per teacher."""
    backends: dict[str, str]
    """Backend name per teacher."""

    def shutdown(self) -> None:
        """Stop every role."""
        for pool in self.pools.values():
            pool.shutdown()
        self.fleet.shutdown()
        self.learner.shutdown()


def teacher_factories(cfg: PrismConfig) -> dict[str, Any]:
    """A picklable zero-argument builder per teacher (options are validated here, before any work)."""
    out = {}
    plugins = list(cfg.rewards.plugins)
    import_plugins(plugins)
    for t in TEACHERS:
        tc = getattr(cfg.rewards, t)
        check_options(t, tc.backend, tc.options)
        out[t] = functools.partial(build_teacher, t, tc.backend, dict(tc.options), plugins)
    return out


def build_pools(cfg: PrismConfig) -> tuple[dict[str, RewardPool], dict[str, str]]:
    """The four reward pools, each sized by `pools.<teacher>`."""
    factories = teacher_factories(cfg)
    pools = {t: RewardPool(t, getattr(cfg.pools, t), factories[t]) for t in TEACHERS}
    return pools, {t: getattr(cfg.rewards, t).backend for t in TEACHERS}


def build_learner(cfg: PrismConfig) -> LearnerGroup:
    """A new learner group (its own placement group and rendezvous) at the policy's initial weights."""
    if cfg.train.algorithm == "nft":
        check_time_range(cfg.nft.time_range)  # here, before any rollout, rather than on a rollout worker
        loss_fn = functools.partial(nft_loss, nft_cfg=cfg.nft)
    else:
        loss_fn = functools.partial(grpo_loss, grpo_cfg=cfg.grpo, guidance_scale=cfg.sampler.guidance_scale,
                                    noise_level=cfg.sampler.noise_level, noise_channels=cfg.sampler.noise_channels)
    # policy.trainable: frozen weights and LoRA adapters are set up by the factory on every rank
    return LearnerGroup(cfg.learner, cfg.grpo, functools.partial(build_trainable_policy, cfg.policy), loss_fn,
                        initial_state=None, seed=cfg.seed)


def rollout_config(cfg: PrismConfig) -> RolloutConfig:
    """`cfg.rollout` as the workers get it: Fast-GRPO samples in fp32 (`rollout.dtype=auto` becomes fp32;
    `bf16` is refused, since the learner's ratio against bf16 log-probs exceeds the clip range)."""
    if cfg.train.algorithm == "nft" or cfg.rollout.dtype == "fp32":
        return cfg.rollout
    if cfg.rollout.dtype == "bf16":
        raise ValueError("rollout.dtype=bf16 needs train.algorithm=nft: Fast-GRPO's learner re-scores the rollout's "
                         "log-probs, and bf16 moves them by more than grpo.clip_range (actors/config.py, "
                         "BF16_RATIO_TOLERANCE); use rollout.dtype=fp32 or auto")
    return dataclasses.replace(cfg.rollout, dtype="fp32")


def build_roles(cfg: PrismConfig) -> Roles:
    """Learner first (its rank 0 owns the initial weights), then rollout workers with those weights, then pools."""
    rollout_cfg = rollout_config(cfg)  # before any actor starts
    learner = build_learner(cfg)
    version, weights = learner.get_weights()
    fleet = RolloutFleet(rollout_cfg, cfg.policy, cfg.sampler, weights, version)
    pools, backends = build_pools(cfg)
    return Roles(learner, fleet, pools, backends)
