"""DiffusionNFT's maths (orchestrator/nft/loss.py, policies/forward_draws.py) and its experience rows."""
from __future__ import annotations

import copy

import pytest
import torch

from actors.experience import concat
from actors.experience_builder import assemble_clean_samples, assemble_transitions
from orchestrator.config.schema import NFTConfig
from orchestrator.nft.loss import nft_loss, nft_objective, optimality, velocity_kl
from policies.build import build_policy
from policies.config import SamplerConfig
from policies.forward_draws import forward_draws, noised, stratified_times
from policies.rollout import expand_conditions, rollout_group
from test_policy_fixtures import make_clip, one_thread, randomize, tiny_cfg  # noqa: F401


def test_optimality_hand_numbers_and_clipping():
    r = optimality(torch.tensor([-4.0, -1.0, 0.0, 1.0, 4.0]), 2.0)
    assert torch.allclose(r, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    with pytest.raises(ValueError, match="nft.adv_scale"):
        optimality(torch.zeros(1), 0.0)


def test_objective_hand_numbers_and_its_gradient_at_the_rollout_policy():
    u = torch.tensor([[1.0, -1.0]])
    v_old = torch.tensor([[0.5, 0.5]])
    # at v = v_old both implicit policies are v_old: the objective is |v_old - u|^2 whatever r
    for r in (0.0, 0.3, 1.0):
        assert nft_objective(v_old, v_old, u, torch.tensor([r]), 1.0).item() == pytest.approx((0.25 + 2.25) / 2)
    # r = 1, beta = 1: plain flow matching of v towards the sample
    v = torch.tensor([[2.0, 0.0]])
    assert nft_objective(v, v_old, u, torch.tensor([1.0]), 1.0).item() == pytest.approx((1.0 + 1.0) / 2)
    # gradient at v = v_old: 2 beta (2r - 1) (v - u) / D
    beta, r = 0.7, torch.tensor([0.9])
    x = v_old.clone().requires_grad_(True)
    nft_objective(x, v_old, u, r, beta).sum().backward()
    assert torch.allclose(x.grad, 2 * beta * (2 * r - 1) * (v_old - u) / 2)
    with pytest.raises(ValueError, match="nft.beta"):
        nft_objective(v, v_old, u, r, 0.0)
    with pytest.raises(ValueError, match="must match"):
        nft_objective(v, v_old[:, :1], u, r, 1.0)


def _group(policy, g=3, draws=2, seed=0):
    prepared = policy.prepare([make_clip(0)])
    gen = torch.Generator().manual_seed(seed)
    sampler = SamplerConfig(num_steps=3, schedule="flow_grpo", noise_level=0.0)
    res = rollout_group(policy, prepared, g, sampler, [], gen)
    cond = expand_conditions(policy.encode_conditions(prepared), g)
    return res, forward_draws(policy, cond, res.latents_final, draws, gen), prepared


def test_forward_draws_are_shared_by_the_members_and_record_the_policy_velocity():
    policy = randomize(build_policy(tiny_cfg())).eval()
    res, draws, prepared = _group(policy)
    again = _group(policy)[1]
    assert torch.equal(draws.noise, again.noise) and torch.equal(draws.old_velocity, again.old_velocity)
    assert draws.noise.shape == (2, *policy.latent_shape()) and draws.old_velocity.shape == (3, 2, *policy.latent_shape())
    assert torch.all((draws.times > 0) & (draws.times < 1))
    x_t = noised(res.latents_final, draws.noise[1].expand(3, *policy.latent_shape()), draws.times[1].expand(3))
    with torch.no_grad():
        v = policy.velocity(x_t, draws.times[1].expand(3), expand_conditions(policy.encode_conditions(prepared), 3))
    assert torch.allclose(draws.old_velocity[:, 1], v, atol=1e-6)
    with pytest.raises(ValueError, match="nft.draws"):
        forward_draws(policy, {}, res.latents_final, 0, torch.Generator())


def test_clean_sample_rows_and_a_step_moves_towards_the_better_member():
    policy = randomize(build_policy(tiny_cfg())).eval()
    res, draws, prepared = _group(policy)
    payload = {"records": res.records, "prepared": prepared, "draws": draws}
    batch = assemble_clean_samples(payload, [1.5, -1.5, 0.0], version=4, clip_id="c0")
    assert len(batch) == 6 and batch.clip_ids == ["c0"] * 6 and torch.all(batch.versions == 4)
    assert torch.equal(batch.noise[0], batch.noise[2]) and torch.equal(batch.noise[1], batch.noise[5])  # shared draws
    assert torch.equal(batch.clean_latents[0], batch.clean_latents[1])  # member-major rows
    assert batch.advantages.tolist() == [1.5, 1.5, -1.5, -1.5, 0.0, 0.0]
    with pytest.raises(ValueError, match="2 advantages for a group of 3"):
        assemble_clean_samples(payload, [1.0, -1.0], 0, "c0")
    with pytest.raises(ValueError, match="different formats"):
        concat([batch, assemble_transitions(payload, [0.0, 0.0, 0.0], 0, "c0")])
    # The loss at the rollout weights equals the plain FM error; one SGD step lowers member 0's
    # flow-matching error (advantage > 0) and raises member 1's (advantage < 0).
    cfg = NFTConfig(beta=1.0, draws=2, adv_scale=2.0)
    policy.train()
    loss, metrics = nft_loss(policy, None, batch, cfg)
    assert metrics["loss"] == pytest.approx(metrics["fm_loss"], rel=1e-5) and metrics["ref_forward_s"] == 0.0

    def member_errors():
        with torch.no_grad():
            cond = policy.encode_conditions(batch.cond_inputs)
            v = policy.velocity(noised(batch.clean_latents, batch.noise, batch.times), batch.times, cond)
            err = (v - (batch.noise - batch.clean_latents)).pow(2).reshape(3, 2, -1).mean((1, 2))
        return err

    before = member_errors()
    opt = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.05)
    opt.zero_grad()
    loss.backward()
    opt.step()
    change = (member_errors() - before).numpy()
    assert change[0] < 0 < change[1], change
    with pytest.raises(TypeError, match="CleanSampleBatch"):
        nft_loss(policy, None, assemble_transitions(payload, [0.0, 0.0, 0.0], 0, "c0"), cfg)


def test_draw_times_are_stratified_over_the_time_range():
    gen = torch.Generator().manual_seed(3)
    for lo, hi, j in ((0.0, 1.0, 8), (0.5, 1.0, 4), (0.2, 0.3, 5)):
        t = stratified_times(j, [lo, hi], gen)
        edges = lo + (hi - lo) * torch.arange(j + 1) / j
        assert t.shape == (j,) and torch.all((t >= edges[:-1]) & (t < edges[1:])), (t, edges)  # one draw a slice
    many = torch.stack([stratified_times(4, [0.5, 1.0], gen) for _ in range(2000)])
    assert abs(float(many.mean()) - 0.75) < 0.01  # uniform over the range on average
    for bad in ([0.5, 0.5], [0.6, 0.4], [-0.1, 1.0], [0.0, 1.5], [0.2]):
        with pytest.raises(ValueError, match="nft.time_range"):
            stratified_times(4, bad, gen)
    policy = randomize(build_policy(tiny_cfg())).eval()
    res = _group(policy)[0]
    cond = expand_conditions(policy.encode_conditions(policy.prepare([make_clip(0)])), 3)
    draws = forward_draws(policy, cond, res.latents_final, 4, torch.Generator().manual_seed(1), (0.5, 1.0))
    assert torch.all(draws.times >= 0.5) and torch.all(draws.times < 1.0)
    assert torch.equal(draws.times.argsort(), torch.arange(4))


def test_channel_mask_trains_only_the_named_channels():
    gen = torch.Generator().manual_seed(0)
    v_old, u = torch.randn(2, 5, 6, generator=gen), torch.randn(2, 5, 6, generator=gen)
    mask = torch.tensor([False, True, False, False, True, True])
    r = torch.tensor([0.9, 0.2])
    v = (v_old + 0.1 * torch.randn(2, 5, 6, generator=gen)).requires_grad_(True)
    masked = nft_objective(v, v_old, u, r, 0.7, mask)
    assert torch.allclose(masked, nft_objective(v[..., mask], v_old[..., mask], u[..., mask], r, 0.7))
    masked.sum().backward()
    assert torch.all(v.grad[..., ~mask] == 0) and torch.all(v.grad[..., mask] != 0)
    # through the learner's loss: nft.channels selects the channels, and a bad spec names the field
    policy = randomize(build_policy(tiny_cfg())).eval()
    res, draws, prepared = _group(policy)
    batch = assemble_clean_samples({"records": res.records, "prepared": prepared, "draws": draws},
                                   [1.0, -1.0, 0.0], version=0, clip_id="c0")
    with torch.no_grad():
        cond = policy.encode_conditions(batch.cond_inputs)
        v = policy.velocity(noised(batch.clean_latents, batch.noise, batch.times), batch.times, cond)
        fm_first4 = (v - (batch.noise - batch.clean_latents))[..., :4].pow(2).mean()
    loss, _ = nft_loss(policy, None, batch, NFTConfig(draws=2, channels="pca:4"))
    assert float(loss.detach()) == pytest.approx(float(fm_first4), rel=1e-5)  # at v = v_old: the FM error on those channels
    with pytest.raises(ValueError, match="nft.channels: unknown token 'bands'"):
        nft_loss(policy, None, batch, NFTConfig(draws=2, channels="bands"))


def test_velocity_kl_is_zero_at_the_reference_and_pulls_a_moved_policy_back():
    assert velocity_kl(torch.ones(2, 3, 4), torch.ones(2, 3, 4)).tolist() == [0.0, 0.0]
    assert velocity_kl(torch.zeros(1, 2, 2), torch.tensor([[[1.0, 2.0], [0.0, 1.0]]])).tolist() == [1.5]
    second = torch.tensor([False, True])  # nft.kl_channels: only the channels named count
    assert velocity_kl(torch.zeros(1, 2, 2), torch.tensor([[[1.0, 2.0], [0.0, 1.0]]]), second).tolist() == [2.5]
    with pytest.raises(ValueError, match="ref_velocity"):
        velocity_kl(torch.zeros(1, 2), torch.zeros(2, 2))
    policy = randomize(build_policy(tiny_cfg())).eval()
    reference = copy.deepcopy(policy).requires_grad_(False)
    res, draws, prepared = _group(policy)
    batch = assemble_clean_samples({"records": res.records, "prepared": prepared, "draws": draws},
                                   [1.0, -1.0, 0.0], version=0, clip_id="c0")
    plain, _ = nft_loss(policy, None, batch, NFTConfig(draws=2))
    with_kl, metrics = nft_loss(policy, reference, batch, NFTConfig(draws=2, kl_beta=3.0))
    assert metrics["kl"] == 0.0 and metrics["ref_forward_s"] > 0  # at the reference the term is 0 ...
    assert float(with_kl) == pytest.approx(float(plain), rel=1e-6)
    with torch.no_grad():  # ... and once the policy has moved, a step on it alone moves it back
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    kl_only = NFTConfig(draws=2, kl_beta=1.0, adv_scale=1e9)  # r = 0.5: the NFT term is the trust region only
    before = nft_loss(policy, reference, batch, kl_only)[1]["kl"]
    loss, _ = nft_loss(policy, reference, batch, kl_only)
    opt = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.05)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert 0 < nft_loss(policy, reference, batch, kl_only)[1]["kl"] < before
    gate_only = nft_loss(policy, reference, batch, NFTConfig(draws=2, kl_beta=1.0, kl_channels="gate"))[1]["kl"]
    assert 0 < gate_only != before
    with pytest.raises(ValueError, match="nft.kl_channels: unknown token 'bands'"):
        nft_loss(policy, reference, batch, NFTConfig(draws=2, kl_beta=1.0, kl_channels="bands"))
    with pytest.raises(ValueError, match="nft.kl_beta"):
        nft_loss(policy, reference, batch, NFTConfig(draws=2, kl_beta=-1.0))
