"""policy.kind=prismaudio forward semantics: a full-size velocity at 9 s shapes, and on the reduced
configuration the reference's conditioning rules (zero unconditional branch, rotary on 32 channels,
sync stream at the latent's frames), padding invariance, rollout and log-prob consistency, and
which weights get gradients."""
from __future__ import annotations

import math

import pytest
import torch

from common.types import Clip
from policies.config import PolicyConfig, SamplerConfig
from policies.prismaudio.conditioners import MultiConditioner
from policies.prismaudio.layers import RotaryEmbedding, apply_rotary
from policies.prismaudio.policy import DiTWrapper, PrismAudioPolicy
from policies.rollout import rollout_group, transition_log_prob
from helpers.prismaudio_world import random_features, reduced_config, replace_prismaudio

import numpy as np


def _clip(features, clip_id="c0"):
    return Clip(clip_id, "train", np.zeros((1, 8, 8, 3), np.uint8), 25.0, np.zeros((2, 10), np.float32), 44100,
                {}, features=features)


def test_full_size_velocity_at_nine_seconds_is_finite():
    """One velocity of the 518M DiT (latent [1, 64, 194], video [36, 1024], text [77, 1024], sync [216, 768])."""
    cfg = PolicyConfig(kind="prismaudio", sample_rate=44100)
    with torch.device("meta"):  # the VAE is not needed for a velocity: it stays on meta
        policy = PrismAudioPolicy(cfg)
    torch.manual_seed(0)
    policy.model = DiTWrapper(cfg.prismaudio)
    policy.conditioner = MultiConditioner(1024, 1024, 768, 1024)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():  # zero-initialised branch outputs get values
            if name.endswith(("to_out.weight", "ff.ff.2.weight", "conv.weight")):
                p.normal_(0, 0.02)
        cond = policy.encode_conditions(policy.prepare([_clip(random_features(cfg.prismaudio, 77, seed=1))]))
        v = policy.velocity(torch.randn(1, 64, 194), torch.tensor([0.7]), cond)
    assert v.shape == (1, 64, 194) and torch.isfinite(v).all() and v.abs().mean() > 0


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    policy = PrismAudioPolicy(reduced_config())
    with torch.no_grad():
        for p in policy.model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return policy.eval()


def test_rotary_turns_the_first_32_channels_in_half_pairs():
    rot = RotaryEmbedding(32)
    assert rot.inv_freq.shape == (16,)
    t = torch.randn(1, 1, 5, 64)
    out = apply_rotary(t, rot(5))
    assert torch.equal(out[..., 32:], t[..., 32:])
    p, i = 3, 4  # position 3, frequency 4: channels (4, 20) turn by 3 * 10000^(-8/32)
    a = p * 10000 ** (-2 * i / 32)
    x, y = t[0, 0, p, i], t[0, 0, p, i + 16]
    assert torch.allclose(out[0, 0, p, i], x * math.cos(a) - y * math.sin(a), atol=1e-5)
    assert torch.allclose(out[0, 0, p, i + 16], y * math.cos(a) + x * math.sin(a), atol=1e-5)


def test_conditions_padding_and_the_zero_unconditional_branch(small):
    pa = small.pa
    feats = random_features(pa, text_rows=5, seed=3)
    x, t = torch.randn(1, *small.latent_shape()), torch.tensor([0.6])
    with torch.no_grad():
        cond = small.encode_conditions(small.prepare([_clip(feats)]))
        assert cond["sync"].shape == (1, pa.latent_frames, pa.embed_dim) and pa.latent_frames == 21
        assert cond["context"].shape[1] == pa.video_frames + 5  # text trimmed to the clip's rows
        v = small.velocity(x, t, cond)
        # the same clip padded inside a batch with a longer one: padded rows are masked out
        longer = small.encode_conditions(small.prepare([_clip(feats), _clip(random_features(pa, 12, seed=4), "c1")]))
        v_batch = small.velocity(torch.cat([x, x]), torch.cat([t, t]), longer)
        assert torch.allclose(v_batch[0], v[0], atol=1e-5)
        # unconditional = every stream zero (the reference's CFG), so the velocity ignores the clip
        null = small.null_conditions(cond)
        other = small.null_conditions(small.encode_conditions(small.prepare([_clip(random_features(pa, 9, seed=5))])))
        assert torch.allclose(small.velocity(x, t, null), small.velocity(x, t, other), atol=1e-5)
        dit = small.model.model
        zero = torch.zeros_like(cond["context"])
        assert torch.allclose(small.velocity(x, t, null), dit(x, t, zero, None, torch.zeros_like(cond["add"]),
                                                                  torch.zeros_like(cond["sync"])), atol=1e-6)
        g = small.guided_velocity(x, t, cond, 5.0)
        assert torch.allclose(g, small.velocity(x, t, null) + 5.0 * (v - small.velocity(x, t, null)), atol=1e-5)


def test_bad_features_are_refused_naming_clip_and_key(small):
    feats = random_features(small.pa, 5, seed=0)
    with pytest.raises(ValueError, match=r"clip 'bad'.*'sync_features'"):
        small.prepare([_clip({**feats, "sync_features": feats["sync_features"][:16]}, "bad")])
    with pytest.raises(ValueError, match=r"clip 'bad'.*'video_features'"):
        small.prepare([_clip({k: v for k, v in feats.items() if k != "video_features"}, "bad")])
    with pytest.raises(ValueError, match=r"clip 'bad'.*text_tokens"):
        small.prepare([_clip(random_features(small.pa, small.pa.text_tokens + 1, seed=0), "bad")])


def test_rollout_records_rescore_and_only_the_dit_learns(small):
    sampler = SamplerConfig(num_steps=4, guidance_scale=5.0)
    prepared = small.prepare([_clip(random_features(small.pa, 6, seed=7))])
    res = rollout_group(small, prepared, 2, sampler, [1, 2], torch.Generator().manual_seed(0))
    assert len(res.waveforms) == 2 and res.waveforms[0].shape == (2, 21 * 2048)
    rec = res.records
    cond = small.encode_conditions({k: v.expand(2, *v.shape[1:]) for k, v in prepared.items()})
    lp, _, _ = transition_log_prob(small, cond, rec.latents, rec.next_latents, rec.sigmas, rec.sigmas_next, 5.0, 0.7)
    assert torch.allclose(lp, rec.log_probs, atol=1e-4)
    # gradients: the DiT (checkpointed blocks) but not the conditioners, the VAE or the unused empty features
    small.train()
    lp, _, _ = transition_log_prob(small, cond, rec.latents[:, 0], rec.next_latents[:, 0], rec.sigmas[0],
                                   rec.sigmas_next[0], 5.0, 0.7)
    lp.sum().backward()
    grads = {n: p.grad for n, p in small.named_parameters()}
    assert grads["model.model.transformer.layers.0.self_attn.to_qkv.weight"].abs().sum() > 0
    assert all(grads[n] is None for n in grads if not n.startswith("model.") or "empty_" in n)
    small.zero_grad(set_to_none=True)
    small.eval()


def test_checkpointing_gives_the_same_gradient():
    torch.manual_seed(0)
    plain = PrismAudioPolicy(replace_prismaudio(reduced_config(), activation_checkpointing=False))
    ckpt = PrismAudioPolicy(replace_prismaudio(reduced_config(), activation_checkpointing=True))
    with torch.no_grad():
        for p in plain.model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    ckpt.load_state_dict(plain.state_dict())
    feats = random_features(plain.pa, 4, seed=1)
    x, t = torch.randn(2, *plain.latent_shape()), torch.tensor([0.3, 0.8])
    for model in (plain, ckpt):
        cond = model.encode_conditions(model.prepare([_clip(feats), _clip(feats, "c1")]))
        model.velocity(x, t, cond).square().mean().backward()
    name = "model.model.transformer.layers.1.ff.ff.0.proj.weight"
    a, b = dict(plain.named_parameters())[name].grad, dict(ckpt.named_parameters())[name].grad
    assert a.abs().sum() > 0 and torch.allclose(a, b, atol=1e-6)


def test_reference_audio_levels_share_the_batch_peak(small):
    from policies.prismaudio.audio_out import reference_levels

    wave = torch.tensor([[[0.5, -0.3]], [[0.25, -0.1]]])
    out = reference_levels(wave)
    assert out[0, 0, 0] == 1.0 and out[1, 0, 0] == torch.trunc(torch.tensor(0.5 * 32767)) / 32767
    assert out[0, 0, 1] == -torch.trunc(torch.tensor(0.6 * 32767)) / 32767  # truncated toward zero, like .to(int32)
    assert torch.equal(reference_levels(torch.zeros(1, 2, 3)), torch.zeros(1, 2, 3))
    ref = PrismAudioPolicy(replace_prismaudio(reduced_config(), audio_out="reference"))
    ref.load_state_dict(small.state_dict())
    latent = torch.randn(3, *small.latent_shape())
    waves = np.stack(ref.waveforms(latent))
    assert np.abs(waves).max() == 1.0 and np.allclose(waves * 32767, np.round(waves * 32767), atol=1e-3)
    with pytest.raises(ValueError, match="audio_out"):
        PrismAudioPolicy(replace_prismaudio(reduced_config(), audio_out="peak"))
