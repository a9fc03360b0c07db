"""The distributed Fast-GRPO loop on the tiny config: 2 rollout workers, a pool per teacher, and
2 DeepSpeed learner ranks on one local Ray."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import ray

from orchestrator.training.checkpoint_store import resolve_resume
from orchestrator.config import load_config
from orchestrator.data.synth import write_synthscenes
from orchestrator.training.pretrain import run_pretrain
from orchestrator.training.trainer import Trainer

pytestmark = pytest.mark.slow
COMPARED = ("reward/total", "reward/semantic/mean", "reward/timing/mean", "reward/spatial/mean", "learn/loss")


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """A tiny SynthScenes set and a briefly pretrained tiny policy, shared by the module."""
    root = tmp_path_factory.mktemp("world")
    cfg = load_config("tiny", [f"run_dir={root / 'pre'}", f"policy.checkpoint={root / 'policy'}"])
    manifest = write_synthscenes(str(root / "data"), cfg.data.synth, cfg.data.s3, progress=False)
    cfg.data.manifest = str(manifest)
    run_pretrain(cfg)
    ray.init(address="local", num_cpus=4, include_dashboard=False, object_store_memory=300 * 1024 * 1024)
    yield root, str(manifest)
    ray.shutdown()


def tiny_cfg(root, manifest, name, *overrides):
    return load_config("tiny", [f"run_dir={root / name}", f"data.manifest={manifest}",
                                f"policy.checkpoint={root / 'policy'}", *overrides])


def test_resume_after_kill_matches_uninterrupted_and_dead_worker_is_replaced(tiny_world):
    root, manifest = tiny_world
    # Uninterrupted run of 2 steps; it checkpoints after each step.
    run = Trainer(tiny_cfg(root, manifest, "run", "grpo.steps=2"))
    try:
        first = run.fit(stop_after=1)
        history = run.fit()
    finally:
        run.shutdown()
    assert [h["step"] for h in history] == [0, 1]
    for h in history:
        assert np.isfinite(h["reward/total"]) and np.isfinite(h["learn/loss"])
        assert h["staleness"] == 0.0  # sync mode is on-policy
    del first
    ckpts = sorted(os.listdir(root / "run" / "checkpoints"))
    assert ckpts == ["ckpt-00000001", "ckpt-00000002"]  # complete ones only, no .tmp left behind
    with open(root / "run" / "checkpoints" / "ckpt-00000001" / "controller.json") as f:
        assert json.load(f)["step"] == 1
    # The run "killed" after checkpoint 1 restarts from it and computes step 1 again: same results.
    resumed = Trainer(tiny_cfg(root, manifest, "run", "grpo.steps=2"))
    try:
        resumed.restore(resolve_resume(resumed.store, str(root / "run" / "checkpoints" / "ckpt-00000001")))
        assert resumed.start_step == 1
        again = resumed.fit()
        assert again[-1]["step"] == 1
        for key in COMPARED:
            assert again[-1][key] == pytest.approx(history[1][key], rel=1e-5, abs=1e-7), key

        # A rollout worker killed mid-step is replaced; the step completes with every group.
        launched = resumed._launch(2)
        ray.kill(resumed.roles.fleet.workers[0], no_restart=True)
        collected = resumed._collect(launched)
        assert [g.clip_id for g in collected["groups"]] == launched.clip_ids
        assert resumed.roles.fleet.replacements == 1
        assert collected["grades"].total.shape == (len(launched.clip_ids), resumed.cfg.grpo.group_size)
        metrics, _ = resumed._learn(2)
        assert np.isfinite(metrics["loss"])
    finally:
        resumed.shutdown()


@pytest.fixture(scope="module")
def ms_clap_options(tmp_path_factory):
    """ms_clap options for a random-weight MS-CLAP saved in the release format, with a tiny tokenizer."""
    import torch

    from helpers.ms_clap_files import TINY_ARCH, upstream_state, write_tiny_tokenizer
    from rewards.models.ms_clap import MsClapArch, MsClapModel

    root = tmp_path_factory.mktemp("msclap")
    arch = {**TINY_ARCH, "text_vocab": len(write_tiny_tokenizer(root / "gpt2"))}
    torch.manual_seed(0)
    model = MsClapModel(MsClapArch(**arch))
    torch.save({"model": upstream_state(model, arch["text_layers"], arch["text_positions"])},
               root / "CLAP_weights_2023.pth")
    return {"checkpoint": str(root / "CLAP_weights_2023.pth"), "tokenizer": str(root / "gpt2"), "device": "cpu",
            "batch_size": 1, "arch": arch}, float(model.logit_scale.detach().exp())


def test_async_mode_overlaps_and_keeps_staleness_bound(tiny_world, ms_clap_options):
    """Also the end-to-end runs of the ms_clap semantic teacher (PrismAudio's) on a random-weight
    checkpoint, and of DiffusionNFT (train.algorithm=nft) on 2 ZeRO ranks with bf16 sampling and the
    spatial teacher routed to ITD and ILD (the loss refuses rows that lack the teachers' advantage parts)."""
    root, manifest = tiny_world
    options, scale = ms_clap_options
    trainer = Trainer(tiny_cfg(root, manifest, "async", "grpo.steps=3", "train.mode=async",
                               "train.max_staleness=1", "train.checkpoint_every=0",
                               "train.algorithm=nft", "nft.draws=2", "sampler.schedule=flow_grpo", "sampler.noise_level=0",
                               "rollout.dtype=bf16", "nft.teacher_channels.spatial=ITD,ILD", "nft.balance_groups=false",
                               "rewards.combine=normalize_then_sum", "rewards.semantic.backend=ms_clap",
                               f"rewards.semantic.options={json.dumps(options)}"))
    try:
        hist = trainer.fit()
        one, again = trainer.validate(3), trainer.validate(3)
        trainer.cfg.train.val_samples = 3  # two more fixed noises per clip: a different, finite mean
        three = trainer.validate(3)
        precisions = trainer.roles.fleet.sampling_precisions()
    finally:
        trainer.shutdown()
    assert all(np.isfinite(v) for v in three.values())
    assert precisions == ["bf16"]  # rollout.dtype=bf16 reached every worker
    assert one == again  # validation noise is fixed: passes differ only by the weights
    w = trainer.cfg.rewards.weights
    weighted = w.semantic * one["semantic"] + w.timing * one["timing"] + w.aesthetic * one["aesthetic"] + w.spatial * one["spatial"]
    assert one["total"] == pytest.approx(weighted)  # raw weighted sum, whatever rewards.combine is
    assert three["total"] != one["total"]
    for h in hist:  # every rollout graded by MS-CLAP: exp(logit_scale) * cos / 80, not all alike
        assert 0 < abs(h["reward/semantic/mean"]) <= scale / 80 and h["reward/semantic/std"] > 0
    for h in hist:  # DiffusionNFT's metrics: the flow-matching error on the policy's own samples, r in [0, 1]
        assert np.isfinite(h["learn/fm_loss"]) and 0.0 <= h["learn/r_mean"] <= 1.0
    stale = [h["staleness"] for h in hist]
    assert stale[0] == 0.0 and max(stale) == 1.0  # later steps train on rollouts one version old
    assert trainer.buffer.max_seen_staleness <= 1
