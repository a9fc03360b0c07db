"""`prismrl bench`: the benchmarks' maths, and each benchmark once on the tiny config (one Ray, one tiny world)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from benchmarks.efficiency import (CurvePoint, EfficiencyOptions, compare, curve_from_history, mix_slide_period,
                                   schedule_config)
from benchmarks.plan_following import PlanFollowingOptions
from benchmarks.throughput import ThroughputOptions, overhead_fraction, rollout_critical_path, step_stages
from orchestrator.cli.bench import PoolsOptions, main as bench_main, parse_options, run_benchmark
from orchestrator.config import load_config
from orchestrator.config.load import ConfigError, to_dict
from policies.schedules import window_for_step

TEACHER_TIMES = {"time/reward.semantic": 0.2, "time/reward.timing": 0.5, "time/reward.aesthetic": 0.1,
                 "time/reward.spatial": 0.3}


# ----------------------------------------------------------------------------- maths, no Ray
def test_rollout_critical_path_is_the_busiest_worker():
    assert rollout_critical_path([0, 1, 0, 1, 0], [1.0, 2.0, 1.5, 0.5, 1.0]) == pytest.approx(3.5)
    assert rollout_critical_path([], []) == 0.0


def test_overhead_is_the_wall_time_outside_rollout_reward_learn_and_sync():
    m = {"time/rollout": 1.2, "time/learn": 2.0, "time/sync": 0.3, "time/step": 4.5, **TEACHER_TIMES}
    stages = step_stages(m, rollout_busy=1.0)
    assert stages["reward"] == 0.5  # pools grade concurrently: the phase is the slowest pool
    assert stages["other"] == pytest.approx(4.5 - (1.0 + 0.5 + 2.0 + 0.3))
    assert overhead_fraction(10.0, [stages, stages]) == pytest.approx((10.0 - 2 * 3.8) / 10.0)
    assert overhead_fraction(1.0, [stages]) == 0.0  # never negative
    with pytest.raises(ValueError, match="wall time"):
        overhead_fraction(0.0, [stages])


def _curve(totals, dt=2.0):
    return [CurvePoint(s, t, s * dt, s * dt * 1.5, {}) for s, t in totals]


def test_target_is_flow_grpo_best_after_start_and_steps_to_reach_it():
    curves = {"flow_grpo": _curve([(0, 0.10), (4, 0.20), (8, 0.30), (12, 0.25)], dt=6.0),
              "fast_grpo": _curve([(0, 0.10), (4, 0.32), (8, 0.40), (12, 0.41)], dt=2.0),
              "mix_grpo": _curve([(0, 0.10), (4, 0.12), (8, 0.15), (12, 0.20)], dt=3.0)}
    out = compare(curves, "flow_grpo")
    assert out["target"] == 0.30 and out["target_improves_on_start"]
    assert out["steps_to_target"] == {"flow_grpo": 8, "fast_grpo": 4, "mix_grpo": None}
    assert out["wall_to_target"] == {"flow_grpo": 48.0, "fast_grpo": 8.0, "mix_grpo": None}
    assert out["speedup_steps"]["fast_grpo"] == pytest.approx(2.0)
    assert out["speedup_wall"]["fast_grpo"] == pytest.approx(6.0)
    assert out["speedup_steps"]["mix_grpo"] is None
    with pytest.raises(ValueError, match="bench.reference 'nope'"):
        compare(curves, "nope")


def test_curve_from_mlflow_histories_sums_step_times_before_each_validation():
    val = {"total": [(0, 0.1, 1000), (2, 0.3, 9000), (2, 0.35, 9500)], "semantic": [(0, 0.5, 1000), (2, 0.6, 9000)]}
    steps = [(0, 1.5), (1, 2.5), (2, 9.0)]
    curve = curve_from_history(val, steps)
    assert [p.step for p in curve] == [0, 2]
    assert curve[1].total == 0.35  # a step logged twice keeps the last value
    assert curve[1].train_s == pytest.approx(4.0) and curve[1].elapsed_s == pytest.approx(8.5)
    assert curve[1].teachers == {"semantic": 0.6}


def test_mix_window_slides_to_the_clean_end_within_the_budget():
    period = mix_slide_period(steps=12, num_steps=12, window=4)
    starts = [window_for_step("mix_grpo", s, 12, 4, mix_slide_every=period)[0] for s in range(12)]
    assert starts[0] == 0 and starts[-1] == 8 and starts == sorted(starts)
    cfg = load_config("tiny", ["run_dir=/tmp/x", "grpo.steps=12"])
    mix = schedule_config(cfg, "mix_grpo", EfficiencyOptions())
    assert (mix.sampler.window, mix.sampler.schedule, mix.run_dir) == (4, "mix_grpo", "/tmp/x/mix_grpo")
    with pytest.raises(ValueError, match="unknown schedule 'dpo'"):
        schedule_config(cfg, "dpo", EfficiencyOptions())


def test_reuse_takes_only_a_finished_run_of_the_same_schedule_and_budget(tmp_path):
    from benchmarks.efficiency import finished_summary

    cfg = schedule_config(load_config("tiny", [f"run_dir={tmp_path}", "grpo.steps=4"]), "flow_grpo",
                          EfficiencyOptions(reuse=True))
    assert finished_summary(cfg) is None  # nothing there yet
    os.makedirs(cfg.run_dir)
    summary = {"config": to_dict(cfg), "steps": 4, "mlflow": {}}
    (tmp_path / "flow_grpo" / "summary.json").write_text(json.dumps(summary))
    assert finished_summary(cfg) == summary
    cfg.tracking.run_name = "renamed"  # where it is logged does not matter
    assert finished_summary(cfg) == summary
    cfg.sampler.num_steps = 8  # a run made with another config is trained again
    assert finished_summary(cfg) is None


def test_bench_options_are_typed_and_unknown_ones_are_named():
    opts = parse_options(ThroughputOptions, ["measure_steps=5", "sequential=false"], "throughput")
    assert (opts.measure_steps, opts.sequential) == (5, False)
    assert parse_options(PoolsOptions, ["replicas=[1,2]"], "pools").replicas == [1, 2]
    with pytest.raises(ConfigError, match="bench.warmup.*allowed: warmup_steps"):
        parse_options(ThroughputOptions, ["warmup=2"], "throughput")
    with pytest.raises(ConfigError, match="measure_steps"):
        parse_options(ThroughputOptions, ["measure_steps=many"], "throughput")


def test_unknown_benchmark_is_refused_with_the_list(capsys):
    assert bench_main(["speed"]) == 2
    assert "unknown benchmark 'speed'; available: efficiency, throughput, pools, gpu" in capsys.readouterr().err


def test_gpu_benchmark_fails_fast_without_a_gpu(tmp_path, capsys, monkeypatch):
    code = bench_main(["gpu", "tiny", f"run_dir={tmp_path}"])
    assert code == 2
    assert "no GPU: torch.cuda.is_available() is False" in capsys.readouterr().err
    assert not (tmp_path / "gpu.json").exists()
    # torch sees a GPU but Ray has none: the message says so.
    import torch

    from benchmarks.gpu import GpuUnavailable, require_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(GpuUnavailable, match="Ray reports no GPU resource"):
        require_gpu({"CPU": 4.0})


# ------------------------------------------------------------------- each benchmark on the tiny world
@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """A tiny SynthScenes set and a briefly pretrained tiny policy, with one local Ray for the module."""
    import ray

    from orchestrator.data.synth import write_synthscenes
    from orchestrator.training.pretrain import run_pretrain

    root = tmp_path_factory.mktemp("bench")
    cfg = load_config("tiny", [f"run_dir={root / 'pre'}", f"policy.checkpoint={root / 'policy'}", "pretrain.steps=5"])
    manifest = write_synthscenes(str(root / "data"), cfg.data.synth, cfg.data.s3, progress=False)
    cfg.data.manifest = str(manifest)
    run_pretrain(cfg)
    ray.init(address="local", num_cpus=4, include_dashboard=False, object_store_memory=300 * 1024 * 1024)
    yield root, str(manifest)
    ray.shutdown()


def tiny_cfg(root, manifest, name, *overrides):
    return load_config("tiny", [f"run_dir={root / name}", f"data.manifest={manifest}",
                                f"policy.checkpoint={root / 'policy'}", "rollout.num_workers=1",
                                "learner.num_ranks=1", *overrides])


@pytest.mark.slow
def test_efficiency_compares_schedules_from_the_same_start(tiny_world):
    root, manifest = tiny_world
    cfg = tiny_cfg(root, manifest, "eff", "grpo.steps=1", "train.val_every=1")
    result = run_benchmark("efficiency", cfg, EfficiencyOptions(schedules=["fast_grpo", "flow_grpo"]))
    saved = json.loads((root / "eff" / "efficiency.json").read_text())
    assert saved["steps_to_target"] == result["steps_to_target"]
    assert set(saved["steps_to_target"]) == set(saved["wall_to_target"]) == {"fast_grpo", "flow_grpo"}
    for schedule, curve in saved["curves"].items():
        assert [p["step"] for p in curve] == [0, 1], schedule
    starts = [c[0]["total"] for c in saved["curves"].values()]
    assert starts[0] == pytest.approx(starts[1], abs=1e-6)  # same policy, data, val noise
    assert saved["steps_to_target"]["flow_grpo"] is not None  # the reference reaches its own best
    assert saved["target"] == max(p["total"] for p in saved["curves"]["flow_grpo"] if p["step"] > 0)
    assert "| fast_grpo |" in (root / "eff" / "efficiency.md").read_text()


@pytest.mark.slow
def test_throughput_pipeline_and_sequential_loop_do_the_same_work(tiny_world):
    root, manifest = tiny_world
    cfg = tiny_cfg(root, manifest, "thr", "grpo.prompts_per_step=2", "grpo.group_size=2")
    result = run_benchmark("throughput", cfg, ThroughputOptions(warmup_steps=0, measure_steps=1))
    assert result["pipeline_samples_per_s"] > 0 and result["sequential_samples_per_s"] > 0
    assert result["pipeline_over_sequential"] == pytest.approx(
        result["pipeline_samples_per_s"] / result["sequential_samples_per_s"])
    assert 0.0 <= result["overhead_fraction"] < 1.0
    # Identical work: the same prompts, windows, noise and weights give the same first-step rewards.
    pipe, seq = result["pipeline"]["reward_total"], result["sequential"]["reward_total"]
    assert len(pipe) == len(seq) == 1
    assert seq[0] == pytest.approx(pipe[0], rel=1e-4, abs=1e-6)
    assert os.path.exists(root / "thr" / "throughput.md")


@pytest.mark.slow
def test_pools_scaling_reports_samples_per_s_per_teacher_and_replicas(tiny_world):
    root, manifest = tiny_world
    cfg = tiny_cfg(root, manifest, "pools")
    opts = PoolsOptions(teachers=["latency"], replicas=[1, 2], n_samples=16, added_latency_s=0.1, max_batch=2)
    run_benchmark("pools", cfg, opts)
    saved = json.loads((root / "pools" / "pools.json").read_text())
    assert set(saved["scaling"]) == {"latency"}
    for teacher, per_replicas in saved["scaling"].items():
        assert set(per_replicas) == {"1", "2"} and all(v > 0 for v in per_replicas.values()), teacher
    # The latency teacher waits without using a CPU: two replicas grade faster than one.
    assert saved["scaling"]["latency"]["2"] > 1.3 * saved["scaling"]["latency"]["1"]


def test_gradsnr_refuses_a_window_outside_the_schedule():
    from benchmarks.grad_snr import GradSNROptions

    cfg = load_config("tiny", ["policy.checkpoint=unused"])
    with pytest.raises(ValueError, match=r"bench.window_starts \[99\]"):
        run_benchmark("gradsnr", cfg, GradSNROptions(window_starts=[99]))


@pytest.mark.slow
def test_gradsnr_reports_the_gradient_snr_of_every_reward_per_window_start(tiny_world, capsys):
    root, manifest = tiny_world
    run_dir = root / "snr"
    code = bench_main(["gradsnr", "tiny", f"run_dir={run_dir}", f"data.manifest={manifest}",
                       f"policy.checkpoint={root / 'policy'}", "grpo.group_size=4", "tracking.progress=false",
                       "bench.groups=3", "bench.window_starts=[0,1]", "bench.clips=2", "bench.null_draws=20",
                       "bench.step_check=all", "bench.step_sizes=[0.001]", "bench.trainables=[heads]",
                       "bench.variants=[grpo.adv_clip=5.0,grpo.adv_clip=0.3;grpo.adv_std=group]"])
    assert code == 0
    saved = json.loads((run_dir / "gradsnr.json").read_text())
    # groups for SNR 1 per reward at its best start: the estimate, or the 3-sd lower bound when not detected
    assert set(saved["groups_needed"]) == {"total", "semantic", "timing", "aesthetic", "spatial"}
    assert all(row["groups_for_snr1"] > 0 for row in saved["groups_needed"].values())
    assert set(saved["starts"]) == {"0", "1"}
    assert saved["trainable_params"] > 0 and saved["group_size"] == 4 and saved["groups"] == 3
    for start, block in saved["starts"].items():
        assert block["sde_steps"] == list(range(int(start), int(start) + saved["window"]))
        assert set(block["rewards"]) == {"total", "semantic", "timing", "aesthetic", "spatial"}
        heads = block["by_trainable"]["heads"]  # the same rollouts, only the output layer's gradient
        assert 0 < heads["trainable_params"] < saved["trainable_params"]
        assert set(heads["rewards"]) == set(block["rewards"]) and heads["rewards"]["total"]["noise_trace"] > 0
        paired = heads["rewards"]["total"]  # paired with the main set's on the same 3 groups
        assert np.isfinite(paired["snr_minus_base"]) and paired["snr_minus_base_se"] >= 0
        assert np.isclose(paired["snr_minus_base"], paired["snr_per_group"] - block["rewards"]["total"]["snr_per_group"])
        same = block["by_variant"]["grpo.adv_clip=5.0"]["rewards"]["total"]  # the main settings again: no difference
        assert same["snr_minus_base"] == 0 and same["snr_minus_base_se"] == 0
        other = block["by_variant"]["grpo.adv_clip=0.3;grpo.adv_std=group"]["rewards"]
        assert set(other) == set(block["rewards"]) and other["total"]["snr_minus_base"] != 0
        total = block["rewards"]["total"]
        # The window's noise makes the members differ, so advantages and gradients are not zero.
        assert total["within_group_std"] > 0 and total["noise_trace"] > 0
        assert 0.0 <= total["run_cosine"] <= 1.0
        # The step check ran for every reward, one step each, with finite paired differences.
        for name, row in block["rewards"].items():
            assert [st["step_size"] for st in row["steps"]] == [0.001], name
            assert all(np.isfinite([st["diff"], st["se"], st["total_diff"], st["total_se"]]).all()
                       for st in row["steps"])
    md = (run_dir / "gradsnr.md").read_text()
    assert "| 0 | total |" in md and "Step check" in md
    assert "gradsnr.json" in capsys.readouterr().out


def test_class_hit_and_paired_difference_hand_numbers():
    from benchmarks.plan_following import class_hit, paired_mean_se

    assert class_hit(["buzz", "bell", "rain", "buzz"], ["buzz"]) == 0.5
    assert class_hit([], ["buzz"]) == 0.0
    mean, se = paired_mean_se([1.0, 0.5, 0.0], [0.0, 0.5, 0.0])
    assert mean == pytest.approx(1 / 3) and se == pytest.approx(np.std([1.0, 0.0, 0.0], ddof=1) / np.sqrt(3))


@pytest.mark.slow
def test_plan_following_compares_ground_truth_codec_and_policy(tiny_world):
    root, manifest = tiny_world
    cfg = tiny_cfg(root, manifest, "plan")
    result = run_benchmark("plan_following", cfg, PlanFollowingOptions(clips=3))
    saved = json.loads((root / "plan" / "plan_following.json").read_text())
    assert saved["clips"] == 3 and set(saved["sources"]) == {"ground_truth", "codec", "policy"}
    for source, row in saved["sources"].items():
        assert 0.0 <= row["class_hit"] <= 1.0 and 0.0 <= row["semantic_reward"] <= 1.0, source
        assert row["segments_per_clip"] == pytest.approx(sum(row["top_classes"].values()) / 3), source
        if saved["single_class_clips"]:  # whole-clip timbre on the clips whose plan names one class
            assert 0.0 <= row["profile_hit"] <= 1.0, source
    # The ground truth names its own classes: it hits its own plan more often than the next clip's.
    gt = result["sources"]["ground_truth"]
    assert gt["class_hit"] > gt["class_hit_other_plan"]
    assert "| policy |" in (root / "plan" / "plan_following.md").read_text()
    with pytest.raises(ValueError, match="bench.split=test.*needs >= 2"):
        run_benchmark("plan_following", cfg, PlanFollowingOptions(split="test", clips=1))


@pytest.mark.slow
def test_gradsnr_measures_diffusion_nft_group_gradients(tiny_world):
    root, manifest = tiny_world
    run_dir = root / "snr_nft"
    code = bench_main(["gradsnr", "tiny", f"run_dir={run_dir}", f"data.manifest={manifest}",
                       f"policy.checkpoint={root / 'policy'}", "grpo.group_size=4", "tracking.progress=false",
                       "train.algorithm=nft", "nft.draws=2", "sampler.schedule=flow_grpo", "sampler.noise_level=0",
                       "bench.groups=3", "bench.window_starts=[0]", "bench.clips=2", "bench.null_draws=20",
                       "bench.step_check=all", "bench.step_sizes=[0.001]"])
    assert code == 0
    saved = json.loads((run_dir / "gradsnr.json").read_text())
    assert saved["algorithm"] == "nft"
    total = saved["starts"]["0"]["rewards"]["total"]
    # ODE rollouts from independent noises differ, so the NFT group gradients are not zero.
    assert total["within_group_std"] > 0 and total["noise_trace"] > 0
    assert all(np.isfinite([st["diff"], st["total_diff"]]).all() for st in total["steps"])
    assert "algorithm nft" in (run_dir / "gradsnr.md").read_text()
