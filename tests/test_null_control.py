"""The null control (`grpo.null_control`): shuffled (across or within groups) or zero advantages, and on the tiny config a zero-advantage
learner step that changes no weight beyond what AdamW's weight decay does."""
import copy

import numpy as np
import pytest
import torch

from actors.experience import TransitionBatch
from orchestrator.config import load_config
from orchestrator.grpo.advantages import group_advantages, null_control_advantages
from orchestrator.grpo.loss import grpo_loss
from policies.build import build_policy
from policies.rollout import rollout_group
from test_policy_fixtures import make_clip, one_thread, randomize  # noqa: F401


def test_zero_and_shuffle_keep_the_batch_but_not_the_reward():
    adv = group_advantages(np.arange(12, dtype=np.float64).reshape(3, 4) ** 1.5)
    assert null_control_advantages(adv, "none", np.random.default_rng(0)) is adv
    assert not null_control_advantages(adv, "zero", np.random.default_rng(0)).any()
    a = null_control_advantages(adv, "shuffle", np.random.default_rng(0))
    b = null_control_advantages(adv, "shuffle", np.random.default_rng(0))
    assert np.array_equal(a, b) and a.shape == adv.shape
    assert np.allclose(np.sort(a.ravel()), np.sort(adv.ravel()))  # the same values ...
    assert not np.allclose(a.sum(axis=1), 0.0)  # ... across groups: no longer centred within each group
    with pytest.raises(ValueError, match="grpo.null_control"):
        null_control_advantages(adv, "flip", np.random.default_rng(0))


def test_shuffle_in_group_permutes_each_group_among_its_kept_members():
    adv = group_advantages(np.arange(24, dtype=np.float64).reshape(3, 8) ** 1.5)
    keep = np.ones(adv.shape, bool)
    keep[1, [2, 5]] = False
    kept_adv = np.where(keep, adv, 0.0)
    a = null_control_advantages(kept_adv, "shuffle_in_group", np.random.default_rng(0), keep)
    assert np.array_equal(a, null_control_advantages(kept_adv, "shuffle_in_group", np.random.default_rng(0), keep))
    for row in range(3):  # each group keeps its own values, so its sum (the trained run's) ...
        assert np.allclose(np.sort(a[row][keep[row]]), np.sort(kept_adv[row][keep[row]]))
        assert np.isclose(a[row].sum(), kept_adv[row].sum())
    assert not a[1, [2, 5]].any()  # ... and a dropped member stays at 0
    assert not np.allclose(a, kept_adv)  # ... but the values have moved between members
    with pytest.raises(ValueError, match="keep"):
        null_control_advantages(adv, "shuffle_in_group", np.random.default_rng(0), keep[:2])


def test_config_accepts_the_null_modes_and_names_a_bad_one():
    from orchestrator.config.load import ConfigError

    assert load_config("tiny", ["grpo.null_control=shuffle"]).grpo.null_control == "shuffle"
    assert load_config("tiny", ["grpo.null_control=shuffle_in_group"]).grpo.null_control == "shuffle_in_group"
    with pytest.raises(ConfigError, match="grpo.null_control"):
        load_config("tiny", ["grpo.null_control=flip"])


def test_zero_advantages_change_no_weight_beyond_weight_decay_on_the_tiny_config():
    cfg = load_config("tiny", ["grpo.null_control=zero"])
    torch.manual_seed(0)
    policy = randomize(build_policy(cfg.policy))
    reference = copy.deepcopy(policy).requires_grad_(False)
    prepared = policy.prepare([make_clip(0)])
    with torch.no_grad():
        res = rollout_group(policy, prepared, 4, cfg.sampler, [1, 2], torch.Generator().manual_seed(1))
    rec = res.records
    adv = null_control_advantages(np.array([[1.0, -1.0, 0.5, -0.5]]), cfg.grpo.null_control, np.random.default_rng(0))
    batch = TransitionBatch(
        cond_inputs={k: torch.as_tensor(v).repeat_interleave(8, 0) for k, v in prepared.items()},
        latents=rec.latents.flatten(0, 1), next_latents=rec.next_latents.flatten(0, 1),
        sigmas=rec.sigmas.repeat(4), sigmas_next=rec.sigmas_next.repeat(4), old_log_probs=rec.log_probs.flatten(),
        advantages=torch.as_tensor(adv, dtype=torch.float32).repeat_interleave(2, 1).flatten(),
        versions=torch.zeros(8, dtype=torch.long), clip_ids=["clip0"] * 8)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    # the learner's optimizer (actors/learner_rank.py): AdamW on the trainable parameters
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.grpo.lr,
                            weight_decay=cfg.grpo.weight_decay)
    assert cfg.grpo.kl_beta > 0  # the KL term is live: at the reference its gradient is exactly zero
    loss, metrics = grpo_loss(policy, reference, batch, cfg.grpo, cfg.sampler.guidance_scale, cfg.sampler.noise_level)
    loss.backward()
    opt.step()
    assert metrics["kl"] == 0.0 and metrics["ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    decay = 1.0 - cfg.grpo.lr * cfg.grpo.weight_decay
    for name, p in policy.named_parameters():
        assert torch.allclose(p.detach(), before[name] * decay, rtol=0, atol=1e-9), name
    # shuffled advantages of the same batch do move the weights: the check above can fail
    batch.advantages = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.5, 0.5, -0.5, -0.5])
    opt.zero_grad()
    loss, _ = grpo_loss(policy, reference, batch, cfg.grpo, cfg.sampler.guidance_scale, cfg.sampler.noise_level)
    loss.backward()
    moved = {n: p.detach().clone() for n, p in policy.named_parameters()}
    opt.step()
    assert any(not torch.allclose(p.detach(), moved[n] * decay, rtol=0, atol=1e-9) for n, p in policy.named_parameters())
