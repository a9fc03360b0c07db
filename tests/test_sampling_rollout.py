"""Group rollouts on a tiny policy: shared Fast-GRPO prefix, exact log-prob recomputation, gradients."""
import dataclasses

import pytest
import torch

from policies.config import SamplerConfig
from policies.build import build_policy
from policies.rollout import expand_conditions, rollout_group, transition_log_prob
from test_policy_fixtures import make_clip, one_thread, randomize, tiny_cfg  # noqa: F401

SAMPLER = SamplerConfig(num_steps=6, guidance_scale=2.0, noise_level=0.7, schedule="fast_grpo", window=2)


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return randomize(build_policy(tiny_cfg())).eval()


def test_fast_grpo_members_share_the_prefix_bit_for_bit_and_differ_after_the_window(policy):
    prepared = policy.prepare([make_clip(0)])
    res = rollout_group(policy, prepared, 4, SAMPLER, [2, 3], torch.Generator().manual_seed(0))
    rec = res.records
    assert rec.latents.shape == (4, 2, *policy.latent_shape()) and rec.log_probs.shape == (4, 2)
    assert rec.step_indices.tolist() == [2, 3] and torch.allclose(rec.sigmas_next, rec.sigmas - 1 / 6)
    first = rec.latents[:, 0]
    assert all(torch.equal(first[0], first[g]) for g in range(1, 4))  # branched only at the window start
    assert not torch.equal(rec.next_latents[0, 0], rec.next_latents[1, 0])
    assert torch.equal(rec.latents[:, 1], rec.next_latents[:, 0])  # consecutive window steps chain
    final = res.latents_final
    assert all((final[0] - final[g]).abs().max() > 1e-3 for g in range(1, 4))
    assert len(res.waveforms) == 4 and res.waveforms[0].shape == (2, 16000)
    again = rollout_group(policy, prepared, 4, SAMPLER, [2, 3], torch.Generator().manual_seed(0))
    assert torch.equal(again.latents_final, final)  # deterministic given the generator


def test_flow_grpo_members_start_from_their_own_noise(policy):
    cfg = dataclasses.replace(SAMPLER, schedule="flow_grpo")
    res = rollout_group(policy, policy.prepare([make_clip(1)]), 3, cfg, list(range(6)), torch.Generator().manual_seed(1))
    assert res.records.latents.shape[1] == 6
    assert not torch.equal(res.records.latents[0, 0], res.records.latents[1, 0])


def test_recomputed_log_probs_match_sampling_time_and_carry_gradients_to_the_weights(policy):
    prepared = policy.prepare([make_clip(0)])
    res = rollout_group(policy, prepared, 3, SAMPLER, [1, 2], torch.Generator().manual_seed(3))
    assert not res.records.log_probs.requires_grad and not res.latents_final.requires_grad
    assert all(p.grad is None for p in policy.parameters())
    rec = res.records
    cond = expand_conditions(policy.encode_conditions(prepared), 3)
    lp, mean, std = transition_log_prob(policy, cond, rec.latents, rec.next_latents, rec.sigmas, rec.sigmas_next,
                                        SAMPLER.guidance_scale, SAMPLER.noise_level)
    assert lp.shape == (3, 2) and std.shape == (3, 2, 1, 1)
    assert (lp - rec.log_probs).abs().max() < 1e-5
    assert (mean - rec.means).abs().max() < 1e-5
    # one transition per sample, the learner's minibatch layout
    lp1, _, _ = transition_log_prob(policy, cond, rec.latents[:, 1], rec.next_latents[:, 1],
                                    rec.sigmas[1].expand(3), rec.sigmas_next[1].expand(3), 2.0, 0.7)
    assert (lp1 - rec.log_probs[:, 1]).abs().max() < 1e-5
    lp.sum().backward()
    grads = {n: p.grad for n, p in policy.named_parameters() if p.requires_grad}
    assert all(g is not None for g in grads.values())
    assert grads["final.linear.weight"].abs().sum() > 0 and grads["blocks.0.attn.q.weight"].abs().sum() > 0
    assert grads["text.embed.weight"].abs().sum() > 0 and grads["video.proj.weight"].abs().sum() > 0
    policy.zero_grad(set_to_none=True)


def test_a_rollout_needs_the_inputs_of_exactly_one_clip(policy):
    with pytest.raises(ValueError, match="ONE clip"):
        rollout_group(policy, policy.prepare([make_clip(0), make_clip(1)]), 2, SAMPLER, [0, 1],
                      torch.Generator().manual_seed(0))


def test_a_group_without_sde_steps_gives_each_member_its_own_noise_the_first_as_a_group_of_one(policy):
    """Validation samples a clip's `train.val_samples` noises as one such group (any schedule)."""
    prepared = policy.prepare([make_clip(2)])
    three = rollout_group(policy, prepared, 3, SAMPLER, [], torch.Generator().manual_seed(5))
    one = rollout_group(policy, prepared, 1, SAMPLER, [], torch.Generator().manual_seed(5))
    final = three.latents_final
    assert all((final[0] - final[g]).abs().max() > 1e-3 for g in range(1, 3))
    assert torch.allclose(final[0], one.latents_final[0], atol=1e-5)
    assert three.records.latents.shape[1] == 0
