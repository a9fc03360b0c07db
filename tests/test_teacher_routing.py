"""Each teacher's share of the advantage (orchestrator/grpo/teacher_parts.py) and its routing to the
latent channels that teacher reads under DiffusionNFT (`nft.teacher_channels`, orchestrator/nft/routing.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from actors.experience import concat
from actors.experience_builder import GroupExperience, assemble_clean_samples
from common.types import TEACHERS
from orchestrator.config.schema import NFTConfig
from orchestrator.grpo.advantages import group_advantages, null_control_advantages
from orchestrator.grpo.teacher_parts import teacher_advantage_parts
from orchestrator.nft.loss import nft_loss, nft_objective
from orchestrator.nft.optimality import optimality, routed_optimality
from orchestrator.nft.routing import teacher_routes
from policies.build import build_policy
from rewards.combine import combine_grades
from test_nft_math import _group
from test_policy_fixtures import randomize, tiny_cfg

WEIGHTS = {"semantic": 1.0, "timing": 0.6, "aesthetic": 0.1, "spatial": 0.4}


def _grades(seed: int = 0, p: int = 3, g: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"semantic": rng.uniform(0, 1, (p, g)), "timing": rng.uniform(0, 0.5, (p, g)),
            "aesthetic": rng.uniform(0, 1, (p, g)), "spatial": -2.5 * rng.uniform(0, 1, (p, g)) ** 2}


@pytest.mark.parametrize("combine", ["sum_then_normalize", "normalize_then_sum"])
@pytest.mark.parametrize("std_mode", ["batch", "group"])
def test_parts_sum_to_the_group_advantage_of_the_combined_reward(combine, std_mode):
    grades = _grades()
    expected = group_advantages(combine_grades(grades, WEIGHTS, combine), std_mode, 1e-4, 5.0)
    adv, parts = teacher_advantage_parts(grades, WEIGHTS, TEACHERS, combine, std_mode, 1e-4, 5.0)
    assert parts.shape == (3, 8, 4)
    np.testing.assert_allclose(adv, expected, atol=1e-12)
    np.testing.assert_allclose(parts.sum(-1), expected, atol=1e-12)
    np.testing.assert_allclose(parts.sum(1), 0.0, atol=1e-12)  # each teacher's part is centred in its group
    if combine == "sum_then_normalize" and std_mode == "batch":  # by hand: w_t (r_t - group mean) / (batch std + eps)
        total = combine_grades(grades, WEIGHTS)
        r = grades["spatial"]
        np.testing.assert_allclose(parts[..., 3], 0.4 * (r - r.mean(1, keepdims=True)) / (total.std() + 1e-4), atol=1e-12)


def test_parts_follow_the_clip_and_a_zero_weight_teacher_gets_none():
    grades = _grades(1)
    adv, parts = teacher_advantage_parts(grades, {**WEIGHTS, "aesthetic": 0.0}, TEACHERS, clip=0.5)
    assert np.abs(adv).max() == pytest.approx(0.5) and np.all(parts[..., 2] == 0)
    np.testing.assert_allclose(parts.sum(-1), adv, atol=1e-12)
    expected = group_advantages(combine_grades(grades, {**WEIGHTS, "aesthetic": 0.0}), "batch", 1e-4, 0.5)
    np.testing.assert_allclose(adv, expected, atol=1e-12)
    # two teachers that cancel in the total keep their (opposite) parts: routed apart, both still teach
    both = {t: np.zeros((1, 4)) for t in TEACHERS}
    both["semantic"] = np.array([[0.0, 1.0, 0.0, 1.0]])
    both["spatial"] = -2.5 * both["semantic"]
    adv, parts = teacher_advantage_parts(both, WEIGHTS, TEACHERS)
    assert np.all(adv == 0) and np.all(parts[..., 0] != 0) and np.allclose(parts[..., 0], -parts[..., 3])
    with pytest.raises(ValueError, match="no grades for teacher 'timing'"):
        teacher_advantage_parts({"semantic": both["semantic"]}, WEIGHTS, TEACHERS)
    bad = dict(both, aesthetic=np.array([[0.0, np.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"'aesthetic' grade at \[prompt 0, member 1\] is not finite"):
        teacher_advantage_parts(bad, WEIGHTS, TEACHERS)


def test_null_controls_move_a_members_parts_with_its_advantage():
    adv, parts = teacher_advantage_parts(_grades(2), WEIGHTS, TEACHERS)
    values = np.concatenate([adv[..., None], parts], -1)
    for mode in ("shuffle", "shuffle_in_group"):
        out = null_control_advantages(values, mode, np.random.default_rng(4))
        np.testing.assert_allclose(out[..., 1:].sum(-1), out[..., 0], atol=1e-12)  # rows stay whole
        # the advantage column is permuted exactly as the plain [P, G] null control permutes it
        np.testing.assert_array_equal(out[..., 0], null_control_advantages(adv, mode, np.random.default_rng(4)))
    assert np.all(null_control_advantages(values, "zero", np.random.default_rng(0)) == 0)


def test_full_routes_reproduce_the_plain_optimality_and_per_channel_r_broadcasts_over_frames():
    parts = torch.tensor([[0.5, -0.2, 0.1, 0.4], [-1.0, 0.3, 0.0, -2.0]])
    routes = torch.ones(4, 6, dtype=torch.bool)
    r = routed_optimality(parts, routes, 2.0)
    assert r.shape == (2, 6) and torch.allclose(r, optimality(parts.sum(1), 2.0)[:, None].expand(2, 6))
    gen = torch.Generator().manual_seed(0)
    v_old, u = torch.randn(2, 5, 6, generator=gen), torch.randn(2, 5, 6, generator=gen)
    v = v_old + 0.1 * torch.randn(2, 5, 6, generator=gen)
    assert torch.allclose(nft_objective(v, v_old, u, r, 0.7), nft_objective(v, v_old, u, r[:, 0], 0.7))
    with pytest.raises(ValueError, match="per-channel r"):
        nft_objective(v, v_old, u, r[:, :5], 0.7)
    with pytest.raises(ValueError, match="routed_optimality"):
        routed_optimality(parts[:, :3], routes, 2.0)


def test_a_teachers_part_moves_only_its_routed_channels():
    policy = build_policy(tiny_cfg())
    names = list(policy.codec.param_names)
    routes = teacher_routes(policy, "params", {"spatial": "ITD,ILD", "semantic": "gate"}, TEACHERS)
    assert routes.shape == (4, len(names))  # over the channels nft.channels trains, in latent order
    assert routes[3].tolist() == [n in ("ITD", "ILD") for n in names] and routes[0].tolist() == [n == "gate" for n in names]
    assert routes[1].all() and routes[2].all()  # teachers not listed drive every trained channel
    assert teacher_routes(policy, "params", {}, TEACHERS) is None
    # only spatial's part is non-zero: at v = v_old the gradient lies on ITD and ILD alone
    gen = torch.Generator().manual_seed(1)
    shape = (2, *policy.latent_shape())
    v_old, u = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    parts = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, -1.0]])
    mask = torch.zeros(shape[-1], dtype=torch.bool)
    mask[-len(names):] = True
    v = v_old.clone().requires_grad_(True)
    nft_objective(v, v_old, u, routed_optimality(parts, routes, 2.0), 1.0, mask).sum().backward()
    moved = v.grad.abs().sum((0, 1)) > 0
    assert moved.tolist() == [False] * (shape[-1] - len(names)) + [n in ("ITD", "ILD") for n in names]
    with pytest.raises(ValueError, match="unknown teacher"):
        teacher_routes(policy, "params", {"clap": "ITD"}, TEACHERS)
    with pytest.raises(ValueError, match="nft.teacher_channels.spatial: 'pca:2' names 2 channel"):
        teacher_routes(policy, "params", {"spatial": "pca:2"}, TEACHERS)
    with pytest.raises(ValueError, match="nft.teacher_channels.timing: unknown token 'bands'"):
        teacher_routes(policy, "params", {"timing": "bands"}, TEACHERS)


def test_routed_rows_through_the_learner_loss():
    policy = randomize(build_policy(tiny_cfg())).eval()
    res, draws, prepared = _group(policy)
    payload = {"records": res.records, "prepared": prepared, "draws": draws}
    parts = [(0.5, 0.1, 0.0, -0.3), (-0.5, 0.0, 0.2, 0.1), (0.0, -0.1, -0.2, 0.2)]
    adv = [sum(p) for p in parts]
    item = GroupExperience(None, tuple(adv), 3, "c0", tuple(parts))
    batch = item.rows(payload)
    assert batch.teacher_advantages.shape == (6, 4) and torch.allclose(batch.teacher_advantages[1], torch.tensor(parts[0]))
    plain = assemble_clean_samples(payload, adv, 3, "c0")
    assert plain.teacher_advantages.shape == (6, 0) and len(concat([plain, plain])) == 12
    assert len(batch.select([0, 5])) == 2
    full = {t: "params" for t in TEACHERS}  # every teacher on every trained channel: the plain objective
    policy.train()
    routed_loss = nft_loss(policy, None, batch, NFTConfig(draws=2, channels="params", teacher_channels=full))[0]
    plain_loss = nft_loss(policy, None, plain, NFTConfig(draws=2, channels="params"))[0]
    routed_grad = torch.autograd.grad(routed_loss, [p for p in policy.parameters() if p.requires_grad], allow_unused=True)
    plain_grad = torch.autograd.grad(plain_loss, [p for p in policy.parameters() if p.requires_grad], allow_unused=True)
    for a, b in zip(routed_grad, plain_grad):
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-7)
    with pytest.raises(ValueError, match="carry 0 teacher advantage parts"):
        nft_loss(policy, None, plain, NFTConfig(draws=2, channels="params", teacher_channels={"spatial": "ITD,ILD"}))
    with pytest.raises(ValueError, match="teacher advantage parts of 2 members for a group of 3"):
        assemble_clean_samples(payload, adv, 3, "c0", parts[:2])
