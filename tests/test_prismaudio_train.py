"""policy.kind=prismaudio through the whole Ray loop on a reduced configuration of the same
architecture (same code path, small width, depth and VAE): weights loaded from a file in the
released layout, rollout workers, the four reward pools, two DeepSpeed ranks, weight sync,
checkpoint and resume; then `prismrl export` of the EMA and current weights, and `prismrl generate`
writing an mp4 from a cached-feature clip."""
from __future__ import annotations

import os

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import ray
import torch
from safetensors.torch import load_file

from orchestrator.config import load_config
from orchestrator.data.synth import write_synthscenes
from orchestrator.training.export import main as export_main
from orchestrator.training.trainer import Trainer
from policies.checkpoint import save_policy
from policies.prismaudio.policy import PrismAudioPolicy
from helpers.prismaudio_world import (add_feature_column, reduced_config, reduced_overrides, replace_prismaudio,
                                      save_reference_checkpoint)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("pa")
    cfg = load_config("tiny", [f"run_dir={root}", "data.synth.n=12"])
    manifest = add_feature_column(write_synthscenes(str(root / "data"), cfg.data.synth, cfg.data.s3, progress=False),
                                  reduced_config().prismaudio)
    torch.manual_seed(0)
    start = PrismAudioPolicy(reduced_config())
    with torch.no_grad():  # zero-initialised branch outputs get values, so every block learns at once
        for p in start.model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    weights = save_reference_checkpoint(start, str(root / "prismaudio.ckpt"))
    ray.init(address="local", num_cpus=4, include_dashboard=False, object_store_memory=300 * 1024 * 1024)
    yield root, manifest, weights
    ray.shutdown()


def _cfg(root, manifest, weights, *extra):
    return load_config("tiny", [f"run_dir={root / 'run'}", f"data.manifest={manifest}", *reduced_overrides(),
                                f"policy.prismaudio.weights={weights}", "sampler.num_steps=4", "grpo.steps=2",
                                "grpo.group_size=2", "grpo.prompts_per_step=2", "train.val_clips=1", "rollout.num_workers=1",
                                *extra])


def test_fast_grpo_step_checkpoint_resume_export_and_generate(world):
    root, manifest, weights = world
    trainer = Trainer(_cfg(root, manifest, weights))
    try:
        first = trainer.fit(stop_after=1)
        assert np.isfinite(first[0]["reward/total"]) and np.isfinite(first[0]["learn/loss"])
        ckpt = str(root / "run" / "checkpoints" / "ckpt-00000001")
        trainer.restore(ckpt)  # resume from the checkpoint: learner state, EMA, data cursor, window RNG
        assert trainer.start_step == 1
        again = trainer.fit()
        assert [h["step"] for h in again] == [0, 1] and np.isfinite(again[-1]["learn/loss"])
    finally:
        trainer.shutdown()

    # export: the EMA and the current weights of the checkpoint, in the released layout
    ema = load_file(os.path.join(ckpt, "ema.safetensors"))
    assert export_main([ckpt, str(root / "ema.ckpt")]) == 0
    assert export_main([ckpt, str(root / "cur.safetensors"), "--weights", "current"]) == 0
    start = torch.load(weights, weights_only=True)
    for name, expect in (("ema.ckpt", ema), ("cur.safetensors", None)):
        policy = PrismAudioPolicy(replace_prismaudio(reduced_config(), weights=str(root / name)))
        state = policy.state_dict()
        if expect is not None:
            assert all(torch.equal(state[k], expect[k]) for k in state)
        dit = "model.model.transformer.layers.0.self_attn.to_qkv.weight"
        assert not torch.equal(state[dit], start[dit])  # trained
        assert torch.equal(state["pretransform.model.decoder.layers.0.weight_v"],
                           start["pretransform.model.decoder.layers.0.weight_v"])  # the VAE stays frozen

    # generate: an mp4 with audio from a cached-feature clip of the manifest
    from orchestrator.evaluation.generate import run_generate

    cfg = _cfg(root, manifest, weights, "tracking.progress=false")
    policy_dir = save_policy(PrismAudioPolicy(replace_prismaudio(reduced_config(), weights=str(root / "ema.ckpt"))),
                             replace_prismaudio(cfg.policy, weights=None), str(root / "policy_ema"))
    one = os.path.join(os.path.dirname(manifest), "one.parquet")  # the manifest's first clip, with its features_path
    pq.write_table(pq.read_table(manifest).slice(0, 1), one)
    done, failed = run_generate(cfg, policy_dir, one, out_dir=str(root / "gen"))
    assert not failed and done
    mp4 = next(iter(done.values()))["mp4"]
    with av.open(mp4) as f:
        assert f.streams.video and f.streams.audio and f.streams.audio[0].rate == 44100

    # eval: the paper's metrics of the exported policy on a cached-feature clip
    from orchestrator.evaluation.evaluate import run_eval

    result = run_eval(_cfg(root, manifest, weights, f"eval.checkpoint={policy_dir}", "eval.limit=1",
                           "eval.split=val", f"run_dir={root / 'eval'}"), track=False)
    assert np.isfinite(result["metrics"]["checkpoint"]["reward/total"])
