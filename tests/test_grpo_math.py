"""GRPO maths against hand-computed numbers: advantages, PPO-clip, closed-form KL, the full loss."""
import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from actors.experience import TransitionBatch
from orchestrator.config.schema import GRPOConfig
from orchestrator.grpo.advantages import group_advantages
from orchestrator.grpo.loss import grpo_loss, kl_to_reference, ppo_clip_loss


# ----- advantages ----------------------------------------------------------------------------
def test_batch_std_advantages_match_hand_numbers():
    rewards = np.array([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    # group means 2 and 4; all six rewards have mean 3, population variance 8/6
    expected = np.array([[-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]) / (math.sqrt(8 / 6) + 1e-4)
    adv = group_advantages(rewards, "batch", eps=1e-4, clip=5.0)
    assert isinstance(adv, np.ndarray) and adv.shape == (2, 3)
    np.testing.assert_allclose(adv, expected, rtol=1e-6)


def test_group_std_advantages_and_constant_group_is_zero_not_nan():
    rewards = torch.tensor([[1.0, 2.0, 3.0], [4.0, 4.0, 4.0]])
    adv = group_advantages(rewards, "group", eps=1e-4, clip=5.0)
    assert isinstance(adv, torch.Tensor) and adv.dtype == torch.float32
    expected = torch.tensor([[-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    expected[0] /= math.sqrt(2 / 3) + 1e-4
    torch.testing.assert_close(adv, expected)
    flat = group_advantages(torch.full((3, 4), 0.7), "batch")
    assert torch.isfinite(flat).all() and (flat == 0).all()


def test_advantages_are_clipped_and_bad_input_is_named():
    # mean 0.75, std sqrt(3)/4: unclipped -sqrt(3) and 1/sqrt(3) (up to eps)
    adv = group_advantages(np.array([[0.0, 1.0, 1.0, 1.0]]), "group", eps=1e-4, clip=1.5)
    np.testing.assert_allclose(adv, [[-1.5] + [0.25 / (math.sqrt(3) / 4 + 1e-4)] * 3], rtol=1e-6)
    with pytest.raises(ValueError, match="std_mode"):
        group_advantages(np.zeros((2, 2)), "median")
    with pytest.raises(ValueError, match=r"prompt 1, member 0"):
        group_advantages(np.array([[0.0, 1.0], [np.nan, 1.0]]))


# ----- PPO-clip ------------------------------------------------------------------------------
def test_ppo_clip_loss_hand_numbers():
    logp = torch.log(torch.tensor([1.0, 1.5, 0.5]))
    old = torch.zeros(3)
    adv = torch.tensor([1.0, 1.0, -1.0])
    loss, clip_frac, approx_kl = ppo_clip_loss(logp, old, adv, clip_range=0.2)
    # rows: max(-1,-1)=-1; max(-1.5,-1.2)=-1.2; max(0.5,0.8)=0.8
    assert loss.item() == pytest.approx((-1.0 - 1.2 + 0.8) / 3, abs=1e-6)
    assert clip_frac.item() == pytest.approx(2 / 3)
    assert approx_kl.item() == pytest.approx(0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 3, rel=1e-5)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_ppo_gradient_step_moves_log_prob_with_the_advantage(sign):
    logp = torch.zeros(4, requires_grad=True)
    loss, _, _ = ppo_clip_loss(logp, torch.zeros(4), torch.full((4,), sign), clip_range=0.2)
    loss.backward()
    with torch.no_grad():
        stepped = logp - 0.1 * logp.grad
    assert (torch.sign(stepped) == sign).all()


def test_clipped_rows_get_no_gradient():
    logp = torch.log(torch.tensor([1.0, 1.5])).requires_grad_()
    loss, _, _ = ppo_clip_loss(logp, torch.zeros(2), torch.ones(2), clip_range=0.2)
    loss.backward()
    assert logp.grad[0].item() == pytest.approx(-0.5) and logp.grad[1].item() == 0.0


# ----- KL ------------------------------------------------------------------------------------
def test_kl_to_reference_hand_numbers():
    mean = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    ref = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    expected = torch.tensor([(1 / 2 + 4 / 2) / 2, (0 + 1 / 8) / 2])
    torch.testing.assert_close(kl_to_reference(mean, ref, torch.tensor([1.0, 2.0])), expected)
    torch.testing.assert_close(kl_to_reference(mean, ref, torch.tensor([[1.0], [2.0]])), expected)
    with pytest.raises(ValueError, match="differ"):
        kl_to_reference(mean, ref[:1], torch.ones(2))


# ----- the full loss, with a tiny Gaussian policy --------------------------------------------
class GaussPolicy(nn.Module):
    """mean = x + velocity * dt with a linear velocity; std = sigma * 0.5."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.embed = nn.Embedding(2, 3)

    def encode_conditions(self, inputs):
        return {"c": self.embed(inputs["label"])}


def gauss_log_prob(policy, cond, latents, next_latents, sigmas, sigmas_next, guidance_scale, noise_level):
    v = policy.lin(latents) + cond["c"]
    dt = (sigmas_next - sigmas)[:, None]
    mean = latents + v * dt
    std = (sigmas * noise_level)[:, None]
    lp = torch.distributions.Normal(mean, std).log_prob(next_latents).mean(dim=1)
    return lp, mean, std


def _batch(policy, adv):
    g = torch.Generator().manual_seed(0)
    m = len(adv)
    b = TransitionBatch(
        cond_inputs={"label": torch.tensor([0, 1] * (m // 2))},
        latents=torch.randn(m, 3, generator=g), next_latents=torch.randn(m, 3, generator=g),
        sigmas=torch.full((m,), 0.8), sigmas_next=torch.full((m,), 0.6), old_log_probs=torch.zeros(m),
        advantages=torch.tensor(adv), versions=torch.zeros(m, dtype=torch.long), clip_ids=[f"c{i}" for i in range(m)],
    )
    with torch.no_grad():
        b.old_log_probs = gauss_log_prob(policy, policy.encode_conditions(b.cond_inputs), b.latents, b.next_latents,
                                         b.sigmas, b.sigmas_next, 1.0, 0.5)[0]
    return b


def test_grpo_loss_is_ppo_plus_beta_kl_and_ref_gets_no_grad():
    torch.manual_seed(0)
    policy = GaussPolicy()
    ref = copy.deepcopy(policy)
    batch = _batch(policy, [1.0, -0.5, 2.0, 0.0])
    with torch.no_grad():
        policy.lin.bias.add_(0.1)  # policy drifts from the rollout and reference weights
    cfg = GRPOConfig(clip_range=0.2, kl_beta=0.5)
    loss, metrics = grpo_loss(policy, ref, batch, cfg, 1.0, 0.5, log_prob_fn=gauss_log_prob)
    lp, mean, std = gauss_log_prob(policy, policy.encode_conditions(batch.cond_inputs), batch.latents,
                                   batch.next_latents, batch.sigmas, batch.sigmas_next, 1.0, 0.5)
    ppo, _, _ = ppo_clip_loss(lp, batch.old_log_probs, batch.advantages, 0.2)
    # ref mean differs by bias*dt = 0.1*(-0.2) in every coordinate: KL = 0.02^2 / (2 * 0.4^2)
    kl = 0.02**2 / (2 * 0.4**2)
    assert metrics["kl"] == pytest.approx(kl, rel=1e-4)
    assert loss.item() == pytest.approx(ppo.item() + 0.5 * kl, rel=1e-5)
    assert set(metrics) == {"loss", "policy_loss", "kl", "clip_fraction", "approx_kl", "ratio_mean", "ref_forward_s"}
    assert math.isfinite(metrics["ref_forward_s"]) and metrics["ref_forward_s"] > 0  # kl_beta > 0: the reference ran
    loss.backward()
    assert policy.lin.weight.grad is not None and all(p.grad is None for p in ref.parameters())


def test_grpo_loss_step_raises_log_prob_of_positive_advantage_rows():
    torch.manual_seed(1)
    policy = GaussPolicy()
    batch = _batch(policy, [1.0, 1.0, -1.0, -1.0])
    opt = torch.optim.SGD(policy.parameters(), lr=0.05)
    loss, m = grpo_loss(policy, copy.deepcopy(policy), batch, GRPOConfig(clip_range=0.5, kl_beta=0.0), 1.0, 0.5,
                        log_prob_fn=gauss_log_prob)
    assert m["ratio_mean"] == pytest.approx(1.0) and m["clip_fraction"] == 0.0
    assert m["ref_forward_s"] == 0.0  # kl_beta = 0: no reference forward
    loss.backward()
    opt.step()
    with torch.no_grad():
        lp = gauss_log_prob(policy, policy.encode_conditions(batch.cond_inputs), batch.latents, batch.next_latents,
                            batch.sigmas, batch.sigmas_next, 1.0, 0.5)[0]
    delta = lp - batch.old_log_probs
    assert delta[:2].sum() > 0 and delta[2:].sum() < 0


def test_grpo_loss_with_the_builtin_policy_and_default_log_prob():
    from common.types import Clip
    from policies.config import PolicyConfig
    from policies.build import build_policy

    torch.manual_seed(0)
    cfg = PolicyConfig(duration_s=0.2, width=32, depth=1, heads=2, latent_channels=8, video_size=16)
    policy = build_policy(cfg)
    clip = Clip("c0", "train", np.zeros((4, 16, 16, 3), np.uint8), 12.5, np.zeros((2, 3200), np.float32), 16000,
                {"semantic": "a dog barks", "temporal": "", "aesthetic": "", "spatial": "left"})
    prepared = {k: torch.as_tensor(v).repeat(2, *[1] * (torch.as_tensor(v).ndim - 1))
                for k, v in policy.prepare([clip]).items()}
    shape = (2, *policy.latent_shape())
    batch = TransitionBatch(
        cond_inputs=prepared, latents=torch.randn(shape), next_latents=torch.randn(shape),
        sigmas=torch.tensor([0.9, 0.8]), sigmas_next=torch.tensor([0.8, 0.7]), old_log_probs=torch.zeros(2),
        advantages=torch.tensor([1.0, -3.0]), versions=torch.zeros(2, dtype=torch.long), clip_ids=["c0", "c0"],
    )
    from policies.rollout import transition_log_prob

    with torch.no_grad():
        batch.old_log_probs = transition_log_prob(policy, policy.encode_conditions(prepared), batch.latents,
                                                  batch.next_latents, batch.sigmas, batch.sigmas_next, 2.0, 0.7)[0]
    loss, m = grpo_loss(policy, copy.deepcopy(policy), batch, GRPOConfig(), guidance_scale=2.0, noise_level=0.7)
    # on-policy and identical reference: ratio 1, KL 0, loss = -mean(A)
    assert m["ratio_mean"] == pytest.approx(1.0, abs=1e-5) and m["kl"] == pytest.approx(0.0, abs=1e-10)
    assert loss.item() == pytest.approx(1.0, abs=1e-4)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())


def test_snr_difference_se_is_paired_and_sized_like_the_spread_of_independent_measurements():
    from orchestrator.grpo.snr import gradient_snr, snr_difference_se

    rng = np.random.default_rng(0)
    k, p = 64, 400
    signal = np.zeros(p)
    signal[:40] = 0.3
    diffs, ses = [], []
    for _ in range(60):
        noise = rng.standard_normal((k, p))
        a = signal + noise  # the same groups seen through two parameter sets: b drops half the noise coordinates
        b = a[:, : p // 2]
        d, se = snr_difference_se(a @ a.T, b @ b.T)
        assert np.isclose(d, gradient_snr(a, 0).snr_per_group - gradient_snr(b, 0).snr_per_group)
        diffs.append(d)
        ses.append(se)
    assert 0.6 < np.mean(ses) / np.std(diffs) < 1.5  # the jackknife s.e. matches the difference's real spread
    assert np.mean(diffs) < -3 * np.std(diffs) / np.sqrt(len(diffs))  # b's SNR is higher (less noise, same signal)
    same = rng.standard_normal((k, p))
    assert snr_difference_se(same @ same.T, same @ same.T) == (0.0, 0.0)  # a set against itself: no difference
    with pytest.raises(ValueError, match="Gram"):
        snr_difference_se(np.eye(4), np.eye(5))
