"""The single-process baseline of the throughput benchmark: the Trainer's sync-mode work, no Ray, no DeepSpeed.

Each step does what `orchestrator.training.trainer.Trainer` does in sync mode, in one process and in order:
the same prompts (`PromptSampler` on the run seed), windows (`window_for_step` on the run's
generator) and noise seeds (`group_seed`); `rollout_group` per prompt; every Teacher grading the
step's samples in-process; `combine_grades` and `group_advantages`; the window transitions
(`assemble_transitions`); then `grpo_loss` under a torch AdamW with the learner's gradient clipping
and micro-batching (the micro-batches every learner rank would take, their losses averaged as
data-parallel ranks average gradients), and the EMA update. So step 0 reproduces the pipeline's
step 0 rewards, and the time per step is the work itself with no orchestration around it.

Nothing here starts Ray: two pure helpers are imported from modules that also define Ray tasks.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch

from actors.ema import EMA
from actors.experience import TransitionBatch, concat, micro_batch_plan
from actors.experience_builder import assemble_transitions
from actors.learner_rank import shuffle_seed
from common.types import TEACHERS, Clip
from orchestrator.config.schema import PrismConfig
from orchestrator.data.reader import ClipReader
from orchestrator.data.sampler import PromptSampler
from orchestrator.grpo.advantages import group_advantages
from orchestrator.grpo.loss import grpo_loss
from orchestrator.training.reward_phase import weights_of
from orchestrator.training.trainer import group_seed
from policies.build import build_policy
from policies.rollout import rollout_group
from policies.schedules import window_for_step
from rewards.base import Teacher, backend_reward_range, build_teacher
from rewards.combine import combine_grades
from rewards.validate import check_grades

STAGES: tuple[str, ...] = ("rollout", *(f"reward.{t}" for t in TEACHERS), "advantages", "learn", "ema")
"""Timed stages of one sequential step, in the order they run."""


def load_train_clips(cfg: PrismConfig) -> dict[str, Clip]:
    """The train split, decoded once (as the Trainer does before its first step); bad clips per data.on_bad_clip."""
    reader = ClipReader(cfg.data)
    clips: dict[str, Clip] = {}
    for cid in reader.clip_ids("train"):
        try:
            clips[cid] = reader.load(cid)
        except ValueError:
            if cfg.data.on_bad_clip != "skip":
                raise
    if not clips:
        raise ValueError(f"{cfg.data.manifest}: the train split has no usable clips")
    return clips


def rank_shards(batches: list[TransitionBatch], num_ranks: int) -> list[TransitionBatch]:
    """The batch each learner rank trains on: groups i, i+N, ... go to rank i (the Trainer's split)."""
    return [concat(batches[r::num_ranks]) for r in range(num_ranks)]


class SequentialLoop:
    """Fast-GRPO in one process: one policy (rollout and learner), a frozen reference, the four teachers."""

    def __init__(self, cfg: PrismConfig, torch_threads: int = 1):
        """cfg: the run's config (the pipeline's); torch_threads: intra-op threads of this process."""
        torch.set_num_threads(max(1, int(torch_threads)))
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.clips = load_train_clips(cfg)
        self.sampler = PromptSampler(list(self.clips), cfg.seed)
        self.window_gen = torch.Generator().manual_seed(cfg.seed)
        self.policy = build_policy(cfg.policy)
        self.reference = copy.deepcopy(self.policy).eval().requires_grad_(False)
        self.optimizer = torch.optim.AdamW([p for p in self.policy.parameters() if p.requires_grad],
                                           lr=cfg.grpo.lr, weight_decay=cfg.grpo.weight_decay)
        self.ema = EMA(self.policy.state_dict(), cfg.grpo.ema_decay)
        self.teachers: dict[str, Teacher] = {}
        for t in TEACHERS:
            tc = getattr(cfg.rewards, t)
            self.teachers[t] = build_teacher(t, tc.backend, dict(tc.options))

    def _grade(self, clip_ids: list[str], waves: list[list[np.ndarray]], sample_rate: int,
               seconds: dict[str, float]) -> dict[str, np.ndarray]:
        P, G = len(waves), len(waves[0])
        flat_waves = [w for group in waves for w in group]
        flat_clips = [self.clips[c] for c in clip_ids for _ in range(G)]
        flat_ids = [f"{c}#{g}" for c in clip_ids for g in range(G)]
        per_teacher = {}
        for t, teacher in self.teachers.items():
            t0 = time.perf_counter()
            rewards = np.array([g.reward for g in teacher.grade(flat_waves, sample_rate, flat_clips)], dtype=np.float64)
            seconds[f"reward.{t}"] = time.perf_counter() - t0
            check_grades(t, teacher.backend, flat_ids, rewards, backend_reward_range(t, teacher.backend), "error")
            per_teacher[t] = rewards.reshape(P, G)
        return per_teacher

    def _learn(self, batches: list[TransitionBatch], step: int) -> dict[str, float]:
        cfg, n = self.cfg, self.cfg.learner.num_ranks
        shards = rank_shards(batches, n)
        count = max(1, math.ceil(max(len(s) for s in shards) / cfg.grpo.minibatch_size))
        self.policy.train()
        losses = []
        for epoch in range(cfg.grpo.inner_epochs):
            plans = [micro_batch_plan(s, count, torch.Generator().manual_seed(shuffle_seed(cfg.seed, step, r, epoch)))
                     for r, s in enumerate(shards)]
            for micro in range(count):
                loss = 0.0
                for r in range(n):
                    batch, weight = plans[r][micro]
                    rank_loss, _ = grpo_loss(self.policy, self.reference, batch, cfg.grpo,
                                             cfg.sampler.guidance_scale, cfg.sampler.noise_level)
                    loss = loss + rank_loss * (weight / n)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.grpo.max_grad_norm)
                self.optimizer.step()
                losses.append(float(loss.detach()))
        self.policy.eval()
        return {"loss": float(np.mean(losses)), "micro_steps": float(count * cfg.grpo.inner_epochs)}

    def step(self, step: int) -> dict[str, float]:
        """One training step; returns rewards, loss and the seconds of every stage (`time/<stage>`)."""
        cfg, seconds = self.cfg, {}
        t_step = time.perf_counter()
        sde_steps = window_for_step(cfg.sampler.schedule, step, cfg.sampler.num_steps, cfg.sampler.window,
                                    self.window_gen, cfg.sampler.window_range, cfg.sampler.mix_slide_every)
        clip_ids = self.sampler.next(cfg.grpo.prompts_per_step)
        t0 = time.perf_counter()
        self.policy.eval()
        results = []
        for i, cid in enumerate(clip_ids):
            gen = torch.Generator().manual_seed(group_seed(cfg.seed, step, i))
            with torch.no_grad():
                prepared = self.policy.prepare([self.clips[cid]])
                results.append(rollout_group(self.policy, prepared, cfg.grpo.group_size, cfg.sampler,
                                             list(sde_steps), gen, cfg.sampler.guidance_scale))
        seconds["rollout"] = time.perf_counter() - t0
        per_teacher = self._grade(clip_ids, [r.waveforms for r in results], self.policy.sample_rate, seconds)
        t0 = time.perf_counter()
        total = combine_grades(per_teacher, weights_of(cfg), cfg.rewards.combine)
        adv = group_advantages(total, cfg.grpo.adv_std, cfg.grpo.adv_eps, cfg.grpo.adv_clip)
        batches = [assemble_transitions({"records": r.records, "prepared": r.prepared}, [float(a) for a in adv[i]],
                                        step, cid) for i, (r, cid) in enumerate(zip(results, clip_ids))]
        seconds["advantages"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        learn = self._learn(batches, step)
        seconds["learn"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.ema.update(self.policy.state_dict())
        seconds["ema"] = time.perf_counter() - t0
        out: dict[str, float] = {"step": float(step), "samples": float(total.size),
                                 "reward/total": float(total.mean()), "learn/loss": learn["loss"],
                                 "learn/micro_steps": learn["micro_steps"]}
        out.update({f"reward/{t}/mean": float(r.mean()) for t, r in per_teacher.items()})
        out.update({f"time/{k}": v for k, v in seconds.items()})
        out["time/step"] = time.perf_counter() - t_step
        return out


def run_sequential(cfg: PrismConfig, warmup_steps: int, measure_steps: int, torch_threads: int = 1) -> dict[str, Any]:
    """Run warmup_steps + measure_steps steps; samples/s and mean stage seconds over the measured ones."""
    if measure_steps < 1:
        raise ValueError(f"run_sequential: measure_steps must be >= 1, got {measure_steps}")
    loop = SequentialLoop(cfg, torch_threads)
    history = [loop.step(s) for s in range(warmup_steps + measure_steps)]
    measured = history[warmup_steps:]
    wall = sum(h["time/step"] for h in measured)
    return {
        "samples_per_s": sum(h["samples"] for h in measured) / wall,
        "step_s": wall / len(measured),
        "stages_s": {k: float(np.mean([h[f"time/{k}"] for h in measured])) for k in STAGES},
        "torch_threads": int(torch_threads),
        "history": history,
    }
