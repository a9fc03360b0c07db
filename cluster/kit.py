"""Reading the launch kit's YAML files and building the `ray job submit` command of a run."""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Sequence

import yaml

KIT_DIR = Path(__file__).parent
LAUNCHER = KIT_DIR / "ray-cluster.yaml"
"""Ray cluster launcher config (`ray up`)."""
RAYJOB = KIT_DIR / "kuberay-rayjob.yaml"
"""KubeRay RayJob manifest (`kubectl apply -f`)."""
RUNTIME_ENV = KIT_DIR / "runtime_env.yaml"
"""Runtime environment for `ray job submit --runtime-env`."""


def load(path: Path | str) -> dict[str, Any]:
    """A kit YAML file as a mapping (a clear error naming the file otherwise)."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top, got {type(data).__name__}")
    return data


def rayjob_runtime_env(manifest: dict[str, Any]) -> dict[str, Any]:
    """The runtime env embedded in a RayJob manifest (spec.runtimeEnvYAML, a YAML string)."""
    try:
        text = manifest["spec"]["runtimeEnvYAML"]
    except KeyError:
        raise ValueError("RayJob manifest has no spec.runtimeEnvYAML") from None
    return yaml.safe_load(text)


# `prismrl` commands that run as a Ray job, and the module each one is (`python -m MODULE`).
JOB_MODULES = {"train": "orchestrator.training.train", "sweep": "orchestrator.sweeps.sweep"}


def submit_command(command: str = "train", config: str = "cluster", overrides: Sequence[str] = (),
                   runtime_env: str = "cluster/runtime_env.yaml") -> str:
    """`ray job submit` of `python -m <the command's module> CONFIG overrides` with the kit's
    runtime env (run from the repository root; RAY_ADDRESS names the cluster's job API)."""
    if command not in JOB_MODULES:
        raise ValueError(f"submit_command: '{command}' is not a job command; one of {', '.join(JOB_MODULES)}")
    entry = ["python", "-m", JOB_MODULES[command], config, *overrides]
    return shlex.join(["ray", "job", "submit", "--runtime-env", runtime_env, "--", *entry])
