"""The small DiT policy: conditions, guidance, checkpoints, the builtin and T5 text encoders."""
import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from policies.checkpoint import load_policy, load_trainer_state, save_policy
from policies.config import TextEncoderConfig
from policies.build import build_policy
from policies.text import hash_word_ids
from test_policy_fixtures import make_clip, one_thread, randomize, tiny_cfg  # noqa: F401


def _inputs(policy, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    prepared = policy.prepare([make_clip(i) for i in range(n)])
    return prepared, torch.randn(n, *policy.latent_shape(), generator=g), torch.rand(n, generator=g)


def test_velocity_depends_on_video_text_and_time_and_null_conditions_ignore_them():
    torch.manual_seed(0)
    policy = randomize(build_policy(tiny_cfg())).eval()
    prepared, x, t = _inputs(policy)
    assert prepared["frames"].shape == (2, 12, 3, 16, 16) and prepared["text_ids"].shape == (2, 4, 8)
    cond = policy.encode_conditions(prepared)
    v = policy.velocity(x, t, cond)
    assert v.shape == x.shape
    other = policy.prepare([make_clip(0)] * 2, cot=[{"semantic": "a drum", "temporal": "", "aesthetic": "",
                                                     "spatial": "right"}] * 2)
    assert not torch.allclose(policy.velocity(x, t, policy.encode_conditions(other)), v)
    assert not torch.allclose(policy.velocity(x, t * 0.5, cond), v)
    null = policy.null_conditions(cond)
    assert torch.allclose(policy.velocity(x, t, null), policy.velocity(x, t, policy.null_conditions(
        policy.encode_conditions(other))))
    guided = policy.guided_velocity(x, t, cond, 3.0)
    v_u = policy.velocity(x, t, null)
    stereo = [29, 30]  # ITD and ILD of the gated codec's 32 channels (the gate, 31, is guided)
    assert policy.stereo_channels == stereo
    source = [c for c in range(32) if c not in stereo]
    assert torch.allclose(guided[..., source], (v_u + 3.0 * (v - v_u))[..., source], atol=1e-5)
    assert torch.allclose(guided[..., stereo], v[..., stereo], atol=1e-5)  # stereo_guidance_scale=1
    policy.cfg.stereo_guidance_scale = None
    assert torch.allclose(policy.guided_velocity(x, t, cond, 3.0), v_u + 3.0 * (v - v_u), atol=1e-5)
    dropped = policy.drop_conditions(cond, torch.tensor([True, False]))
    vd = policy.velocity(x, t, dropped)
    assert torch.allclose(vd[0], v_u[0], atol=1e-6) and torch.allclose(vd[1], v[1], atol=1e-6)


def test_hashing_tokenizer_is_deterministic_and_truncates():
    ids = hash_word_ids("A bell rings, twice.", 64, 8)
    assert ids == hash_word_ids("a BELL rings, twice.", 64, 8) and len(ids) == 6 and min(ids) >= 1 and max(ids) < 64
    assert len(hash_word_ids("w " * 50, 64, 8)) == 8


def test_checkpoint_round_trip_gives_identical_velocities_and_keeps_trainer_state(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg()
    policy = randomize(build_policy(cfg)).eval()
    policy.codec.fit_stats(torch.from_numpy(np.stack([make_clip(i).audio for i in range(4)])))
    out = str(tmp_path / "ckpt")
    save_policy(policy, cfg, out, trainer_state={"step": 7, "optimizer": {"lr": torch.tensor(0.5)}})
    save_policy(policy, cfg, out, trainer_state={"step": 9, "optimizer": {}})  # overwrite in place
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]  # no temporary directories left behind
    assert json.load(open(os.path.join(out, "policy.json")))["latent_channels"] == cfg.latent_channels
    loaded = load_policy(out).eval()
    prepared, x, t = _inputs(policy)
    with torch.no_grad():
        a = policy.guided_velocity(x, t, policy.encode_conditions(prepared), 2.0)
        b = loaded.guided_velocity(x, t, loaded.encode_conditions(prepared), 2.0)
    assert torch.equal(a, b)
    assert torch.equal(policy.decode(x), loaded.decode(x))
    assert load_trainer_state(out)["step"] == 9
    via_config = build_policy(dataclasses.replace(cfg, checkpoint=out))
    assert torch.equal(via_config.codec.basis, policy.codec.basis)
    with pytest.raises(ValueError, match="width"):
        build_policy(dataclasses.replace(cfg, checkpoint=out, width=32))
    with pytest.raises(FileNotFoundError, match="policy.json"):
        load_policy(str(tmp_path / "missing"))


def _tiny_t5(path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    words = ["<pad>", "</s>", "<unk>", "a", "bell", "rings", "drum", "left", "right", "clean", "at", "the"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    T5EncoderModel(cfg).save_pretrained(path)


def test_transformers_text_encoder_loads_a_local_t5_frozen_and_checkpoints_without_it(tmp_path):
    t5_dir = str(tmp_path / "t5")
    _tiny_t5(t5_dir)
    cfg = tiny_cfg(text_encoder=TextEncoderConfig(kind="transformers", path=t5_dir, max_tokens_per_module=6))
    policy = randomize(build_policy(cfg)).eval()
    assert not any(p.requires_grad for p in policy.text.encoder.parameters())
    prepared, x, t = _inputs(policy)
    assert prepared["text_ids"][0, 0, :3].tolist() == [3, 2, 2]  # "a low hum": a, <unk>, <unk>
    assert prepared["text_mask"][0, 0].tolist() == [True] * 3 + [False] * 3
    cond = policy.encode_conditions(prepared)
    v = policy.velocity(x, t, cond)
    v.sum().backward()
    assert policy.text.proj.weight.grad is not None and policy.text.proj.weight.grad.abs().sum() > 0
    policy.train()
    assert not policy.text.encoder.training  # frozen encoder keeps dropout off
    out = str(tmp_path / "ckpt")
    save_policy(policy, cfg, out)
    from safetensors.torch import load_file

    assert not any(k.startswith("text.encoder.") for k in load_file(os.path.join(out, "model.safetensors")))
    loaded = load_policy(out).eval()
    policy.eval()
    with torch.no_grad():
        assert torch.equal(loaded.velocity(x, t, loaded.encode_conditions(prepared)), policy.velocity(x, t, cond))
    with pytest.raises(FileNotFoundError, match="policy.text_encoder.path"):
        build_policy(tiny_cfg(text_encoder=TextEncoderConfig(kind="transformers", path=str(tmp_path / "nope"))))
