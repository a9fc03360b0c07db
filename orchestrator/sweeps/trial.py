"""One trial of a reward-weight sweep: a full training run inside its Tune placement group, logged
to an MLflow run nested under the sweep's run, reporting every validation pass to Tune.

Trials run in other processes than the sweep's driver, so `mlflow.start_run(nested=True)` (which
needs the parent active in the same process) cannot nest them: the trial's run is created with
the tag `mlflow.parentRunId` in the sweep's tracking store instead.
"""
from __future__ import annotations

import copy
import os
from typing import Any, Callable, Mapping, Optional

from common.types import TEACHERS
from orchestrator.config.load import flatten, to_dict
from orchestrator.config.schema import PrismConfig
from orchestrator.evaluation.paired import paired_differences
from orchestrator.sweeps.space import reference_total
from orchestrator.runtime.tracking import Tracker, tracking_uri

PARENT_TAG = "mlflow.parentRunId"
"""The MLflow tag that nests a run under another in the UI and in searches."""
MAX_ERROR_CHARS = 4000


def trial_config(template: PrismConfig, weights: Mapping[str, float], trial_name: str, sweep_dir: str,
                 checkpoint_root: Optional[str] = None) -> PrismConfig:
    """The config of one trial: the sweep's trial template with the trial's reward weights, its own
    run dir (<sweep_dir>/trials/<trial_name>) and its own checkpoint dir.

    checkpoint_root: the sweep config's `train.checkpoint_dir` (e.g. s3://bucket/sweeps/<sweep>); the
    trial writes under <checkpoint_root>/trials/<trial_name>, never into another trial's checkpoints
    (with `train.resume=auto` a shared directory would resume one trial from another). None = the
    trial's run dir."""
    cfg = copy.deepcopy(template)
    missing = [t for t in TEACHERS if t not in weights]
    if missing:
        raise ValueError(f"trial {trial_name}: no weight for teacher(s) {missing}")
    for t in TEACHERS:
        setattr(cfg.rewards.weights, t, float(weights[t]))
    cfg.run_dir = os.path.join(sweep_dir, "trials", trial_name)
    cfg.tracking.run_name = trial_name
    cfg.train.checkpoint_dir = f"{checkpoint_root.rstrip('/')}/trials/{trial_name}" if checkpoint_root else None
    return cfg


def trial_result(val: Mapping[str, float], step: int, ref_weights: Mapping[str, float]) -> dict[str, float]:
    """What a trial reports to Tune for one validation pass: `step`, `val_<teacher>`, `val_total`
    (under the trial's own weights) and `val_total_ref` (under the sweep's weights, comparable)."""
    out: dict[str, float] = {"step": int(step)}
    out.update({f"val_{k}": float(v) for k, v in val.items()})
    out["val_total_ref"] = reference_total(val, ref_weights)
    return out


def change_result(summary: Mapping[str, Any], ref_weights: Mapping[str, float]) -> dict[str, Any]:
    """What a trial adds to its final Tune report from its training summary: per teacher and
    `total`, `change_<k>` and `change_<k>_se` (after minus before training, paired clip by clip:
    summary["val_change"]); `change_total_ref` (+ `_se`), the same for the sweep's comparable total,
    paired from the per-clip means; and `val_clips` {teacher: {clip_id: mean after training}}, so
    the report can pair two trials clip by clip (same clips and noise in every trial)."""
    change = summary["val_change"]
    missing = [k for k in (*TEACHERS, "total") if k not in change]
    if missing:
        raise ValueError(f"trial summary: val_change has no entry for {missing}")
    out: dict[str, Any] = {}
    for k in (*TEACHERS, "total"):
        out[f"change_{k}"], out[f"change_{k}_se"] = float(change[k]["diff"]), float(change[k]["se"])
    after, before = summary["val_clips_after"], summary["val_clips_before"]

    def ref_rows(clips: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
        ids = clips[TEACHERS[0]]
        return [{"clip_id": c, "total_ref": reference_total({t: clips[t][c] for t in TEACHERS}, ref_weights)}
                for c in ids]

    ref = paired_differences(ref_rows(after), ref_rows(before), ["total_ref"])["total_ref"]
    out["change_total_ref"], out["change_total_ref_se"] = ref["diff"], ref["se"]
    out["val_clips"] = {t: {c: float(v) for c, v in after[t].items()} for t in TEACHERS}
    return out


class TrialTracker(Tracker):
    """The MLflow run of one trial, nested under the sweep's run; each validation it logs is also
    reported to Tune (`report`), so ASHA can stop weak trials early."""

    def __init__(self, cfg: PrismConfig, parent_run_id: str, ref_weights: Mapping[str, float],
                 report: Callable[[dict], None]):
        import mlflow

        mlflow.set_tracking_uri(tracking_uri(cfg))
        experiment = mlflow.set_experiment(cfg.tracking.experiment)
        run = mlflow.MlflowClient().create_run(experiment.experiment_id, run_name=cfg.tracking.run_name,
                                               tags={PARENT_TAG: parent_run_id})
        super().__init__(cfg, run_id=run.info.run_id)
        self.log_params(flatten(to_dict(cfg)))
        self.ref_weights = dict(ref_weights)
        self.report = report

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log to MLflow; a complete validation pass (`val/<teacher>` for all four) also goes to Tune."""
        super().log_metrics(metrics, step)
        val = {k[len("val/"):]: float(v) for k, v in metrics.items() if k.startswith("val/")}
        if all(t in val for t in TEACHERS):
            self.report(trial_result(val, step, self.ref_weights))

    def fail(self, error: BaseException) -> None:
        """Mark the run FAILED with the error as a tag (whether or not training had started it)."""
        client = self.mlflow.MlflowClient()
        client.set_tag(self.run_id, "error", f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS])
        client.set_terminated(self.run_id, "FAILED")


def run_trial(weights: dict[str, float], *, template: PrismConfig, sweep_dir: str, parent_run_id: str,
              ref_weights: dict[str, float], checkpoint_root: Optional[str] = None) -> None:
    """Tune function trainable: train with `weights`, report validations, then the summary."""
    from ray import tune

    from orchestrator.training.train import run_training

    name = tune.get_context().get_trial_name()
    cfg = trial_config(template, weights, name, sweep_dir, checkpoint_root)
    tracker = TrialTracker(cfg, parent_run_id, ref_weights, tune.report)
    try:
        summary = run_training(cfg, tracker=tracker)
    except BaseException as e:
        tracker.fail(e)
        raise
    final: dict[str, Any] = trial_result(summary["val_after"], summary["steps"], ref_weights)
    final.update({f"before_{k}": v for k, v in trial_result(summary["val_before"], 0, ref_weights).items()
                  if k != "step"})
    final.update(change_result(summary, ref_weights))
    final.update(samples_per_s=float(summary["samples_per_s"]), wall_s=float(summary["wall_s"]),
                 mlflow_run_id=tracker.run_id, run_dir=cfg.run_dir, done=True)
    tune.report(final)
