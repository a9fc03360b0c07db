"""`nft.balance_groups`: each group's clipped advantages, and so its 2r - 1, sum to exactly 0."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from orchestrator.config.load import ConfigError, load_config
from orchestrator.nft.optimality import balanced_advantages, optimality


def test_clipping_unbalances_a_group_and_balancing_restores_a_zero_sum():
    adv = np.array([[2.6, 0.3, -0.5, -0.4, -0.6, -0.5, -0.4, -0.5],
                    [-3.0, 0.3, 0.5, 0.4, 0.6, 0.5, 0.4, 0.3]], dtype=np.float32)
    assert abs(adv.sum(1)).max() < 1e-5                    # centred, as group_advantages gives them
    clipped_sums = np.clip(adv, -2.0, 2.0).sum(1)
    assert clipped_sums[0] == pytest.approx(-0.6, abs=1e-5) and clipped_sums[1] == pytest.approx(1.0, abs=1e-5)
    out = balanced_advantages(adv, 2.0)
    assert out.dtype == np.float32 and np.abs(out.sum(1)).max() < 1e-6
    # the smaller side is kept as clipped, the larger side shrinks by one factor
    assert out[0, 0] == pytest.approx(2.0) and np.allclose(out[0, 2:], adv[0, 2:] * 2.3 / 2.9)
    assert out[1, 0] == pytest.approx(-2.0) and np.allclose(out[1, 1:], adv[1, 1:] * 2.0 / 3.0)
    r = optimality(torch.as_tensor(out), 2.0)
    assert float((2 * r - 1).sum(1).abs().max()) < 1e-6
    assert float(r.min()) >= 0.0 and float(r.max()) <= 1.0


def test_unclipped_groups_are_unchanged_and_dropped_members_count_for_nothing():
    adv = np.array([[1.0, -0.5, -0.5, 0.0]])
    assert np.allclose(balanced_advantages(adv, 2.0), adv)
    keep = np.array([[True, True, True, False]])
    out = balanced_advantages(np.array([[3.0, -0.5, -0.5, 9.0]]), 2.0, keep)
    assert out[0, 3] == 0.0 and abs(out.sum()) < 1e-12 and out[0, 0] == pytest.approx(1.0)
    assert np.all(balanced_advantages(np.zeros((2, 4)), 2.0) == 0.0)
    one_sided = balanced_advantages(np.array([[0.5, 0.5, 0.0]]), 2.0)  # nothing below 0: nothing to balance it
    assert np.all(one_sided == 0.0)


def test_bad_shapes_and_scales_are_named():
    with pytest.raises(ValueError, match="adv_scale"):
        balanced_advantages(np.zeros((1, 2)), 0.0)
    with pytest.raises(ValueError, match=r"\[prompts, group\]"):
        balanced_advantages(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="keep"):
        balanced_advantages(np.zeros((1, 2)), 1.0, np.ones((1, 3), bool))


def test_balance_is_refused_beside_teacher_routing():
    assert load_config("demo_nft").nft.balance_groups is True
    with pytest.raises(ConfigError, match="nft.balance_groups=false"):
        load_config("demo_nft", ["nft.teacher_channels={spatial: ITD}"])
    routed = load_config("demo_nft", ["nft.teacher_channels={spatial: ITD}", "nft.balance_groups=false"])
    assert routed.nft.teacher_channels == {"spatial": "ITD"} and not routed.nft.balance_groups



def _clean_rows(groups: int = 2, members: int = 4, draws: int = 3):
    """DiffusionNFT rows of `groups` groups, member-major as assemble_clean_samples lays them out,
    with balanced advantages and the draw times each group shares among its members."""
    from actors.experience import CleanSampleBatch, concat

    adv = balanced_advantages(np.random.default_rng(0).normal(size=(groups, members)) * 1.5, 2.0)
    out = []
    for g in range(groups):
        times = torch.rand(draws, generator=torch.Generator().manual_seed(g)).repeat(members)
        m = members * draws
        out.append(CleanSampleBatch(
            cond_inputs={"x": torch.zeros(m, 2)}, clean_latents=torch.zeros(m, 3, 2), noise=torch.zeros(m, 3, 2),
            times=times, old_velocity=torch.zeros(m, 3, 2),
            advantages=torch.tensor(adv[g], dtype=torch.float32).repeat_interleave(draws),
            teacher_advantages=torch.zeros(m, 0), versions=torch.full((m,), 5, dtype=torch.long),
            clip_ids=[f"c{g}"] * m))
    return concat(out)


def test_draw_blocks_keep_each_groups_members_at_a_draw_in_one_micro_batch():
    from actors.experience import draw_blocks, micro_batch_plan

    batch = _clean_rows()
    blocks = draw_blocks(batch)
    assert len(torch.unique(blocks)) == 6 and all(int((blocks == b).sum()) == 4 for b in torch.unique(blocks))
    for b in torch.unique(blocks):  # a block: one clip, one draw time, every member
        rows = torch.nonzero(blocks == b).flatten()
        assert len({batch.clip_ids[i] for i in rows.tolist()}) == 1 and len(set(batch.times[rows].tolist())) == 1
        assert abs(float(batch.advantages[rows].sum())) < 1e-5
    plan = micro_batch_plan(batch, 3, torch.Generator().manual_seed(1), blocks)
    assert [w for _, w in plan] == [1.0, 1.0, 1.0] and sum(len(m) for m, _ in plan) == len(batch)
    for micro, _ in plan:  # every optimizer step's advantages sum to 0, as a whole group's do
        assert abs(float(micro.advantages.sum())) < 1e-5 and len(micro) % 4 == 0
    rows_plan = micro_batch_plan(batch, 3, torch.Generator().manual_seed(1))
    assert max(abs(float(m.advantages.sum())) for m, _ in rows_plan) > 1e-3  # shuffled rows split the blocks
    padded = micro_batch_plan(batch, 8, torch.Generator().manual_seed(1), blocks)  # more steps than blocks
    assert [w for _, w in padded].count(1.0) == 6 and [w for _, w in padded].count(0.0) == 2
    with pytest.raises(ValueError, match="one id per row"):
        micro_batch_plan(batch, 3, torch.Generator(), blocks[:-1])


def test_draw_micro_batches_need_diffusion_nft():
    assert load_config("demo_nft", ["grpo.micro_batches=draws"]).grpo.micro_batches == "draws"
    with pytest.raises(ConfigError, match="grpo.micro_batches=draws"):
        load_config("demo", ["grpo.micro_batches=draws"])
    with pytest.raises(ConfigError, match="grpo.micro_batches"):
        load_config("demo_nft", ["grpo.micro_batches=members"])
