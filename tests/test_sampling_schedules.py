"""Which steps are SDE steps: fast_grpo window draws, flow_grpo, mix_grpo sliding."""
from test_policy_fixtures import one_thread  # noqa: F401  (autouse)
import pytest
import torch

from policies.schedules import fast_grpo_starts, training_steps, window_for_step


def test_fast_grpo_window_starts_cover_exactly_the_allowed_range():
    g = torch.Generator().manual_seed(0)
    starts = [window_for_step("fast_grpo", s, 24, 2, g, 0.5)[0] for s in range(1000)]
    assert set(starts) == set(range(12))  # every start of the first half appears, none outside
    w = window_for_step("fast_grpo", 0, 24, 2, g, 0.5)
    assert w == [w[0], w[0] + 1]
    assert fast_grpo_starts(12, 2, 0.5) == list(range(6))
    assert fast_grpo_starts(6, 4, 1.0) == [0, 1, 2]  # the window always fits


def test_fast_grpo_windows_come_from_the_run_generator_not_a_fixed_seed():
    a = [window_for_step("fast_grpo", s, 24, 2, torch.Generator().manual_seed(5), 0.5) for s in range(3)]
    assert a[0] == a[1] == a[2]  # same generator state, same window
    g = torch.Generator().manual_seed(5)
    draws = [window_for_step("fast_grpo", s, 24, 2, g, 0.5)[0] for s in range(20)]
    assert len(set(draws)) > 3  # the run's generator advances: windows differ between steps
    with pytest.raises(ValueError, match="Generator"):
        window_for_step("fast_grpo", 0, 24, 2, None, 0.5)


def test_flow_grpo_uses_every_step_and_trains_a_seeded_subset():
    assert window_for_step("flow_grpo", 7, 10, 2) == list(range(10))
    g = torch.Generator().manual_seed(0)
    sub = training_steps(list(range(10)), 3, g)
    assert len(sub) == 3 and sub == sorted(sub) and set(sub) <= set(range(10))
    assert training_steps(list(range(10)), 0) == list(range(10))


def test_mix_grpo_window_slides_towards_clean_and_stops_at_the_end():
    w = [window_for_step("mix_grpo", s, 25, 4, mix_slide_every=10)[0] for s in range(0, 400, 10)]
    assert w[:5] == [0, 1, 2, 3, 4]
    assert max(w) == 21 and w[-1] == 21
    assert window_for_step("mix_grpo", 9, 25, 4, mix_slide_every=10) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="sampler.schedule"):
        window_for_step("grpo", 0, 25, 4)
