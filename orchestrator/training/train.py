"""`prismrl train CONFIG [key=value ...]` (also `python -m orchestrator.training.train ...`): a Fast-GRPO run.

Joins the Ray cluster at RAY_ADDRESS when set (as under `ray job submit`), else starts a local Ray
on 127.0.0.1. Writes <run_dir>/summary.json, MLflow metrics/media, and checkpoints.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from common.types import TEACHERS
from orchestrator.config.argv import command_config
from orchestrator.config.load import to_dict
from orchestrator.config.redact import redact_text
from orchestrator.config.schema import PrismConfig
from orchestrator.evaluation.paired import paired_differences, per_clip_table
from orchestrator.runtime.plots import reward_curves_png
from orchestrator.runtime.tracking import Tracker, write_json

log = logging.getLogger("prismrl.train")


def check_inputs(cfg: PrismConfig) -> None:
    """Fail before starting Ray on a missing manifest (training or validation) or policy checkpoint, or a
    bad teacher config."""
    manifest = cfg.data.manifest
    if not manifest.startswith("s3://") and not os.path.exists(manifest):
        raise FileNotFoundError(
            f"data.manifest: {manifest} does not exist; make one with `prismrl data synth run_dir=DIR` "
            f"and pass data.manifest=DIR/manifest.parquet")
    val_manifest = cfg.train.val_manifest
    if val_manifest and not val_manifest.startswith("s3://") and not os.path.exists(val_manifest):
        raise FileNotFoundError(
            f"train.val_manifest: {val_manifest} does not exist; make one with `prismrl data synth run_dir=DIR "
            f"seed=N` (another seed than the training set's) or set train.val_manifest=null")
    from orchestrator.training.roles import teacher_factories

    teacher_factories(cfg)  # unknown backend or option key: stop here, naming it
    ckpt = cfg.policy.checkpoint
    if ckpt and not ckpt.startswith("s3://") and not os.path.exists(ckpt):
        raise FileNotFoundError(
            f"policy.checkpoint: {ckpt} does not exist; pretrain one with `prismrl pretrain` or set "
            f"policy.checkpoint=null to start from random weights")


def run_training(cfg: PrismConfig, stop_after: int | None = None, tracker: Tracker | None = None) -> dict[str, Any]:
    """A whole training run on Ray; returns the summary (also written to summary.json).

    tracker: an MLflow run to log into (a sweep trial's nested run); default a new one. It is ended here."""
    import ray
    from tqdm import tqdm

    from orchestrator.training.checkpoint_store import resolve_resume
    from orchestrator.runtime.ray_setup import init_ray
    from orchestrator.runtime.tracking import existing_run
    from orchestrator.training.trainer import Trainer, checkpoint_store

    check_inputs(cfg)
    os.makedirs(cfg.run_dir, exist_ok=True)
    resume_from = resolve_resume(checkpoint_store(cfg), cfg.train.resume)
    # A resumed run continues the MLflow run its checkpoint was written by (same run id, one history).
    continued = existing_run(cfg, saved_run_id(resume_from)) if resume_from and tracker is None else None
    owns_ray = init_ray(cfg)
    tracker = tracker or Tracker(cfg, run_id=continued)
    if resume_from:
        tracker.mlflow.set_tag("prismrl.resumed_from", os.path.basename(resume_from.rstrip("/")))
    trainer = None
    status = "FAILED"
    try:
        t0 = time.perf_counter()
        trainer = Trainer(cfg)
        trainer.mlflow_run_id = tracker.run_id
        if resume_from:
            trainer.restore(resume_from)
        precision = trainer.roles.fleet.sampling_precisions()  # what rollout.dtype resolved to (auto: per CPU)
        tracker.mlflow.set_tag("prismrl.rollout_precision", ",".join(precision))
        val_before = trainer.validate(trainer.start_step, tracker)
        rows_before = trainer.last_val_rows
        log.info("val_before %s", _fmt(val_before))
        desc = "nft" if cfg.train.algorithm == "nft" else "fast-grpo"
        bar = tqdm(total=cfg.grpo.steps, initial=trainer.start_step, desc=desc, unit="step",
                   disable=not cfg.tracking.progress, dynamic_ncols=True)
        t_fit, first_step = time.perf_counter(), trainer.start_step
        history = trainer.fit(tracker, bar, stop_after=stop_after)
        fit_s = time.perf_counter() - t_fit
        bar.close()
        steps_done = len(history) and int(history[-1]["step"]) + 1
        if steps_done and (not cfg.train.checkpoint_every or steps_done % cfg.train.checkpoint_every):
            trainer.save(steps_done)
        val_after = trainer.validate(steps_done, tracker)
        log.info("val_after %s", _fmt(val_after))
        val_change = paired_differences(trainer.last_val_rows, rows_before, [*TEACHERS, "total"])
        # every validation pass against the first, clip by clip (train.val_every > 0 gives a curve)
        val_curve = [{"step": s, "change": paired_differences(rows, rows_before, [*TEACHERS, "total"])}
                     for s, rows in sorted(trainer.val_rows_by_step.items())]
        for point in val_curve[:-1]:
            tracker.log_metrics({f"val_change/{k}": v["diff"] for k, v in point["change"].items()}, point["step"])
            tracker.log_metrics({f"val_change/{k}_se": v["se"] for k, v in point["change"].items()}, point["step"])
        tracker.log_metrics({f"val_change/{k}": v["diff"] for k, v in val_change.items()}, steps_done)
        tracker.log_metrics({f"val_change/{k}_se": v["se"] for k, v in val_change.items()}, steps_done)
        policy_ema = export_ema_policy(cfg, trainer)
        steps_run = len([h for h in history if h["step"] >= first_step])
        summary = {
            "config": to_dict(cfg),
            "steps": steps_done,
            "steps_this_run": steps_run,
            "wall_s": time.perf_counter() - t0,
            "train_wall_s": fit_s,
            "samples_per_s": trainer.samples_done / max(fit_s, 1e-9) if steps_run else 0.0,
            "val_before": val_before,
            "val_after": val_after,
            "val_change": val_change,
            # per teacher, each validation clip's mean before and after training: later comparisons of
            # runs validated on the same clips and noise (sweep trials) pair clip by clip
            "val_clips_before": per_clip_table(rows_before, TEACHERS),
            "val_clips_after": per_clip_table(trainer.last_val_rows, TEACHERS),
            "val_curve": val_curve,
            "max_staleness_seen": trainer.buffer.max_seen_staleness,
            "rollout_worker_replacements": trainer.roles.fleet.replacements,
            "rollout_precision": precision,
            "skipped_clips": trainer.skipped_clips,
            "policy_ema": policy_ema,
            "faults": trainer.faults.events,
            "mlflow": {"tracking_uri": redact_text(tracker.mlflow.get_tracking_uri()), "run_id": tracker.run_id,
                       "continued": bool(continued)},
        }
        write_json(os.path.join(cfg.run_dir, "summary.json"), summary)
        tracker.log_artifact(os.path.join(cfg.run_dir, "summary.json"))
        if history:
            png = reward_curves_png(history, os.path.join(cfg.run_dir, "reward_curves.png"),
                                    [f"reward/{t}/mean" for t in TEACHERS] + ["reward/total"],
                                    title=f"{cfg.sampler.schedule} on {os.path.basename(cfg.data.manifest)}")
            tracker.log_artifact(png)
        status = "FINISHED"
        return summary
    finally:
        tracker.end(status)
        if trainer is not None:
            trainer.shutdown()
        if owns_ray:
            ray.shutdown()


def saved_run_id(checkpoint: str) -> str | None:
    """The MLflow run id a checkpoint's controller.json names (None for older checkpoints)."""
    import json

    with open(os.path.join(checkpoint, "controller.json")) as f:
        return json.load(f).get("mlflow_run_id")


def export_ema_policy(cfg: PrismConfig, trainer) -> str:
    """The learner's EMA weights as a policy checkpoint, <run_dir>/policy_ema (what `prismrl generate`
    and `prismrl eval` take as checkpoint=PATH); returns its path."""
    import dataclasses

    import ray

    from policies.checkpoint import save_policy
    from policies.build import build_policy

    _, ref = trainer.roles.learner.get_ema_weights()
    policy = build_policy(cfg.policy)
    policy.load_state_dict(ray.get(ref))
    return save_policy(policy, dataclasses.replace(cfg.policy, checkpoint=None), os.path.join(cfg.run_dir, "policy_ema"))


def change_line(change: dict[str, dict[str, float]]) -> str:
    """`teacher=+diff±se` per teacher and the total: after minus before, paired over the val clips."""
    return " ".join(f"{k}={v['diff']:+.4f}±{v['se']:.4f}" for k, v in change.items())


def _fmt(vals: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in vals.items())


def main(argv: list[str] | None = None) -> int:
    """Entry point of `prismrl train` and `python -m orchestrator.training.train`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = command_config(argv, "train", __doc__)
    if cfg is None:
        return 0
    summary = run_training(cfg)
    print(f"run dir: {cfg.run_dir}")
    print(f"val_before: {_fmt(summary['val_before'])}")
    print(f"val_after:  {_fmt(summary['val_after'])}")
    print(f"val_change: {change_line(summary['val_change'])}")
    print(f"steps={summary['steps']} wall_s={summary['wall_s']:.1f} samples_per_s={summary['samples_per_s']:.2f}")
    return 0


if __name__ == "__main__":
    from orchestrator.runtime.ray_setup import loopback_for_local_ray

    loopback_for_local_ray()
    raise SystemExit(main())
