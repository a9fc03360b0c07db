"""The distributed Fast-GRPO loop on the tiny config: 2 rollout workers, a pool per teacher, and
2 DeepSpeed learner ranks on one local Ray."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import ray

from orchestrator.config import load_config
from orchestrator.data.synth import write_synthscenes
from orchestrator.pretrain import run_pretrain
from orchestrator.trainer import Trainer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """A tiny SynthScenes set and a briefly pretrained tiny policy, shared by the module."""
    root = tmp_path_factory.mktemp("world")
    cfg = load_config("tiny", [f"run_dir={root / 'pre'}", f"policy.checkpoint={root / 'policy'}"])
    manifest = write_synthscenes(str(root / "data"), cfg.data.synth, cfg.data.s3)
    cfg.data.manifest = str(manifest)
    run_pretrain(cfg)
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=300 * 1024 * 1024)
    yield root, str(manifest)
    ray.shutdown()


def tiny_cfg(root, manifest, name, *overrides):
    return load_config("tiny", [f"run_dir={root / name}", f"data.manifest={manifest}",
                                f"policy.checkpoint={root / 'policy'}", *overrides])


def test_sync_loop_checkpoint_and_resume_matches_uninterrupted(tiny_world):
    root, manifest = tiny_world
    # Uninterrupted: 3 steps.
    full = Trainer(tiny_cfg(root, manifest, "full", "grpo.steps=3"))
    try:
        hist_full = full.fit()
    finally:
        full.shutdown()
    assert [h["step"] for h in hist_full] == [0, 1, 2]
    for h in hist_full:
        assert np.isfinite(h["reward/total"]) and np.isfinite(h["learn/loss"])
        assert h["staleness"] == 0.0  # sync mode is on-policy
    # Killed after the checkpoint of step 2, then resumed with resume=auto.
    cut = Trainer(tiny_cfg(root, manifest, "cut", "grpo.steps=3"))
    try:
        cut.fit(stop_after=2)
    finally:
        cut.shutdown()
    ckpts = sorted(os.listdir(root / "cut" / "checkpoints"))
    assert ckpts[-1] == "ckpt-00000002" and not any(c.endswith(".tmp") for c in ckpts)
    with open(root / "cut" / "checkpoints" / "ckpt-00000002" / "controller.json") as f:
        assert json.load(f)["step"] == 2
    resumed = Trainer(tiny_cfg(root, manifest, "cut", "grpo.steps=3", "train.resume=auto"))
    try:
        from orchestrator.checkpoint_store import resolve_resume

        resumed.restore(resolve_resume(resumed.store, "auto"))
        assert resumed.start_step == 2
        hist_resumed = resumed.fit()
    finally:
        resumed.shutdown()
    last_full, last_resumed = hist_full[-1], hist_resumed[-1]
    assert last_resumed["step"] == 2
    for key in ("reward/total", "reward/semantic/mean", "reward/timing/mean", "learn/loss"):
        assert last_resumed[key] == pytest.approx(last_full[key], rel=1e-5, abs=1e-7), key


def test_async_mode_overlaps_and_keeps_staleness_bound(tiny_world):
    root, manifest = tiny_world
    trainer = Trainer(tiny_cfg(root, manifest, "async", "grpo.steps=3", "train.mode=async",
                               "train.max_staleness=1", "train.checkpoint_every=0"))
    try:
        hist = trainer.fit()
    finally:
        trainer.shutdown()
    stale = [h["staleness"] for h in hist]
    assert stale[0] == 0.0 and max(stale) == 1.0  # later steps train on rollouts one version old
    assert trainer.buffer.max_seen_staleness <= 1


def test_killed_rollout_worker_is_replaced_and_step_completes(tiny_world):
    root, manifest = tiny_world
    trainer = Trainer(tiny_cfg(root, manifest, "kill", "grpo.steps=1", "grpo.prompts_per_step=4",
                               "train.checkpoint_every=0"))
    try:
        launched = trainer._launch(0)
        ray.kill(trainer.roles.fleet.workers[0], no_restart=True)
        collected = trainer._collect(launched)
        groups = collected["groups"]
        assert [g.clip_id for g in groups] == launched.clip_ids  # nothing lost, in order
        assert trainer.roles.fleet.replacements == 1
        assert collected["grades"].total.shape == (4, trainer.cfg.grpo.group_size)
        metrics, _ = trainer._learn(0)
        assert np.isfinite(metrics["loss"])
    finally:
        trainer.shutdown()
