"""Reward formulas, grade combination and grade validation (plain functions)."""
import logging

import numpy as np
import pytest

from rewards import formulas
from rewards.combine import combine_grades, standardize_within_groups
from rewards.validate import BadGradeError, check_grades


def test_synchformer_grid_has_21_classes_from_minus_2_to_2():
    grid = formulas.synchformer_offset_grid()
    assert grid.shape == (21,)
    assert grid[0] == -2.0 and grid[-1] == 2.0 and grid[10] == 0.0
    assert np.allclose(np.diff(grid), 0.2)
    assert formulas.snap_to_offset_grid(0.33) == pytest.approx(0.4)
    assert formulas.snap_to_offset_grid(-3.0) == pytest.approx(-2.0)


def test_timing_reward():
    assert formulas.timing_reward(0.0) == 0.5
    assert formulas.timing_reward(-2.0) == 0.0
    assert formulas.timing_reward(1.0) == formulas.timing_reward(-1.0) == 0.25


def test_aesthetic_reward_subtracts_production_complexity():
    assert formulas.aesthetic_reward(10, 10, 1, 10) == pytest.approx(29 / 40)
    assert formulas.aesthetic_reward(5, 5, 5, 5) == pytest.approx(10 / 40)
    assert formulas.aesthetic_reward(5, 5, 6, 5) < formulas.aesthetic_reward(5, 5, 5, 5)


def test_spatial_rewards():
    assert formulas.spatial_reward(0.0, 0.0) == 0.0
    assert formulas.spatial_reward(0.2, -0.4) == pytest.approx(-(1.25 * 0.04 + 2.5 * 0.16))
    assert formulas.spatial_gcc_reward(-0.4) == pytest.approx(-0.4)
    assert formulas.spatial_gcc_reward(0.4, w_gcc=1.0) == pytest.approx(-0.16)


def test_ms_clap_score():
    assert formulas.ms_clap_score(0.5, np.log(100.0)) == pytest.approx(100 * 0.5 / 80)
    assert formulas.ms_clap_score(-0.2, 0.0) == pytest.approx(-0.2 / 80)


def _grades():
    sem = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.8]])
    tim = np.array([[0.5, 0.0, 0.25], [0.1, 0.3, 0.2]])
    return {"semantic": sem, "timing": tim}


def test_sum_then_normalize_is_weighted_sum():
    g = _grades()
    total = combine_grades(g, {"semantic": 1.0, "timing": 0.6, "aesthetic": 0.0}, "sum_then_normalize")
    assert total == pytest.approx(g["semantic"] + 0.6 * g["timing"])


def test_normalize_then_sum_standardizes_each_teacher_within_group():
    g = _grades()
    g["timing"] = g["timing"] * 100.0  # a teacher on a much larger scale
    total = combine_grades(g, {"semantic": 1.0, "timing": 0.6}, "normalize_then_sum")
    expected = standardize_within_groups(g["semantic"]) + 0.6 * standardize_within_groups(g["timing"])
    assert total == pytest.approx(expected)
    assert total.mean(axis=1) == pytest.approx(0.0, abs=1e-9)
    z = standardize_within_groups(np.array([[1.0, 1.0, 1.0]]))  # constant group: no NaN
    assert np.all(z == 0.0)


def test_combine_rejects_bad_inputs():
    g = _grades()
    with pytest.raises(ValueError, match="mode"):
        combine_grades(g, {"semantic": 1.0, "timing": 1.0}, "average")
    with pytest.raises(ValueError, match="timing"):
        combine_grades(g, {"semantic": 1.0}, "sum_then_normalize")
    with pytest.raises(ValueError, match="spatial"):
        combine_grades(g, {"semantic": 1.0, "timing": 1.0, "spatial": 0.4}, "sum_then_normalize")
    with pytest.raises(ValueError, match="shape"):
        combine_grades({"semantic": np.zeros((2, 3)), "timing": np.zeros((3, 2))}, {"semantic": 1, "timing": 1})


def test_check_grades_error_names_teacher_backend_and_clip():
    ids = ["clip-a#0", "clip-b#1", "clip-c#2"]
    assert check_grades("timing", "onset", ids, np.array([0.1, 0.5, 0.0]), (0.0, 0.5)).all()
    for bad in (np.nan, np.inf, 0.7):
        with pytest.raises(BadGradeError) as info:
            check_grades("timing", "onset", ids, np.array([0.1, bad, 0.2]), (0.0, 0.5), "error")
        msg = str(info.value)
        assert "timing" in msg and "onset" in msg and "clip-b#1" in msg
    assert issubclass(BadGradeError, ValueError)


def test_check_grades_drop_masks_and_warns_with_count(caplog):
    ids = [f"c{i}" for i in range(5)]
    rewards = np.array([0.2, np.nan, -0.1, np.inf, 0.9])
    with caplog.at_level(logging.WARNING, logger="rewards.validate"):
        keep = check_grades("semantic", "signal", ids, rewards, (0.0, 1.0), on_bad="drop")
    assert keep.tolist() == [True, False, False, False, True]
    assert "dropped 3 of 5" in caplog.text and "semantic/signal" in caplog.text and "c3" in caplog.text
    with pytest.raises(ValueError, match="on_bad_grade"):
        check_grades("semantic", "signal", ids, rewards, (0.0, 1.0), on_bad="ignore")
