"""Sample-efficiency benchmark: Fast-GRPO vs Flow-GRPO vs MixGRPO from one pretrained policy.

Each schedule trains with `orchestrator.training.train.run_training` on the same config (policy checkpoint,
seed, data, steps, batch): only `sampler.schedule` differs (MixGRPO also gets its own window, and a
slide period that crosses the whole schedule within the budget unless set). Validation (ODE,
EMA weights, fixed noise) runs every `train.val_every` steps; the curves are read back from the
run's MLflow store. The target is the best validation total the reference schedule (Flow-GRPO)
reaches after step 0 within its budget; for each schedule the benchmark reports the learner steps
and the training seconds (sum of step times, validation passes excluded) at its first validation
point at or above the target, null when never reached, and the ratios to the reference.
Flow-GRPO trains on every sampler step (sampler.flow_train_steps=0): that is its cost per step.
"""
from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from common.types import TEACHERS
from orchestrator.config.schema import PrismConfig
from policies.schedules import SCHEDULES


@dataclass
class EfficiencyOptions:
    """Options of `prismrl bench efficiency` (set as bench.<field>=value)."""

    schedules: list[str] = field(default_factory=lambda: ["fast_grpo", "flow_grpo", "mix_grpo"])
    """Schedules compared, each a full training run."""
    reference: str = "flow_grpo"
    """Schedule whose best validation total (after step 0) is the target."""
    mix_window: int = 4
    """MixGRPO's window of SDE steps (its paper: 4 of 25)."""
    mix_slide_every: int = 0
    """MixGRPO's training steps per one-step slide; 0 = slide across the whole schedule within grpo.steps."""
    reuse: bool = False
    """Reuse a schedule's finished run (<run_dir>/<schedule>/summary.json and its MLflow run) instead of
    training it again, e.g. after a crash in a later schedule."""


@dataclass
class CurvePoint:
    """One validation pass of one run."""

    step: int
    """Learner steps done before the pass."""
    total: float
    """Mean combined validation reward."""
    train_s: float
    """Training seconds up to the pass (sum of the step times before it; validation excluded)."""
    elapsed_s: float
    """Wall seconds since the first validation pass was logged (validation included)."""
    teachers: dict[str, float]
    """Mean validation reward per teacher."""


def mix_slide_period(steps: int, num_steps: int, window: int) -> int:
    """Training steps per one-step slide so the MixGRPO window, starting at the noisiest position,
    reaches the cleanest one (start num_steps - window) by the last of `steps` training steps."""
    last_start = max(1, num_steps - window)
    return max(1, (steps - 1) // last_start)


def schedule_config(cfg: PrismConfig, schedule: str, opts: EfficiencyOptions) -> PrismConfig:
    """The run config of one schedule (its own run dir under cfg.run_dir)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"bench.schedules: unknown schedule '{schedule}'; allowed: {', '.join(SCHEDULES)}")
    out = copy.deepcopy(cfg)
    out.sampler.schedule = schedule
    out.run_dir = os.path.join(cfg.run_dir, schedule)
    out.train.checkpoint_every = 0
    out.train.resume = "none"
    out.train.checkpoint_dir = None
    out.tracking.run_name = f"{os.path.basename(os.path.normpath(cfg.run_dir))}-{schedule}"
    if not out.tracking.tracking_uri:  # one store for all schedules: one MLflow experiment to compare them in
        out.tracking.tracking_uri = "sqlite:///" + os.path.abspath(os.path.join(cfg.run_dir, "mlflow.db"))
    if out.train.val_every <= 0:
        out.train.val_every = max(1, cfg.grpo.steps // 4)
    if schedule == "flow_grpo":
        out.sampler.flow_train_steps = 0
    if schedule == "mix_grpo":
        out.sampler.window = opts.mix_window
        out.sampler.mix_slide_every = opts.mix_slide_every or mix_slide_period(
            cfg.grpo.steps, cfg.sampler.num_steps, opts.mix_window)
    return out


def curve_from_history(val: dict[str, Sequence[tuple[int, float, int]]],
                       step_seconds: Sequence[tuple[int, float]]) -> list[CurvePoint]:
    """Validation curve from metric histories: val[k] = [(step, value, timestamp_ms)] for k in total and
    the teachers; step_seconds = [(step, time/step)]. Duplicate steps keep the last value logged."""
    by_step: dict[int, dict[str, tuple[float, int]]] = {}
    for key, points in val.items():
        for step, value, ts in points:
            by_step.setdefault(int(step), {})[key] = (float(value), int(ts))
    if not by_step or any("total" not in v for v in by_step.values()):
        raise ValueError("curve_from_history: every validation step needs a val/total value")
    secs = dict((int(s), float(t)) for s, t in step_seconds)
    t_first = min(v["total"][1] for v in by_step.values())
    curve = []
    for step in sorted(by_step):
        vals = by_step[step]
        curve.append(CurvePoint(step, vals["total"][0], sum(t for s, t in secs.items() if s < step),
                                (vals["total"][1] - t_first) / 1000.0,
                                {k: v[0] for k, v in vals.items() if k != "total"}))
    return curve


def target_total(reference_curve: Sequence[CurvePoint]) -> float:
    """Best validation total of the reference after step 0 (the initial pass when there is no other)."""
    later = [p.total for p in reference_curve if p.step > 0]
    return max(later) if later else max(p.total for p in reference_curve)


def first_reaching(curve: Sequence[CurvePoint], target: float) -> Optional[CurvePoint]:
    """The first validation point at or above `target`, None when the curve never gets there."""
    return next((p for p in curve if p.total >= target), None)


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    """numerator / denominator, None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def compare(curves: dict[str, list[CurvePoint]], reference: str) -> dict[str, Any]:
    """steps_to_target, wall_to_target and the reference's cost divided by each schedule's (speed-ups)."""
    if reference not in curves:
        raise ValueError(f"bench.reference '{reference}' is not among the schedules run: {sorted(curves)}")
    target = target_total(curves[reference])
    reached = {s: first_reaching(c, target) for s, c in curves.items()}
    steps = {s: (p.step if p else None) for s, p in reached.items()}
    wall = {s: (p.train_s if p else None) for s, p in reached.items()}
    return {
        "target": target,
        "target_improves_on_start": target > curves[reference][0].total,
        "steps_to_target": steps,
        "wall_to_target": wall,
        "speedup_steps": {s: ratio(steps[reference], steps[s]) for s in curves},
        "speedup_wall": {s: ratio(wall[reference], wall[s]) for s in curves},
    }


def read_curve(tracking_uri: str, run_id: str) -> list[CurvePoint]:
    """The validation curve of one finished run, from its MLflow store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    val = {}
    for key in ("total", *TEACHERS):
        val[key] = [(m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, f"val/{key}")]
    if not val["total"]:
        raise ValueError(f"MLflow run {run_id} at {tracking_uri} has no val/total metric")
    step_s = [(m.step, m.value) for m in client.get_metric_history(run_id, "time/step")]
    return curve_from_history(val, step_s)


def finished_summary(run_cfg: PrismConfig) -> Optional[dict[str, Any]]:
    """The summary.json of a finished run in run_cfg.run_dir made with this very config (run dir and
    tracking aside), else None: a run made before a preset or an override changed is trained again."""
    from orchestrator.config.load import to_dict

    path = os.path.join(run_cfg.run_dir, "summary.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        summary = json.load(f)

    def comparable(config: dict) -> dict:
        return {k: v for k, v in json.loads(json.dumps(config, default=float)).items() if k not in ("run_dir", "tracking")}

    return summary if comparable(summary.get("config", {})) == comparable(to_dict(run_cfg)) else None


def run(cfg: PrismConfig, opts: EfficiencyOptions | None = None) -> dict[str, Any]:
    """Train every schedule, read back the validation curves, compare them with the reference."""
    from orchestrator.training.train import run_training

    opts = opts or EfficiencyOptions()
    if opts.reference not in opts.schedules:
        raise ValueError(f"bench.reference '{opts.reference}' must be one of bench.schedules {opts.schedules}")
    curves, runs = {}, {}
    for schedule in opts.schedules:
        run_cfg = schedule_config(cfg, schedule, opts)
        summary = finished_summary(run_cfg) if opts.reuse else None
        summary = summary or run_training(run_cfg)
        curves[schedule] = read_curve(summary["mlflow"]["tracking_uri"], summary["mlflow"]["run_id"])
        runs[schedule] = {
            "run_dir": run_cfg.run_dir, "mlflow": summary["mlflow"], "steps": summary["steps"],
            "train_wall_s": summary["train_wall_s"], "wall_s": summary["wall_s"],
            "train_s_per_step": curves[schedule][-1].train_s / max(1, curves[schedule][-1].step),
            "window": run_cfg.sampler.window, "mix_slide_every": run_cfg.sampler.mix_slide_every,
        }
    result = compare(curves, opts.reference)
    result["reference"] = opts.reference
    result["curves"] = {s: [vars(p) for p in c] for s, c in curves.items()}
    result["runs"] = runs
    result["setup"] = {"steps": cfg.grpo.steps, "val_every": schedule_config(cfg, opts.reference, opts).train.val_every,
                       "prompts_per_step": cfg.grpo.prompts_per_step, "group_size": cfg.grpo.group_size,
                       "num_steps": cfg.sampler.num_steps, "policy_checkpoint": cfg.policy.checkpoint,
                       "seed": cfg.seed, "manifest": cfg.data.manifest, "val_clips": cfg.train.val_clips}
    return result


def _fmt(value: Optional[float], spec: str) -> str:
    return "not reached" if value is None else format(value, spec)


def markdown(result: dict[str, Any]) -> str:
    """Steps and training seconds to the target per schedule, then the validation curves."""
    ref = result["reference"]
    lines = [f"target: best val total of {ref} after step 0 = {result['target']:.4f}"
             + ("" if result["target_improves_on_start"] else f" ({ref} did not improve on the start)"), "",
             "| schedule | steps to target | train s to target | speed-up (steps) | speed-up (wall) | s/step | final val |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s, curve in result["curves"].items():
        sp_steps, sp_wall = result["speedup_steps"][s], result["speedup_wall"][s]
        lines.append(f"| {s} | {_fmt(result['steps_to_target'][s], 'd')} | {_fmt(result['wall_to_target'][s], '.1f')} | "
                     f"{_fmt(sp_steps, '.2f')} | {_fmt(sp_wall, '.2f')} | {result['runs'][s]['train_s_per_step']:.2f} | "
                     f"{curve[-1]['total']:.4f} |")
    schedules = list(result["curves"])
    lines += ["", "| step | " + " | ".join(schedules) + " |", "|---:|" + "---:|" * len(schedules)]
    steps = sorted({p["step"] for c in result["curves"].values() for p in c})
    for step in steps:
        row = []
        for s in schedules:
            point = next((p for p in result["curves"][s] if p["step"] == step), None)
            row.append("" if point is None else f"{point['total']:.4f}")
        lines.append(f"| {step} | " + " | ".join(row) + " |")
    return "\n".join(lines)
