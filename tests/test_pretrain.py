"""`prismrl pretrain` on the tiny preset: the loss falls, checkpoints are written and runs resume."""
import json
import os

import pytest
import torch

from orchestrator.config.load import load_config
from orchestrator.training.pretrain import lr_at, pretrain_policy
from policies.checkpoint import load_policy, load_trainer_state
from test_policy_fixtures import make_clip, one_thread  # noqa: F401


def _cfg(tmp_path, steps):
    # lr 5e-3: at 1e-2, Adam's first steps on the zero-initialised sync projection overshoot on these static frames
    return load_config("tiny", [
        f"run_dir={tmp_path}/run", f"pretrain.steps={steps}", "pretrain.batch_size=4", "pretrain.lr=5e-3",
        "pretrain.warmup=2", "pretrain.val_every=20", "pretrain.torch_threads=1", "policy.video_size=16",
        "policy.text_encoder.max_tokens_per_module=8", "policy.text_encoder.vocab_size=64",
    ], command="pretrain")


def test_lr_warms_up_then_decays():
    lrs = [lr_at(s, 1.0, 10, 100) for s in range(100)]
    assert lrs[0] == 0.1 and lrs[9] == 1.0 and lrs[99] < 0.15 and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_tiny_pretrain_lowers_the_loss_and_resumes(tmp_path):
    train = [make_clip(i, delay=(5 if i % 3 else -5)) for i in range(8)]
    val = train[:4]  # toy clips have random phases: only fitting the training clips can lower the loss
    cfg = _cfg(tmp_path, 40)
    first = pretrain_policy(cfg, train, val)
    out = os.path.join(cfg.run_dir, "checkpoint")
    assert first["steps"] == 40 and first["checkpoint"] == out
    assert first["val_loss"] < 0.95 * first["val_loss_initial"], first
    assert load_trainer_state(out)["step"] == 40
    lines = [json.loads(x) for x in open(os.path.join(cfg.run_dir, "metrics.jsonl"))]
    assert [x["step"] for x in lines if "loss" in x] == list(range(1, 41))
    assert any("val_loss" in x and x["step"] == 20 for x in lines)
    assert json.load(open(os.path.join(cfg.run_dir, "pretrain_summary.json")))["steps"] == 40
    before = load_policy(out)
    again = pretrain_policy(_cfg(tmp_path, 43), train, val)
    assert again["steps"] == 43 and again["steps_this_run"] == 3
    state = load_trainer_state(out)
    assert state["step"] == 43 and len(state["optimizer"]["state"]) > 0
    after = load_policy(out)
    assert torch.equal(after.codec.basis, before.codec.basis)  # the codec fitted once, kept on resume
    assert not torch.equal(after.final.linear.weight, before.final.linear.weight)


def test_mirror_augmentation_mirrors_about_half_the_batch_and_pretraining_runs_with_it(tmp_path):
    import numpy as np

    from orchestrator.training.pretrain import _Batcher
    from policies.build import build_policy

    clips = [make_clip(i, delay=5) for i in range(4)]  # every source on the left
    cfg = _cfg(tmp_path, 1)
    policy = build_policy(cfg.policy)
    batcher = _Batcher(policy, clips, cfg.policy.duration_s, mirror=True)
    seen = []
    policy.prepare = lambda crops, **kw: seen.extend(crops) or {}  # record what the policy is given
    policy.encode_audio = lambda audio: audio
    batcher.batch(list(range(4)) * 8, np.random.default_rng(0))
    right = sum(c.cot["spatial"] == "on the right" for c in seen)
    assert 8 <= right <= 24  # about half of 32
    for c in seen:
        original = clips[int(c.clip_id[4:])]
        mirrored = c.cot["spatial"] == "on the right"
        assert np.array_equal(c.audio, original.audio[::-1] if mirrored else original.audio)
        assert np.array_equal(c.frames, original.frames[:, :, ::-1] if mirrored else original.frames)
    cfg.pretrain.mirror = True
    assert pretrain_policy(cfg, clips, clips[:2])["steps"] == 1


def test_whole_clip_latents_are_encoded_once_and_equal_a_fresh_encoding(tmp_path):
    import numpy as np

    from orchestrator.training.pretrain import _Batcher
    from policies.build import build_policy

    cfg = _cfg(tmp_path, 1)
    policy = build_policy(cfg.policy)
    exact = [make_clip(i, duration_s=cfg.policy.duration_s) for i in range(3)]
    longer = make_clip(3, duration_s=cfg.policy.duration_s + 0.5)
    batcher = _Batcher(policy, exact + [longer], cfg.policy.duration_s, mirror=True)
    rng = np.random.default_rng(0)
    first_prepared, first = batcher.batch([0, 1, 2, 3, 0, 1], rng)
    assert len(batcher.latents) >= 3 and all(k[0] != 3 for k in batcher.latents)  # random crops are not kept
    encoded = batcher.policy.encode_audio
    calls = []
    batcher.policy.encode_audio = lambda audio: calls.append(audio.shape[0]) or encoded(audio)
    rng = np.random.default_rng(0)
    prepared, again = batcher.batch([0, 1, 2, 3, 0, 1], rng)  # the same crops and flips
    assert calls == [1]  # only the random crop of the longer clip is encoded again
    assert torch.allclose(again, first, atol=1e-6)
    assert torch.equal(prepared["text_ids"], first_prepared["text_ids"])


def test_parameter_channels_get_their_loss_weight_and_other_codecs_plain_mse():
    import dataclasses

    import numpy as np

    from orchestrator.training.pretrain import channel_weights, flow_matching_loss
    from policies.build import build_policy
    from test_policy_fixtures import tiny_cfg

    policy = build_policy(tiny_cfg())  # parametric_gated: 29 source channels, then ITD, ILD and the gate
    w = channel_weights(policy, 16.0)
    assert w.shape == (32,) and float(w.mean()) == pytest.approx(1.0)
    assert float(w[29] / w[0]) == pytest.approx(16.0) and w[30] == w[29] and torch.all(w[:29] == w[0])
    assert float(w[31] / w[0]) == pytest.approx(16.0 / 2.5**2)  # the gate's +1 / -4 spread: 2.5 latent units
    stereo = channel_weights(build_policy(dataclasses.replace(tiny_cfg(), codec="parametric_stereo")), 16.0)
    assert float(stereo[30] / stereo[0]) == pytest.approx(16.0) and torch.all(stereo[30:] == stereo[30])
    assert channel_weights(policy, 1.0) is None
    assert channel_weights(build_policy(dataclasses.replace(tiny_cfg(), codec="stereo_band")), 16.0) is None
    # parametric_envelope: 64 = 37 source + ITD, ILD, 24 bands, gate; the bands get their own weight
    envelope = build_policy(dataclasses.replace(tiny_cfg(), codec="parametric_envelope", latent_channels=64))
    env = channel_weights(envelope, 64.0, 4.0)
    assert float(env[37] / env[0]) == pytest.approx(64.0) and float(env[38] / env[0]) == pytest.approx(64.0)
    assert torch.allclose(env[39:63] / env[0], torch.full((24,), 4.0)) and float(env[63] / env[0]) == pytest.approx(64.0 / 2.5**2)
    assert torch.allclose(channel_weights(envelope, 16.0), channel_weights(envelope, 16.0, 16.0))
    assert channel_weights(envelope, 1.0, 1.0) is None and channel_weights(envelope, 1.0, 2.0) is not None
    # The weighted loss is the channel-weighted mean of squared errors: ones give plain MSE.
    torch.manual_seed(0)
    clips = [make_clip(i) for i in range(2)]
    prepared = policy.prepare(clips)
    policy.codec.fit_stats(torch.from_numpy(np.stack([c.audio for c in clips])))
    x0 = policy.encode_audio(torch.from_numpy(np.stack([c.audio for c in clips])))
    t, noise = torch.full((2,), 0.5), torch.randn(x0.shape)
    with torch.no_grad():
        plain = flow_matching_loss(policy, prepared, x0, t, noise)
        ones = flow_matching_loss(policy, prepared, x0, t, noise, weights=torch.ones(32))
        weighted = flow_matching_loss(policy, prepared, x0, t, noise, weights=w)
    assert float(ones) == pytest.approx(float(plain), rel=1e-6)
    assert float(weighted) != pytest.approx(float(plain), rel=1e-3)
