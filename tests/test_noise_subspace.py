"""SDE noise on a subspace of latent channels (`sampler.noise_channels`): the mask, the exact Gaussian
log-prob over the chosen channels, the ODE limits, and a tiny policy's rollout."""
import dataclasses

import pytest
import torch

from policies.build import build_policy
from policies.config import SamplerConfig
from policies.noise_subspace import noise_channel_mask, policy_noise_mask
from policies.rollout import expand_conditions, rollout_group, transition_log_prob
from policies.sampling import ode_step, sde_log_prob, sde_step
from test_policy_fixtures import make_clip, one_thread, randomize, tiny_cfg  # noqa: F401

PARAMS = ("ITD", "ILD", "gate")


def test_mask_names_parameter_channels_and_leading_pca_components():
    assert noise_channel_mask("all", 32, PARAMS) is None
    m = noise_channel_mask("params,pca:3", 32, PARAMS)
    assert m.tolist() == [i in (0, 1, 2, 29, 30, 31) for i in range(32)]
    assert torch.nonzero(noise_channel_mask("ILD", 32, PARAMS)).flatten().tolist() == [30]
    assert torch.nonzero(noise_channel_mask("ITD, gate", 32, PARAMS)).flatten().tolist() == [29, 31]
    assert not noise_channel_mask("pca:0", 32, PARAMS).any()
    # a leading `-` removes what the tokens before it named
    assert torch.nonzero(noise_channel_mask("params,-ITD,-ILD", 32, PARAMS)).flatten().tolist() == [31]
    assert torch.nonzero(noise_channel_mask("pca:4,-pca:2,ILD", 32, PARAMS)).flatten().tolist() == [2, 3, 30]
    with pytest.raises(ValueError, match="'-loudness'"):
        noise_channel_mask("params,-loudness", 32, PARAMS)
    with pytest.raises(ValueError, match="'loudness'"):
        noise_channel_mask("loudness", 32, PARAMS)
    with pytest.raises(ValueError, match="pca:30"):
        noise_channel_mask("pca:30", 32, PARAMS)
    with pytest.raises(ValueError, match="no parameter channels"):
        noise_channel_mask("params", 32, ())


def _step_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x, v = torch.randn(3, 5, 8, generator=g), torch.randn(3, 5, 8, generator=g)
    noise = torch.randn(3, 5, 8, generator=g)
    return x, v, noise, torch.tensor([0.9, 0.7, 0.5]), torch.tensor([0.8, 0.6, 0.4])


def test_log_prob_is_the_gaussian_density_over_the_chosen_channels_and_euler_elsewhere():
    x, v, noise, s, s_next = _step_inputs()
    mask = torch.tensor([True, False, False, True, False, False, False, True])
    step = sde_step(x, v, s, s_next, 0.7, noise=noise, mask=mask)
    full = sde_step(x, v, s, s_next, 0.7, noise=noise)
    euler = ode_step(x, v, s, s_next)
    assert torch.equal(step.x_next[..., ~mask], euler[..., ~mask])
    assert torch.allclose(step.x_next[..., mask], full.x_next[..., mask], atol=1e-6)
    density = torch.distributions.Normal(full.mean[..., mask], full.std).log_prob(step.x_next[..., mask])
    assert torch.allclose(step.log_prob, density.mean(dim=(1, 2)), atol=1e-5)
    lp, mean_sub, std = sde_log_prob(x, step.x_next, v, s, s_next, 0.7, mask)
    assert torch.allclose(lp, step.log_prob, atol=1e-6) and mean_sub.shape == (3, 5, 3)
    assert torch.equal(mean_sub, step.mean[..., mask])


@pytest.mark.parametrize("noise_level, mask", [(0.0, torch.ones(8, dtype=torch.bool)), (0.7, torch.zeros(8, dtype=torch.bool))])
def test_zero_noise_level_or_an_empty_subspace_is_the_ode_step(noise_level, mask):
    x, v, noise, s, s_next = _step_inputs(1)
    step = sde_step(x, v, s, s_next, noise_level, noise=noise, mask=mask)
    assert torch.equal(step.x_next, ode_step(x, v, s, s_next)) and torch.equal(step.log_prob, torch.zeros(3))
    lp, _, _ = sde_log_prob(x, step.x_next, v, s, s_next, noise_level, mask)
    assert torch.equal(lp, torch.zeros(3))


def test_rollout_explores_only_the_chosen_channels_and_the_learner_recomputes_its_log_prob(one_thread):
    torch.manual_seed(0)
    policy = randomize(build_policy(tiny_cfg())).eval()
    sampler = SamplerConfig(num_steps=4, guidance_scale=2.0, noise_level=0.7, window=2, noise_channels="params,pca:2")
    mask = policy_noise_mask(policy, sampler.noise_channels)
    assert int(mask.sum()) == 5
    prepared = policy.prepare([make_clip(0)])
    res = rollout_group(policy, prepared, 3, sampler, [0, 1], torch.Generator().manual_seed(2))
    rec = res.records
    spread = (rec.next_latents[:, 0] - rec.next_latents[:1, 0]).abs().amax(dim=(0, 1))  # members share step 0's input
    assert (spread[~mask] == 0).all() and (spread[mask] > 0).all()
    cond = expand_conditions(policy.encode_conditions(prepared), 3)
    lp, mean, _ = transition_log_prob(policy, cond, rec.latents, rec.next_latents, rec.sigmas, rec.sigmas_next,
                                      sampler.guidance_scale, sampler.noise_level, sampler.noise_channels)
    assert (lp - rec.log_probs).abs().max() < 1e-5 and mean.shape[-1] == 5
    everywhere = rollout_group(policy, prepared, 3, dataclasses.replace(sampler, noise_channels="all"), [0, 1],
                               torch.Generator().manual_seed(2))
    assert (everywhere.records.next_latents[:, 0] - everywhere.records.next_latents[:1, 0]).abs().amax(dim=(0, 1)).min() > 0
