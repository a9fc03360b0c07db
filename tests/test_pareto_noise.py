"""Pareto dominance beyond noise (pure maths): paired gaps between trials, the z-s.e. rule, the
trial's change report from its training summary, and the sweep table/PNG built on them."""
from __future__ import annotations

import math

import pytest

from common.types import TEACHERS
from orchestrator.evaluation.paired import per_clip_table
from orchestrator.sweeps.pareto import (NOISE_Z, Estimate, dominates_beyond_noise, dominators_beyond_noise, gap,
                                        pareto_mask_beyond_noise)
from orchestrator.sweeps.report import mark_pareto, markdown_table, pareto_png
from orchestrator.sweeps.trial import change_result

CLIPS = [f"clip-{i}" for i in range(8)]
SPREAD = [0.10, -0.20, 0.30, 0.05, -0.15, 0.25, -0.05, 0.0]  # clips differ far more than trials do
JITTER = [0.001, -0.001, 0.0005, -0.0005, 0.001, -0.001, 0.0, 0.0]


def clips(shift: float, jitter=JITTER) -> dict[str, float]:
    return {c: 0.5 + s + shift + j for c, s, j in zip(CLIPS, SPREAD, jitter)}


def test_gap_is_paired_per_clip_and_falls_back_to_independent_se():
    a, b = Estimate(0.013, 0.004, clips(0.013)), Estimate(0.010, 0.004, clips(0.010, [0.0] * 8))
    diff, se = gap(a, b)
    d = [x - y for x, y in zip(clips(0.013).values(), clips(0.010, [0.0] * 8).values())]
    mean = sum(d) / len(d)
    assert diff == pytest.approx(0.003)
    assert se == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d)))
    assert se < 0.001  # the clips' spread cancels
    # no per-clip values on one side, or other clips: the changes' difference, se sqrt(se_a^2 + se_b^2)
    for other in (Estimate(0.010, 0.003), Estimate(0.010, 0.003, {"other": 0.5, "clip": 0.6})):
        assert gap(a, other) == pytest.approx((0.003, 0.005))
    # a clip that is NaN in one trial is left out of the pairing
    nan_clips = {**clips(0.010, [0.0] * 8), CLIPS[0]: math.nan}
    assert gap(a, Estimate(0.010, 0.004, nan_clips))[0] == pytest.approx(sum(d[1:]) / 7)


def test_a_difference_within_noise_dominates_nothing():
    base = {t: Estimate(0.0, 0.004, clips(0.0)) for t in TEACHERS}
    # +0.003 on every teacher, but the clips move independently by ~0.01: within noise
    noisy = [0.01, -0.012, 0.009, -0.008, 0.011, -0.01, 0.004, -0.001]
    slightly = {t: Estimate(0.003, 0.004, clips(0.003, noisy)) for t in TEACHERS}
    assert not dominates_beyond_noise(slightly, base) and not dominates_beyond_noise(base, slightly)
    assert pareto_mask_beyond_noise([base, slightly]) == [True, True]
    # the plain-means rule (z = 0) would call it a win
    assert dominates_beyond_noise(slightly, base, z=0.0)


def test_a_paired_win_beyond_noise_on_one_teacher_dominates():
    base = {t: Estimate(0.0, 0.004, clips(0.0)) for t in TEACHERS}
    better = dict(base, aesthetic=Estimate(0.003, 0.004, clips(0.003)))  # every clip +0.003 exactly
    assert dominates_beyond_noise(better, base) and not dominates_beyond_noise(base, better)
    # without per-clip values the same means are within sqrt(2) * 0.004 * 2: no decision
    unpaired = {t: Estimate(e.change, e.se) for t, e in better.items()}
    assert not dominates_beyond_noise(unpaired, base)
    # better on semantic but worse beyond noise on timing: neither it nor `base` or `better` dominates
    trade = dict(base, semantic=Estimate(0.01, 0.004, clips(0.01)), timing=Estimate(-0.01, 0.004, clips(-0.01)))
    assert not dominates_beyond_noise(trade, base) and not dominates_beyond_noise(base, trade)
    assert dominators_beyond_noise([base, better, trade]) == [[1], [], []]
    assert pareto_mask_beyond_noise([base, better, trade]) == [False, True, True]


def test_exact_ties_and_incomparable_points():
    same = {t: Estimate(0.0, 0.0, clips(0.0)) for t in TEACHERS}
    assert not dominates_beyond_noise(same, dict(same))  # a gap of 0 with s.e. 0 is a tie
    strong = {t: Estimate(1.0, 0.001, clips(1.0)) for t in TEACHERS}
    failed = {t: Estimate(math.nan, math.nan) for t in TEACHERS}
    # a failed/stopped trial is never optimal, and being "dominated" by it cannot happen
    assert pareto_mask_beyond_noise([same, strong, None, failed]) == [False, True, False, False]
    assert dominators_beyond_noise([same, strong, None, failed])[2:] == [[], []]
    with pytest.raises(ValueError, match="different objectives"):
        dominates_beyond_noise(same, {"semantic": same["semantic"]})
    with pytest.raises(ValueError, match="z must be >= 0"):
        dominates_beyond_noise(same, same, z=-1.0)
    assert NOISE_Z == 2.0


def _summary(after_shift: dict[str, float]) -> dict:
    before = {t: clips(0.0, [0.0] * 8) for t in TEACHERS}
    after = {t: clips(after_shift[t]) for t in TEACHERS}
    change = {t: {"diff": after_shift[t], "se": 0.0004, "higher": 5, "lower": 3, "clips": 8} for t in TEACHERS}
    change["total"] = {"diff": 0.01, "se": 0.001, "higher": 5, "lower": 3, "clips": 8}
    return {"val_change": change, "val_clips_before": before, "val_clips_after": after}


def test_trial_reports_change_se_and_per_clip_means():
    ref = {"semantic": 1.0, "timing": 0.5, "aesthetic": 0.0, "spatial": 2.0}
    shift = {"semantic": 0.01, "timing": -0.02, "aesthetic": 0.3, "spatial": 0.001}
    out = change_result(_summary(shift), ref)
    assert out["change_timing"] == -0.02 and out["change_timing_se"] == 0.0004 and out["change_total"] == 0.01
    # the comparable total's change is paired per clip under the sweep's weights: sum_t w_t (after - before)
    per_clip = [sum(ref[t] * (shift[t] + j) for t in TEACHERS) for j in JITTER]
    mean = sum(per_clip) / 8
    assert out["change_total_ref"] == pytest.approx(mean)
    assert out["change_total_ref_se"] == pytest.approx(
        math.sqrt(sum((x - mean) ** 2 for x in per_clip) / 7 / 8))
    assert out["val_clips"]["spatial"] == clips(0.001)
    with pytest.raises(ValueError, match="val_change.*total"):
        change_result({**_summary(shift), "val_change": {t: {"diff": 0, "se": 0} for t in TEACHERS}}, ref)


def test_per_clip_table_averages_each_clips_samples():
    rows = [{"clip_id": "a", "semantic": 1.0}, {"clip_id": "b", "semantic": 3.0}, {"clip_id": "a", "semantic": 2.0}]
    assert per_clip_table(rows, ["semantic"]) == {"semantic": {"a": 1.5, "b": 3.0}}


def _row(name: str, shift: dict[str, float], status="ok", error=None, jitter=JITTER) -> dict:
    val = {t: 0.5 + shift[t] for t in TEACHERS}
    change = {t: {"diff": shift[t], "se": 0.004} for t in TEACHERS}
    change["total_ref"] = {"diff": sum(shift.values()), "se": 0.008}
    return {"trial": name, "status": status, "weights": {t: 0.5 for t in TEACHERS}, "val": val,
            "val_total_ref": sum(val.values()), "steps": 4, "error": error, "change": change,
            "val_clips": {t: clips(shift[t], jitter) for t in TEACHERS}}


def test_sweep_table_and_png_show_change_se_and_dominance_beyond_noise(tmp_path):
    zero = dict.fromkeys(TEACHERS, 0.0)
    noisy = [0.01, -0.012, 0.009, -0.008, 0.011, -0.01, 0.004, -0.001]
    rows = mark_pareto([
        _row("trial-00000", zero),
        _row("trial-00001", {**zero, "aesthetic": 0.003}),                 # paired win over 00000
        _row("trial-00002", {**zero, "semantic": 0.003}, jitter=noisy),    # within noise of both
        {**_row("trial-00003", zero), "change": {}, "val_clips": {}, "status": "stopped"},
    ])
    assert [r["pareto"] for r in rows] == [False, True, True, False]
    assert rows[0]["dominated_by"] == ["trial-00001"] and rows[2]["dominated_by"] == []
    table = markdown_table(rows, {**{t: 0.5 for t in TEACHERS}, "total_ref": 2.0})
    lines = table.splitlines()
    assert lines[0].startswith("| trial | w_sem | w_tim | w_aes | w_spa | semantic (Δ ± s.e.) |")
    assert "dominated by (> 2 s.e.)" in lines[0]
    line = {name: next(x for x in lines if x.startswith(f"| {name} |")) for name in
            ["trial-00000", "trial-00001", "trial-00002", "trial-00003"]}
    assert "| 0.5030 (+0.0030 ± 0.0040) |" in line["trial-00001"] and "| * | none |" in line["trial-00001"]
    assert "|  | trial-00001 |" in line["trial-00000"]
    assert "not compared" in line["trial-00003"]
    assert "validation clips (8)" in lines[-1] and "2 s.e." in lines[-1]
    # a change beyond 2 s.e. is bold
    big = mark_pareto([_row("trial-00004", {**zero, "timing": 0.02})])
    assert "**+0.0200 ± 0.0040**" in markdown_table(big)
    png = pareto_png(rows, str(tmp_path / "p.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_one_validation_clip_gives_no_se_and_decides_nothing():
    # one clip: paired_differences reports s.e. 0, which must not turn a 1e-7 difference into a win
    one = {"c0": 0.5}
    rows = []
    for name, shift in [("trial-00000", 0.0), ("trial-00001", 1e-7)]:
        r = _row(name, dict.fromkeys(TEACHERS, shift))
        r["change"] = {k: {"diff": shift, "se": 0.0} for k in (*TEACHERS, "total_ref")}
        r["val_clips"] = {t: {c: v + shift for c, v in one.items()} for t in TEACHERS}
        rows.append(r)
    assert [r["pareto"] for r in mark_pareto(rows)] == [True, True]
    table = markdown_table(rows)
    assert "(+0.0000 ± ?)" in table and "**" not in table
    assert not dominates_beyond_noise({"a": Estimate(1.0, math.inf)}, {"a": Estimate(0.0, 0.0)})
