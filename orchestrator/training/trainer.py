"""The controller loop of Fast-GRPO: rollout -> four reward pools -> advantages -> experience buffer ->
DeepSpeed learners -> versioned weight sync, in `sync` or `async` mode.

The controller holds object refs and small metadata only: clips, waveforms, window records and
weights travel worker to worker through the Ray object store.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch

from actors.experience_builder import GroupExperience
from actors.rollout_fleet import GroupRequest
from common.types import TEACHERS, join_cot
from orchestrator.training.buffer import ExperienceBuffer
from orchestrator.training.clip_sets import training_clip_sets
from actors.learner_group import LearnerRankLost
from actors.lost_objects import InputsLost
from orchestrator.training.checkpoint_store import CheckpointStore, CheckpointWriteError
from orchestrator.training.faults import FaultBudget
from orchestrator.config.load import to_dict
from orchestrator.config.schema import PrismConfig
from orchestrator.data.sampler import PromptSampler
from orchestrator.grpo.advantages import group_advantages, null_control_advantages
from orchestrator.nft.optimality import balanced_advantages
from orchestrator.grpo.teacher_parts import teacher_advantage_parts
from orchestrator.training.reward_phase import grade_groups, weights_of
from orchestrator.training.roles import Roles, build_learner, build_roles
from orchestrator.runtime.tracking import Tracker
from rewards.combine import combine_grades
from policies.schedules import window_for_step

log = logging.getLogger(__name__)


TRAIN_STREAM, VAL_STREAM, NULL_STREAM = 0, 1, 2


def group_seed(seed: int, step: int, index: int, stream: int = TRAIN_STREAM) -> int:
    """Noise seed of group `index` at `step`: a pure function of the run seed (resumable).

    Validation uses its own stream with step 0, so every validation pass sees the same noise."""
    return int(np.random.SeedSequence([seed, stream, step, index]).generate_state(1)[0])


@dataclass
class LaunchedStep:
    """A step whose rollouts are in flight."""

    step: int
    clip_ids: list[str]
    sde_steps: list[int]
    requests: list[GroupRequest]
    pending: list[Any]
    cursor_before: dict
    window_rng_before: list[int]


class Trainer:
    """One training run on an initialized Ray."""

    def __init__(self, cfg: PrismConfig, roles: Roles | None = None):
        self.cfg = cfg
        os.makedirs(cfg.run_dir, exist_ok=True)
        sets = training_clip_sets(cfg)
        self.train_ids, self.val_ids = sets.train_ids, sets.val_ids
        self.clip_refs: dict[str, Any] = {}
        self.cot_text: dict[str, str] = {}
        for reader, ids in ((sets.train_reader, self.train_ids), (sets.val_reader, self.val_ids)):
            for cid in ids:
                try:
                    clip = reader.load(cid)
                except ValueError:
                    if cfg.data.on_bad_clip == "skip":
                        continue
                    raise
                self.clip_refs[cid] = ray.put(clip)
                self.cot_text[cid] = join_cot(clip.cot)
        self.train_ids = [c for c in self.train_ids if c in self.clip_refs]
        self.val_ids = [c for c in self.val_ids if c in self.clip_refs]
        self.last_val_rows: list[dict[str, Any]] = []
        self.val_rows_by_step: dict[int, list[dict[str, Any]]] = {}
        """`last_val_rows` of every validation pass of this process, by the learner steps done before it."""
        """Per val clip of the latest `validate`: clip_id and each teacher's and the total's mean over its samples."""
        self.skipped_clips = {**sets.train_reader.skipped, **sets.val_reader.skipped}
        self.sampler = PromptSampler(self.train_ids, cfg.seed)
        self.window_gen = torch.Generator().manual_seed(cfg.seed)
        self.store = checkpoint_store(cfg)
        self.roles = roles or build_roles(cfg)
        self.buffer = ExperienceBuffer(cfg.train.max_staleness if cfg.train.mode == "async" else 0)
        self.history: list[dict[str, float]] = []
        self.start_step = 0
        self.samples_done = 0
        self.inflight: deque[LaunchedStep] = deque()
        self.faults = FaultBudget(cfg.train.max_failures)
        self.mlflow_run_id: str | None = None
        """The MLflow run this training logs to; saved in checkpoints so a resumed run continues it."""

    # ----------------------------------------------------------------- steps
    def _launch(self, step: int) -> LaunchedStep:
        cfg = self.cfg
        cursor_before, rng_before = self.sampler.state_dict(), self.window_gen.get_state().tolist()
        sde_steps = window_for_step(cfg.sampler.schedule, step, cfg.sampler.num_steps, cfg.sampler.window,
                                    self.window_gen, cfg.sampler.window_range, cfg.sampler.mix_slide_every)
        clip_ids = self.sampler.next(cfg.grpo.prompts_per_step)
        draws = cfg.nft.draws if cfg.train.algorithm == "nft" else 0
        requests = [GroupRequest(self.clip_refs[cid], group_seed(cfg.seed, step, i), list(sde_steps),
                                 cfg.grpo.group_size, forward_draws=draws, draw_times=tuple(cfg.nft.time_range))
                    for i, cid in enumerate(clip_ids)]
        pending = self.roles.fleet.submit(requests)
        return LaunchedStep(step, clip_ids, list(sde_steps), requests, pending, cursor_before, rng_before)

    def _collect(self, launched: LaunchedStep) -> dict[str, Any]:
        cfg, t0 = self.cfg, time.perf_counter()
        groups = self.roles.fleet.gather(launched.requests, launched.pending)
        t_rollout = time.perf_counter() - t0
        grades = grade_groups(cfg, self.roles.pools, launched.clip_ids, [g.wave_refs for g in groups],
                              [self.clip_refs[c] for c in launched.clip_ids], groups[0].sample_rate,
                              self.roles.backends)
        adv = group_advantages(grades.total, cfg.grpo.adv_std, cfg.grpo.adv_eps, cfg.grpo.adv_clip)
        if cfg.train.algorithm == "nft" and cfg.nft.balance_groups:  # each group's 2r - 1 sums to 0
            adv = balanced_advantages(adv, cfg.nft.adv_scale, grades.keep)
        # [P, G, 1 + T]: the advantage, then (when nft.teacher_channels routes them) each teacher's part of it
        values = adv[..., None]
        if cfg.train.algorithm == "nft" and cfg.nft.teacher_channels:
            _, parts = teacher_advantage_parts(grades.per_teacher, weights_of(cfg), TEACHERS, cfg.rewards.combine,
                                               cfg.grpo.adv_std, cfg.grpo.adv_eps, cfg.grpo.adv_clip)
            values = np.concatenate([values, parts], axis=-1)
        values = np.where(grades.keep[..., None], values, 0.0)
        if cfg.grpo.null_control != "none":  # the update mechanics without the reward (grpo.null_control)
            rng = np.random.default_rng(group_seed(cfg.seed, launched.step, 0, NULL_STREAM))
            values = np.where(grades.keep[..., None],
                              null_control_advantages(values, cfg.grpo.null_control, rng, grades.keep), 0.0)
        adv = values[..., 0]
        items = [GroupExperience(g.records_ref, tuple(float(a) for a in adv[i]), g.version, g.clip_id,
                                 tuple(tuple(float(x) for x in member) for member in values[i, :, 1:])
                                 if values.shape[-1] > 1 else ())
                 for i, g in enumerate(groups)]
        self.buffer.add(launched.step, items, [g.version for g in groups])
        return {"groups": groups, "grades": grades, "adv": adv, "t_rollout": t_rollout,
                "t_rollout_busy": float(np.mean([g.seconds for g in groups])), "t_wait_start": t0}

    def _learn(self, step: int) -> tuple[dict[str, float], dict[str, float]]:
        learner, timings = self.roles.learner, {}
        t0 = time.perf_counter()
        refs, staleness = self.buffer.take(step, learner.version)
        shards = [refs[r::learner.num_ranks] for r in range(learner.num_ranks)]
        metrics = learner.train_step(shards, step)
        timings["learn"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        version, weights = learner.get_weights()
        self.roles.fleet.set_weights(version, weights)
        timings["sync"] = time.perf_counter() - t1
        metrics["staleness"] = float(staleness)
        return metrics, timings

    def _step_metrics(self, step: int, collected: dict[str, Any], learn: dict[str, float],
                      timings: dict[str, float], wall: float) -> dict[str, float]:
        grades = collected["grades"]
        n = grades.total.size
        m: dict[str, float] = {"step": step}
        for t in TEACHERS:
            m[f"reward/{t}/mean"] = float(grades.per_teacher[t].mean())
            m[f"reward/{t}/std"] = float(grades.per_teacher[t].std())
            m[f"time/reward.{t}"] = grades.seconds[t]
        m["reward/total"] = float(grades.total.mean())
        m["reward/dropped"] = float((~grades.keep).sum())
        adv = collected["adv"]
        m.update({"adv/mean": float(adv.mean()), "adv/std": float(adv.std()), "adv/abs_max": float(np.abs(adv).max())})
        m["time/rollout"] = collected["t_rollout"]
        m["time/rollout_busy"] = collected["t_rollout_busy"]
        m["time/learn"], m["time/sync"] = timings["learn"], timings["sync"]
        m["time/step"] = wall
        m["samples_per_s"] = n / max(wall, 1e-9)
        for k, v in learn.items():
            m[k if "/" in k else f"learn/{k}"] = float(v)
        m["kl"] = float(learn.get("kl", np.nan))
        m["clip_fraction"] = float(learn.get("clip_fraction", np.nan))
        m["staleness"] = float(learn.get("staleness", 0.0))
        for t, pool in self.roles.pools.items():
            st = pool.stats()
            m[f"pool/{t}/queue_depth"] = float(st.get("queue_depth", 0))
            m[f"pool/{t}/latency_p95_s"] = float(st.get("latency_p95_s", 0.0))
            m[f"pool/{t}/samples_per_s"] = float(st.get("samples_per_s", 0.0))
        m["data/skipped_clips"] = float(len(self.skipped_clips))
        return m

    # ------------------------------------------------------------ validation
    def validate(self, step: int, tracker: Tracker | None = None) -> dict[str, float]:
        """Mean rewards on the val clips: ODE sampling with the EMA weights, `train.val_samples` fixed
        noises per clip, sampled as one batch (a group without SDE steps; the first noise the same as
        with one sample). Every pass uses the same clips and noises, so two passes compare clip by clip
        (`last_val_rows`)."""
        cfg, fleet, learner = self.cfg, self.roles.fleet, self.roles.learner
        version, current = learner.version, fleet.weights_ref
        _, ema = learner.get_ema_weights()
        fleet.set_weights(version, ema)
        reps, n = max(1, cfg.train.val_samples), len(self.val_ids)
        requests = [GroupRequest(self.clip_refs[c], group_seed(cfg.seed, 0, i, VAL_STREAM), [], reps)
                    for i, c in enumerate(self.val_ids)]
        groups = fleet.run(requests)
        fleet.set_weights(version, current)
        per_clip = [list(groups[i].wave_refs) for i in range(n)]  # clip i: its samples
        grades = grade_groups(cfg, self.roles.pools, self.val_ids, per_clip,
                              [self.clip_refs[c] for c in self.val_ids], groups[0].sample_rate, self.roles.backends)
        out = {t: float(grades.per_teacher[t].mean()) for t in TEACHERS}
        # The weighted sum of raw grades, whatever rewards.combine does to advantages (a per-group
        # standardisation would make every validation total 0).
        raw_total = combine_grades({t: grades.per_teacher[t] for t in TEACHERS}, dataclasses.asdict(cfg.rewards.weights))
        out["total"] = float(raw_total.mean())
        self.last_val_rows = [{"clip_id": c, **{t: float(np.nanmean(grades.per_teacher[t][i])) for t in TEACHERS},
                               "total": float(np.nanmean(raw_total[i]))} for i, c in enumerate(self.val_ids)]
        self.val_rows_by_step[step] = self.last_val_rows
        if tracker is not None:
            tracker.log_metrics({f"val/{k}": v for k, v in out.items()}, step)
            for g in groups[: cfg.train.media_clips]:
                tracker.log_media(g.clip_id, ray.get(g.wave_refs[0]), g.sample_rate, self.cot_text[g.clip_id], step)
        return out

    # ----------------------------------------------------------- checkpoints
    def save(self, step: int) -> str | None:
        """Full state after `step` completed steps; its location, or None when it could not be
        written (not marked complete; counted against train.max_failures)."""
        staging = self.store.staging_dir(step)
        cursor, window_rng = self.sampler.state_dict(), self.window_gen.get_state().tolist()
        if self.inflight:  # async: resume re-launches the in-flight steps, so save the state before them
            cursor, window_rng = self.inflight[0].cursor_before, self.inflight[0].window_rng_before
        controller = {
            "step": step,
            "cursor": cursor,
            "window_rng": window_rng,
            "samples_done": self.samples_done,
            "history": self.history,
            "config": to_dict(self.cfg),  # credentials redacted
            "mlflow_run_id": self.mlflow_run_id,
        }
        self.roles.learner.save_checkpoint(staging, {"step": step})
        with open(os.path.join(staging, "controller.json"), "w") as f:
            json.dump(controller, f)
        try:
            return self.store.commit(step, staging)
        except CheckpointWriteError as e:  # never listed; resume takes the previous complete one
            self.faults.record("checkpoint", str(e))
            log.warning("%s; the run goes on (fault %d, train.max_failures=%d)", e, len(self.faults.events),
                        self.faults.max_failures)
            return None

    def restore(self, path: str) -> None:
        """Continue from a checkpoint directory."""
        with open(os.path.join(path, "controller.json")) as f:
            state = json.load(f)
        self.roles.learner.load_checkpoint(path)
        self.sampler.load_state_dict(state["cursor"])
        self.window_gen.set_state(torch.tensor(state["window_rng"], dtype=torch.uint8))
        self.samples_done = state["samples_done"]
        self.history = state["history"]
        self.start_step = state["step"]
        self.mlflow_run_id = self.mlflow_run_id or state.get("mlflow_run_id")
        version, weights = self.roles.learner.get_weights()
        self.roles.fleet.set_weights(version, weights)
        log.info("resumed from %s at step %d", path, self.start_step)

    # ------------------------------------------------------------------ loop
    def fit(self, tracker: Tracker | None = None, progress: Any = None, stop_after: int | None = None) -> list[dict]:
        """Train from `start_step` to `grpo.steps` (or `stop_after` steps, for tests). A learner rank
        lost mid-run is survived up to train.max_failures times (see `recover`)."""
        cfg = self.cfg
        end = cfg.grpo.steps if stop_after is None else min(cfg.grpo.steps, self.start_step + stop_after)
        self.inflight = deque()
        step = self._next_launch = self.start_step
        while step < end:
            try:
                self._step(step, end, tracker, progress)
                step += 1
            except LearnerRankLost as e:
                step = self.recover(e)
                if progress is not None:
                    progress.n = step
                    progress.refresh()
        self.start_step = end
        return self.history

    def _step(self, step: int, end: int, tracker: Tracker | None, progress: Any) -> None:
        cfg = self.cfg
        lookahead = cfg.train.max_staleness if cfg.train.mode == "async" else 0
        t_step = time.perf_counter()
        # async: rollouts of the next `lookahead` steps are queued on the workers ahead of this
        # step's weight update, so they sample while the learners train (staleness <= lookahead).
        while self._next_launch < end and self._next_launch <= step + lookahead:
            self.inflight.append(self._launch(self._next_launch))
            self._next_launch += 1
        collected, learn, timings = self._collect_and_learn(self.inflight.popleft())
        wall = time.perf_counter() - t_step
        self.samples_done += collected["grades"].total.size
        metrics = self._step_metrics(step, collected, learn, timings, wall)
        self.history.append(metrics)
        if tracker is not None:  # a step repeated after a recovery is not logged twice (Tracker)
            tracker.log_metrics(metrics, step)
        if progress is not None:
            progress.update(1)
            progress.set_postfix({"total": f"{metrics['reward/total']:.3f}",
                                  **{t[:4]: f"{metrics[f'reward/{t}/mean']:.3f}" for t in TEACHERS}})
        done = step + 1
        if cfg.train.val_every and done % cfg.train.val_every == 0 and done < end:
            self.validate(done, tracker)
        if cfg.train.checkpoint_every and done % cfg.train.checkpoint_every == 0:
            self.save(done)

    def _collect_and_learn(self, launched: LaunchedStep) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
        """Rollouts, grades and the learner step of `launched`. When objects of the step were lost
        (the node holding its waveforms or experience died: a reward pool or a learner rank raises
        InputsLost, the group unchanged), the fault is counted against train.max_failures and the
        step is produced again: the same requests (clips, seeds, window) go to the fleet, which
        replaces its workers that died; the step's grades and advantages are those of the new samples."""
        survived: list[tuple[dict[str, Any], float]] = []
        while True:
            try:
                collected = self._collect(launched)
                learn, timings = self._learn(launched.step)
                break
            except InputsLost as e:
                survived.append((self.faults.record("lost_objects", f"step {launched.step}: {e}"), time.perf_counter()))
                log.warning("step %d: %s; sampling the step again (fault %d, train.max_failures=%d)", launched.step, e,
                            len(self.faults.events), self.faults.max_failures)
                launched = dataclasses.replace(launched, pending=self.roles.fleet.submit(launched.requests))
        for event, t0 in survived:  # recovered: from the loss being seen to the step's learner update
            event.update(recovery_s=time.perf_counter() - t0, resumed_from_step=launched.step)
        return collected, learn, timings

    def recover(self, error: LearnerRankLost) -> int:
        """After a learner rank died: count the fault (past train.max_failures: RunFailed naming the
        rank and cause), drop the in-flight steps, build a new learner group (new placement group and
        rendezvous), load the newest complete checkpoint into it and rewind the controller (data
        cursor, window generator, history, sample count) to it. Returns the step to continue from."""
        t0 = time.perf_counter()
        event = self.faults.record("learner", str(error))
        log.warning("%s; rebuilding the learner group (fault %d, train.max_failures=%d)", error,
                    len(self.faults.events), self.faults.max_failures)
        self.roles.learner.abandon()
        self.inflight.clear()
        self.buffer = ExperienceBuffer(self.buffer.max_staleness)
        self.roles.learner = build_learner(self.cfg)
        path = self.store.newest_intact()
        if path is not None:
            self.restore(path)
        else:  # no checkpoint yet: start over from the policy's initial weights
            self.sampler = PromptSampler(self.train_ids, self.cfg.seed)
            self.window_gen = torch.Generator().manual_seed(self.cfg.seed)
            self.history, self.samples_done, self.start_step = [], 0, 0
            self.roles.fleet.set_weights(*self.roles.learner.get_weights())
        self._next_launch = self.start_step
        event.update(recovery_s=time.perf_counter() - t0, resumed_from_step=self.start_step)
        log.warning("learner group rebuilt in %.1f s; continuing from step %d", event["recovery_s"], self.start_step)
        return self.start_step

    def shutdown(self) -> None:
        """Stop the roles."""
        self.roles.shutdown()


def checkpoint_store(cfg: PrismConfig) -> CheckpointStore:
    """The run's checkpoints: train.checkpoint_dir, else <run_dir>/checkpoints."""
    return CheckpointStore(cfg.train.checkpoint_dir or os.path.join(cfg.run_dir, "checkpoints"),
                           _storage_options(cfg), keep=cfg.train.keep_checkpoints)


def _storage_options(cfg: PrismConfig) -> dict[str, Any]:
    s3 = cfg.data.s3
    opts: dict[str, Any] = {}
    if s3.endpoint_url:
        opts["client_kwargs"] = {"endpoint_url": s3.endpoint_url}
    if s3.key:
        opts["key"] = s3.key
    if s3.secret:
        opts["secret"] = s3.secret
    return opts
