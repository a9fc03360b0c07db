"""Reward-weight sweeps: Pareto front, search space, trial resources and configs, the report, and a
2-trial Ray Tune sweep on the tiny config logged to nested MLflow runs."""
from __future__ import annotations

import json
import subprocess
import sys
import math
import os

import pytest

from common.types import TEACHERS
from orchestrator.config import load_config
from orchestrator.config.load import ConfigError
from orchestrator.sweeps.pareto import dominates, pareto_mask
from orchestrator.sweeps.report import mark_pareto, markdown_table, pareto_png
from orchestrator.sweeps.space import check_sweep_config, reference_total, scale_trial_cpus, trial_bundles, weight_space
from orchestrator.sweeps.trial import trial_config, trial_result


# ----- Pareto -----------------------------------------------------------------------------------
def test_pareto_keeps_non_dominated_points_and_drops_failed_ones():
    points = [
        [0.5, 0.5, 0.5, -1.0],   # optimal: best spatial
        [0.6, 0.5, 0.5, -2.0],   # optimal: best semantic
        [0.5, 0.4, 0.5, -1.0],   # dominated by the first
        [0.6, 0.5, 0.5, -2.0],   # duplicate of an optimal point: kept
        [math.nan, 9.0, 9.0, 9.0],  # failed trial: never optimal, dominates nothing
    ]
    assert pareto_mask(points) == [True, True, False, True, False]
    assert dominates([1, 1], [1, 0]) and not dominates([1, 1], [1, 1]) and not dominates([2, 0], [1, 1])
    with pytest.raises(ValueError, match="different lengths"):
        dominates([1, 2], [1])


# ----- search space, resources, trial config -------------------------------------------------------
def test_weight_space_grid_random_and_fixed():
    from ray.tune.search.sample import Float

    cfg = load_config("tiny", ["sweep.search=grid", "sweep.weights.timing=[0.3,0.6,1.2]", "sweep.weights.aesthetic=[]",
                               "sweep.weights.spatial=[0.5]", "rewards.weights.aesthetic=0.2"])
    space = weight_space(cfg.sweep, {"semantic": 1.0, "timing": 0.6, "aesthetic": 0.2, "spatial": 0.4})
    assert space["timing"] == {"grid_search": [0.3, 0.6, 1.2]}
    assert space["semantic"] == 1.0 and space["aesthetic"] == 0.2 and space["spatial"] == 0.5
    cfg = load_config("tiny", ["sweep.search=random", "sweep.weights.timing=[0.3,1.2]"])
    rnd = weight_space(cfg.sweep, {t: 1.0 for t in TEACHERS})
    assert isinstance(rnd["timing"], Float) and (rnd["timing"].lower, rnd["timing"].upper) == (0.3, 1.2)


@pytest.mark.parametrize("override, key", [
    ("sweep.weights.timing=[1.0,0.5]", "sweep.weights.timing"),
    ("sweep.weights.spatial=[0.1,0.2,0.3]", "sweep.weights.spatial"),
    ("sweep.weights.aesthetic=[-1.0]", "sweep.weights.aesthetic"),
    ("sweep.num_samples=0", "sweep.num_samples"),
    ("sweep.task_cpus=0", "sweep.task_cpus"),
    ("sweep.pareto_z=-1", "sweep.pareto_z"),
])
def test_bad_sweep_settings_name_the_key(override, key):
    cfg = load_config("tiny", ["sweep.search=random", override])
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        check_sweep_config(cfg.sweep)


def test_unknown_search_is_a_config_error():
    with pytest.raises(ConfigError, match="sweep.search"):
        load_config("tiny", ["sweep.search=bayes"])


def test_trial_bundles_hold_every_role_with_scaled_cpus():
    cfg = load_config("cluster", ["sweep.head_cpus=0.5", "sweep.task_cpus=0.25"])
    bundles = trial_bundles(cfg)
    # head, tasks, 4 rollout workers, 2+2+1+1 pool replicas, 4 learner ranks
    assert len(bundles) == 2 + 4 + 6 + 4
    assert bundles[:2] == [{"CPU": 0.5}, {"CPU": 0.25}]
    assert bundles[2] == {"CPU": 4.0, "GPU": 1.0} and bundles[-1] == {"CPU": 4.0, "GPU": 1.0}
    assert sum(b.get("GPU", 0) for b in bundles) == pytest.approx(4 + 6 * 0.25 + 4)
    half = scale_trial_cpus(cfg, 0.5)
    assert half.rollout.num_cpus == pytest.approx(2.0) and half.pools.semantic.num_cpus == pytest.approx(1.0)
    assert half.learner.num_gpus == 1.0 and cfg.rollout.num_cpus == 4.0  # GPUs kept, original untouched
    tiny = scale_trial_cpus(load_config("tiny"), 0.3)
    assert tiny.pools.timing.num_cpus == pytest.approx(0.075)  # 0.25 * 0.3, on Ray's 1e-4 grid


def test_trial_config_sets_weights_and_keeps_trials_apart(tmp_path):
    template = load_config("tiny", [f"run_dir={tmp_path}"])
    w = {"semantic": 1.0, "timing": 0.9, "aesthetic": 0.05, "spatial": 0.7}
    cfg = trial_config(template, w, "trial-00001", str(tmp_path), "s3://bucket/sweeps/s1/")
    assert [getattr(cfg.rewards.weights, t) for t in TEACHERS] == [1.0, 0.9, 0.05, 0.7]
    assert cfg.run_dir == os.path.join(str(tmp_path), "trials", "trial-00001")
    assert cfg.train.checkpoint_dir == "s3://bucket/sweeps/s1/trials/trial-00001"
    assert cfg.tracking.run_name == "trial-00001"
    assert template.rewards.weights.timing == 0.6  # the template is not modified
    assert trial_config(template, w, "t", str(tmp_path)).train.checkpoint_dir is None
    with pytest.raises(ValueError, match="trial-x.*spatial"):
        trial_config(template, {k: v for k, v in w.items() if k != "spatial"}, "trial-x", str(tmp_path))


def test_trial_result_carries_a_comparable_total():
    val = {"semantic": 0.5, "timing": 0.25, "aesthetic": 0.4, "spatial": -1.0, "total": 0.3}
    ref = {"semantic": 1.0, "timing": 0.6, "aesthetic": 0.1, "spatial": 0.4}
    out = trial_result(val, 3, ref)
    assert out["step"] == 3 and out["val_total"] == 0.3 and out["val_spatial"] == -1.0
    assert out["val_total_ref"] == pytest.approx(0.5 + 0.15 + 0.04 - 0.4) == reference_total(val, ref)


# ----- report ---------------------------------------------------------------------------------------
def _row(name, val, status="ok", error=None):
    """A trial row whose change from before training is its value (before = 0), s.e. 0.001, no per-clip values."""
    total = reference_total(val, {t: 1.0 for t in TEACHERS}) if val else math.nan
    change = {t: {"diff": v, "se": 0.001} for t, v in val.items()}
    if val:
        change["total_ref"] = {"diff": total, "se": 0.002}
    return {"trial": name, "status": status, "weights": {t: 0.5 for t in TEACHERS}, "val": val,
            "val_total_ref": total, "steps": 4, "error": error, "change": change, "val_clips": {}}


def test_report_marks_pareto_trials_and_lists_failures(tmp_path):
    rows = mark_pareto([
        _row("trial-00000", {"semantic": 0.6, "timing": 0.3, "aesthetic": 0.4, "spatial": -1.0}),
        _row("trial-00001", {"semantic": 0.5, "timing": 0.2, "aesthetic": 0.4, "spatial": -1.5}),
        _row("trial-00002", {"semantic": 0.4, "timing": 0.4, "aesthetic": 0.3, "spatial": -0.5}),
        _row("trial-00003", {}, status="error", error="RuntimeError: learner rank 0 failed\ntrace"),
    ])
    assert [r["pareto"] for r in rows] == [True, False, True, False]
    table = markdown_table(rows, {"semantic": 0.3, "timing": 0.1, "aesthetic": 0.3, "spatial": -2.0, "total_ref": -1.3})
    lines = table.splitlines()
    assert lines[0].startswith("| trial | w_sem | w_tim | w_aes | w_spa | semantic (Δ ± s.e.) | timing (Δ ± s.e.) | "
                               "aesthetic (Δ ± s.e.) | spatial (Δ ± s.e.) | total (sweep w) | pareto | dominated by")
    assert lines[2].startswith("| before training |")
    assert lines[3].startswith("| trial-00002 |") and "| * |" in lines[3]  # Pareto first, best total first
    assert lines[4].startswith("| trial-00000 |") and "| * |" in lines[4]
    assert "| * |" not in next(line for line in lines if "trial-00001" in line)
    assert "| 0.4000 (**+0.4000 ± 0.0010**) |" in lines[3]
    assert "| trial-00000 | 4 | ok |" in next(line for line in lines if line.startswith("| trial-00001 |"))
    rows_md = [line for line in lines if line.startswith("|")]
    assert rows_md[-1].startswith("| trial-00003 |") and "error: RuntimeError: learner rank 0 failed |" in rows_md[-1]
    png = pareto_png(rows, str(tmp_path / "p.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# ----- a real 2-trial sweep ----------------------------------------------------------------------------
@pytest.mark.slow
def test_two_trial_sweep_logs_nested_runs_and_pareto_table(tmp_path, capsys):
    import mlflow

    from orchestrator.data.synth import write_synthscenes
    from orchestrator.training.pretrain import run_pretrain
    from orchestrator.sweeps.sweep import main

    pre = load_config("tiny", [f"run_dir={tmp_path / 'pre'}", f"policy.checkpoint={tmp_path / 'policy'}",
                               "data.synth.n=12"])
    manifest = write_synthscenes(str(tmp_path / "data"), pre.data.synth, pre.data.s3, progress=False)
    pre.data.manifest = str(manifest)
    pre.pretrain.steps = 2
    run_pretrain(pre)

    sweep_dir = tmp_path / "sweep"
    trial_budget = "[grpo.steps=1,train.val_clips=2,train.checkpoint_every=0,rollout.num_workers=1,learner.num_ranks=1]"
    # A fresh process, as a user runs it: no Ray or MLflow state left by earlier tests.
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "sweep", "tiny", f"run_dir={sweep_dir}", f"data.manifest={manifest}", f"policy.checkpoint={tmp_path / 'policy'}",
                 f"tracking.tracking_uri=sqlite:///{sweep_dir / 'mlflow.db'}",
                 "ray.object_store_mb=256", "ray.num_cpus=4", "sweep.search=grid", "sweep.num_samples=1",
                 "sweep.max_concurrent=2", "sweep.weights.timing=[0.3,1.2]",
                 "sweep.weights.aesthetic=[]", "sweep.weights.spatial=[]", "sweep.trial_cpu_fraction=0.5",
                 f"sweep.trial_overrides={trial_budget}"], capture_output=True, text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "| trial-00000 |" in out and "| trial-00001 |" in out and "before training" in out

    report = json.loads((sweep_dir / "pareto.json").read_text())
    trials = {r["trial"]: r for r in report["trials"]}
    assert sorted(trials) == ["trial-00000", "trial-00001"]
    assert sorted(r["weights"]["timing"] for r in trials.values()) == [0.3, 1.2]
    for r in trials.values():
        assert r["status"] == "ok" and r["steps"] == 1 and set(r["val"]) == set(TEACHERS)
        summary = json.loads((sweep_dir / "trials" / r["trial"] / "summary.json").read_text())
        # change ± s.e. from the trial's paired val_change, per-clip means to pair trials with each other
        assert set(r["change"]) == {*TEACHERS, "total_ref"} and r["change"]["timing"]["se"] >= 0
        assert r["change"]["timing"]["diff"] == pytest.approx(summary["val_change"]["timing"]["diff"])
        assert r["val_clips"] == summary["val_clips_after"]
        assert len(r["val_clips"]["semantic"]) == summary["val_change"]["semantic"]["clips"] >= 1
        assert set(summary["val_clips_before"]["spatial"]) == set(r["val_clips"]["spatial"])
        assert isinstance(r["dominated_by"], list)
    assert any(r["pareto"] for r in trials.values())
    assert (sweep_dir / "pareto.png").exists() and (sweep_dir / "pareto.md").read_text().startswith("| trial |")

    mlflow.set_tracking_uri(f"sqlite:///{sweep_dir / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["prismrl"], output_format="list")
    parent = next(r for r in runs if r.info.run_name == "sweep")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["trial-00000", "trial-00001"]
    client = mlflow.MlflowClient()
    for child in children:
        assert child.info.status == "FINISHED"
        timing_weight = float(child.data.params["rewards.weights.timing"])
        assert timing_weight == trials[child.info.run_name]["weights"]["timing"]
        assert "val/total" in child.data.metrics
        assert "summary.json" in [a.path for a in client.list_artifacts(child.info.run_id)]
    assert {"pareto.md", "pareto.json", "pareto.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_failed_trial_error_names_the_cause_without_ray_wrapping():
    from ray.exceptions import RayTaskError

    from orchestrator.sweeps.sweep import error_text

    try:
        raise RayTaskError("train", "traceback", MemoryError("node low on memory")).as_instanceof_cause()
    except Exception as wrapped:
        assert error_text(wrapped) == "MemoryError: node low on memory"
    assert error_text(RuntimeError("\x1b[36mray::run_trial\x1b[39m failed")) == "RuntimeError: ray::run_trial failed"
