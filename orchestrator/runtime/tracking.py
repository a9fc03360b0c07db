"""MLflow tracking for a run: params, per-step metrics, media and figures.

Default store: a sqlite database in the run dir (MLflow 3 refuses plain `file:` stores) and the
experiment's artifact location in <run_dir>/mlartifacts, so a run is one folder (move, copy or delete
it whole); `tracking.tracking_uri` (or MLFLOW_TRACKING_URI) points at a server and its artifact
store instead. Params come from the redacted config (orchestrator.config.redact): no credential
reaches the store.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import soundfile as sf

from orchestrator.config.load import flatten, to_dict
from orchestrator.config.schema import PrismConfig
from orchestrator.runtime.plots import spectrogram_png

log = logging.getLogger(__name__)
MAX_PARAM_CHARS = 500
NODE_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")
"""The node's MLFLOW_TRACKING_URI as the process started with it. Read once at import: MLflow's own
`set_tracking_uri` writes that variable, so reading it later would pick up a previous run's store."""


def tracking_uri(cfg: PrismConfig) -> str:
    """The configured URI, else MLFLOW_TRACKING_URI (set on cluster nodes, see cluster/), else
    sqlite:///<abs run_dir>/mlflow.db."""
    if cfg.tracking.tracking_uri:
        return cfg.tracking.tracking_uri
    if NODE_TRACKING_URI:
        return NODE_TRACKING_URI
    return "sqlite:///" + os.path.abspath(os.path.join(cfg.run_dir, "mlflow.db"))


def uses_default_store(cfg: PrismConfig) -> bool:
    """True when the run tracks into its own sqlite file (no configured URI, no node URI)."""
    return not cfg.tracking.tracking_uri and not NODE_TRACKING_URI


def run_artifact_location(cfg: PrismConfig) -> str:
    """file:// URI of <run_dir>/mlartifacts: the default store's artifacts live in the run dir."""
    return Path(os.path.abspath(os.path.join(cfg.run_dir, "mlartifacts"))).as_uri()


def existing_run(cfg: PrismConfig, run_id: str | None) -> str | None:
    """`run_id` if that run is in the store `cfg` tracks into (a resumed run continues it), else None."""
    if not run_id:
        return None
    import mlflow

    try:
        mlflow.MlflowClient(tracking_uri(cfg)).get_run(run_id)
    except Exception:  # a checkpoint from another store, or a deleted run: start a new run
        return None
    return run_id


class Tracker:
    """One MLflow run (optionally nested under an active parent run)."""

    def __init__(self, cfg: PrismConfig, nested: bool = False, run_id: str | None = None):
        import mlflow

        self.mlflow = mlflow
        self.cfg = cfg
        os.makedirs(cfg.run_dir, exist_ok=True)
        mlflow.set_tracking_uri(tracking_uri(cfg))
        if uses_default_store(cfg) and mlflow.get_experiment_by_name(cfg.tracking.experiment) is None:
            mlflow.create_experiment(cfg.tracking.experiment, artifact_location=run_artifact_location(cfg))
        mlflow.set_experiment(cfg.tracking.experiment)
        name = cfg.tracking.run_name or os.path.basename(os.path.normpath(cfg.run_dir))
        self.run = mlflow.start_run(run_id=run_id, run_name=None if run_id else name, nested=nested)
        self.run_id = self.run.info.run_id
        self.last_step: dict[str, int] = {}
        """Per metric key, the last step logged: a step repeated after a recovery or a resume is not
        logged again, so the run's history has each step once."""
        if run_id is None:
            self.log_params(flatten(to_dict(cfg)))
        else:
            self._read_last_steps()

    def _read_last_steps(self) -> None:
        client = self.mlflow.MlflowClient()
        for key in client.get_run(self.run_id).data.metrics:
            history = client.get_metric_history(self.run_id, key)
            if history:
                self.last_step[key] = max(m.step for m in history)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Flattened config as params (long values truncated)."""
        clean = {k: str(v)[:MAX_PARAM_CHARS] for k, v in params.items()}
        items = list(clean.items())
        for i in range(0, len(items), 90):
            self.mlflow.log_params(dict(items[i : i + 90]))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Finite numeric metrics at a step (MLflow keys allow '/', '.', '_', '-')."""
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.floating, np.integer))
                 and math.isfinite(float(v)) and step > self.last_step.get(k, -1)}
        if clean:
            self.mlflow.log_metrics(clean, step=step)
            self.last_step.update({k: step for k in clean})

    def log_artifact(self, path: str, artifact_path: str | None = None) -> None:
        """A file as an artifact."""
        self.mlflow.log_artifact(path, artifact_path=artifact_path)

    def log_json(self, data: Any, name: str) -> None:
        """A JSON artifact."""
        self.mlflow.log_dict(data, name)

    def log_media(self, clip_id: str, audio: np.ndarray, sample_rate: int, cot_text: str, step: int) -> None:
        """A validation clip's audio (wav), spectrogram (PNG) and CoT text under media/step_<n>/."""
        folder = f"media/step_{step:06d}"
        with tempfile.TemporaryDirectory() as tmp:
            wav = os.path.join(tmp, f"{clip_id}.wav")
            sf.write(wav, np.asarray(audio, dtype=np.float32).T, sample_rate)
            png = spectrogram_png(audio, sample_rate, os.path.join(tmp, f"{clip_id}.png"), title=clip_id)
            txt = os.path.join(tmp, f"{clip_id}.txt")
            with open(txt, "w") as f:
                f.write(cot_text + "\n")
            for p in (wav, png, txt):
                self.mlflow.log_artifact(p, artifact_path=folder)

    def end(self, status: str = "FINISHED") -> None:
        """Close the run."""
        self.mlflow.end_run(status=status)


def write_json(path: str, data: Any) -> None:
    """Pretty JSON, written atomically."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=False, default=float)
    os.replace(tmp, path)
