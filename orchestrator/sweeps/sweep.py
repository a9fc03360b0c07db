"""`prismrl sweep CONFIG [key=value ...]`: a Ray Tune search over the four reward weights.

Each trial is a whole training run (its own rollout workers, reward pools and DeepSpeed learner
ranks) at the budget of `sweep.trial_overrides`, inside one placement group sized from the config
(see orchestrator/sweeps/space.py). Trials log to MLflow runs nested under the sweep's run; at the
end a table of every trial's per-teacher validation rewards and change from before training (± paired
s.e.), with the trials Pareto-optimal beyond noise (`sweep.pareto_z` s.e.) marked, is printed and
written to <run_dir>/pareto.md, pareto.json and pareto.png (also logged to MLflow).

    prismrl sweep demo sweep.num_samples=4 'sweep.trial_overrides=[grpo.steps=4]'

A failed trial is listed with its error; the others go on.
"""
from __future__ import annotations

import logging
import math
import os
import re
import sys
import time
from typing import Any

from omegaconf import OmegaConf

from common.types import TEACHERS
from orchestrator.config.argv import command_config
from orchestrator.config.load import ConfigError, carry_secrets, load_config, to_dict
from orchestrator.config.schema import PrismConfig
from orchestrator.sweeps.report import mark_pareto, markdown_table, pareto_png, sorted_rows
from orchestrator.sweeps.space import check_sweep_config, scale_trial_cpus, trial_bundles, weight_space
from orchestrator.sweeps.trial import PARENT_TAG, run_trial
from orchestrator.runtime.tracking import Tracker, tracking_uri, write_json

log = logging.getLogger("prismrl.sweep")
METRIC = "val_total_ref"
"""What ASHA (and "best trial") ranks by: the validation total under the sweep config's weights."""
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def trial_template(cfg: PrismConfig, saved_config: str) -> PrismConfig:
    """The config every trial starts from: the sweep's config (saved as YAML) with
    `sweep.trial_overrides`, the sweep's MLflow store, no progress bar, CPUs scaled by
    `sweep.trial_cpu_fraction`. Fails here, naming the override, before any trial starts."""
    extra = [f"tracking.tracking_uri={tracking_uri(cfg)}", "tracking.progress=false"]
    try:
        template = load_config(saved_config, list(cfg.sweep.trial_overrides) + extra, command="sweep")
    except ConfigError as e:
        raise ConfigError(f"sweep.trial_overrides: {e}") from None
    # sweep_config.yaml holds credentials as <redacted>; the trials get them from memory.
    return scale_trial_cpus(carry_secrets(cfg, template), cfg.sweep.trial_cpu_fraction)


def trial_name(trial: Any) -> str:
    """trial-<index>: the trial's Tune name, directory, run dir and MLflow run name."""
    return "trial-" + str(trial.trial_id).rsplit("_", 1)[-1]


def _scheduler(cfg: PrismConfig, template: PrismConfig):
    if not cfg.sweep.asha:
        return None
    from ray.tune.schedulers import ASHAScheduler

    grace = cfg.sweep.asha_grace_steps or template.train.val_every
    if not template.train.val_every:
        raise ValueError("sweep.asha=true needs validations during training: set train.val_every > 0 "
                         "(or add it to sweep.trial_overrides)")
    return ASHAScheduler(time_attr="step", max_t=max(template.grpo.steps, grace), grace_period=grace,
                         reduction_factor=cfg.sweep.asha_reduction_factor)


def error_text(error: BaseException) -> str:
    """`Type: message` of what failed inside a trial: the cause a RayTaskError wraps, no colour codes."""
    cause = getattr(error, "cause", None) or error
    return ANSI.sub("", f"{type(cause).__name__}: {cause}").strip()


def _row(result: Any, runs_by_name: dict[str, Any]) -> dict[str, Any]:
    name = os.path.basename(os.path.normpath(result.path))
    m = result.metrics or {}
    val = {t: float(m[f"val_{t}"]) for t in TEACHERS if f"val_{t}" in m}
    status = "error" if result.error else ("ok" if m.get("done") else "stopped")
    run = runs_by_name.get(name)
    return {
        "trial": name,
        "status": status,
        "weights": {t: float(result.config[t]) for t in TEACHERS},
        "val": val if len(val) == len(TEACHERS) else {},
        "val_total_ref": float(m.get(METRIC, math.nan)),
        "val_total": float(m.get("val_total", math.nan)),
        "steps": int(m.get("step", 0)),
        "mlflow_run_id": run.info.run_id if run else None,
        "error": error_text(result.error) if result.error else None,
        "before": {t: float(m[f"before_val_{t}"]) for t in TEACHERS if f"before_val_{t}" in m},
        "before_total_ref": float(m.get(f"before_{METRIC}", math.nan)),
        # from the final report only (a stopped trial has none): change from before training ± s.e.
        "change": {k: {"diff": float(m[f"change_{k}"]), "se": float(m[f"change_{k}_se"])}
                   for k in (*TEACHERS, "total_ref") if f"change_{k}" in m and f"change_{k}_se" in m},
        "val_clips": m.get("val_clips") or {},
    }


def _child_runs(mlflow: Any, parent_run_id: str, experiment_id: str) -> dict[str, Any]:
    runs = mlflow.search_runs(experiment_ids=[experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
                              output_format="list")
    return {r.info.run_name: r for r in runs}


def _close_child_runs(mlflow: Any, runs: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """Trials ASHA stopped (their process was ended mid-run) leave their run RUNNING: mark KILLED."""
    status = {r["trial"]: r["status"] for r in rows}
    client = mlflow.MlflowClient()
    for name, run in runs.items():
        if run.info.status == "RUNNING":
            client.set_tag(run.info.run_id, "sweep.status", status.get(name, "unknown"))
            client.set_terminated(run.info.run_id, "KILLED")


def run_sweep(cfg: PrismConfig) -> dict[str, Any]:
    """The whole sweep; returns {"rows", "baseline", "table", "files", "mlflow", "wall_s"}."""
    import ray
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from orchestrator.runtime.ray_setup import init_ray
    from orchestrator.training.train import check_inputs

    check_sweep_config(cfg.sweep)
    check_inputs(cfg)
    t0 = time.perf_counter()
    sweep_dir = os.path.abspath(cfg.run_dir)
    os.makedirs(sweep_dir, exist_ok=True)
    saved = os.path.join(sweep_dir, "sweep_config.yaml")
    OmegaConf.save(OmegaConf.create(to_dict(cfg)), saved)
    template = trial_template(cfg, saved)
    bundles = trial_bundles(template)
    space = weight_space(cfg.sweep, to_dict(cfg)["rewards"]["weights"])
    scheduler = _scheduler(cfg, template)
    ref_weights = {t: float(getattr(cfg.rewards.weights, t)) for t in TEACHERS}
    # Trials keep the driver's working directory, so relative paths (manifest, checkpoints) resolve alike.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")

    owns_ray = init_ray(cfg)
    parent = Tracker(cfg)
    status, rows, runs = "FAILED", [], {}
    try:
        parent.log_json({"bundles": bundles, "template": to_dict(template)}, "sweep/trial_resources.json")
        trainable = tune.with_parameters(run_trial, template=template, sweep_dir=sweep_dir,
                                         parent_run_id=parent.run_id, ref_weights=ref_weights,
                                         checkpoint_root=cfg.train.checkpoint_dir)
        tuner = tune.Tuner(
            tune.with_resources(trainable, tune.PlacementGroupFactory(bundles, strategy="PACK")),
            param_space=space,
            tune_config=tune.TuneConfig(
                metric=METRIC, mode="max", num_samples=cfg.sweep.num_samples, scheduler=scheduler,
                search_alg=BasicVariantGenerator(random_state=cfg.seed, max_concurrent=cfg.sweep.max_concurrent),
                trial_name_creator=trial_name, trial_dirname_creator=trial_name),
            run_config=tune.RunConfig(name="tune", storage_path=sweep_dir, verbose=1,
                                      failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)),
        )
        grid = tuner.fit()  # a failed trial is recorded in its Result; fit() does not raise for it
        runs = _child_runs(parent.mlflow, parent.run_id, parent.run.info.experiment_id)
        rows = mark_pareto([_row(r, runs) for r in grid], cfg.sweep.pareto_z)
        report = write_report(rows, sweep_dir, ref_weights, parent, cfg.sweep.pareto_z)
        status = "FINISHED"
        return {"rows": sorted_rows(rows), **report, "wall_s": time.perf_counter() - t0,
                "mlflow": {"tracking_uri": tracking_uri(cfg), "run_id": parent.run_id}}
    finally:
        if runs:
            _close_child_runs(parent.mlflow, runs, rows)
        parent.end(status)
        if owns_ray:
            ray.shutdown()


def write_report(rows: list[dict[str, Any]], sweep_dir: str, ref_weights: dict[str, float],
                 tracker: Tracker, z: float) -> dict[str, Any]:
    """pareto.md, pareto.json and pareto.png in the sweep dir, logged to the sweep's MLflow run
    with summary metrics (trials ok/failed/stopped, Pareto count, best comparable total); `z`: the
    noise margin the Pareto marks were made with (`sweep.pareto_z`), named in the report."""
    done = [r for r in rows if r["before"]]
    baseline = ({**done[0]["before"], "total_ref": done[0]["before_total_ref"]} if done else None)
    table = markdown_table(rows, baseline, z)
    files = {"md": os.path.join(sweep_dir, "pareto.md"), "json": os.path.join(sweep_dir, "pareto.json"),
             "png": os.path.join(sweep_dir, "pareto.png")}
    with open(files["md"], "w") as f:
        f.write(table + "\n")
    write_json(files["json"], {"teachers": list(TEACHERS), "reference_weights": ref_weights, "metric": METRIC,
                               "pareto_z": z, "baseline": baseline, "trials": sorted_rows(rows)})
    pareto_png(rows, files["png"], z=z,
               title=f"{os.path.basename(sweep_dir)}: change from before training per teacher (±1 s.e.)")
    for path in files.values():
        tracker.log_artifact(path)
    totals = [r["val_total_ref"] for r in rows if math.isfinite(r["val_total_ref"])]
    tracker.log_metrics({"sweep/trials_ok": sum(r["status"] == "ok" for r in rows),
                         "sweep/trials_failed": sum(r["status"] == "error" for r in rows),
                         "sweep/trials_stopped": sum(r["status"] == "stopped" for r in rows),
                         "sweep/pareto_trials": sum(bool(r["pareto"]) for r in rows),
                         **({f"sweep/best_{METRIC}": max(totals)} if totals else {})}, step=0)
    return {"baseline": baseline, "table": table, "files": files}


def main(argv: list[str] | None = None) -> int:
    """Entry point of `prismrl sweep`; exit code 1 when no trial finished."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = command_config(argv, "sweep", __doc__)
    if cfg is None:
        return 0
    out = run_sweep(cfg)
    print(out["table"])
    print(f"\nsweep dir: {cfg.run_dir}  ({out['wall_s']:.0f} s)")
    print(f"files: {', '.join(out['files'].values())}")
    print(f"mlflow: {out['mlflow']['tracking_uri']} run {out['mlflow']['run_id']}")
    for r in out["rows"]:
        if r["error"]:
            print(f"{r['trial']} failed: {r['error'].splitlines()[0]}")
    return 0 if any(r["status"] == "ok" for r in out["rows"]) else 1


if __name__ == "__main__":
    from orchestrator.runtime.ray_setup import loopback_for_local_ray

    loopback_for_local_ray()
    raise SystemExit(main())
