"""The cluster launch kit: the launcher YAML, the KubeRay RayJob and the runtime env parse and
carry what a cluster run needs, with no hosts and no secrets committed."""
from __future__ import annotations

import re

import pytest

from cluster.kit import LAUNCHER, RAYJOB, RUNTIME_ENV, load, rayjob_runtime_env, submit_command
from orchestrator.config import load_config

IPV4 = re.compile(r"\b(?!0\.0\.0\.0\b)\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")
SECRET_VALUE = re.compile(r"(AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|aws_secret)\s*[:=]\s*['\"]?[A-Za-z0-9/+]{8,}")


@pytest.mark.parametrize("path", [LAUNCHER, RAYJOB, RUNTIME_ENV])
def test_no_hosts_or_secrets_committed(path):
    text = path.read_text()
    assert not IPV4.findall(text), f"{path.name} hard-codes an address"
    assert not SECRET_VALUE.search(text), f"{path.name} holds a credential"


def test_launcher_has_gpu_head_and_worker_groups_and_installs_the_project():
    cfg = load(LAUNCHER)
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    workers = [t for name, t in types.items() if name != cfg["head_node_type"]]
    assert head["resources"]["GPU"] >= 1
    assert workers and all(w["resources"]["GPU"] >= 1 and w["max_workers"] >= w["min_workers"] for w in workers)
    assert cfg["max_workers"] >= sum(w["max_workers"] for w in workers)
    assert any("pip install" in c and "-e ." in c for c in cfg["setup_commands"])
    assert any("--head" in c for c in cfg["head_start_ray_commands"])
    assert any("$RAY_HEAD_IP" in c for c in cfg["worker_start_ray_commands"])
    assert "2.60.0" in cfg["docker"]["image"]  # the Ray that pyproject pins


def test_runtime_env_ships_the_code_requirements_and_offline_env():
    env = load(RUNTIME_ENV)
    assert env["working_dir"] == "."
    assert ".venv/" in env["excludes"] and "runs/" in env["excludes"]
    packages = env["pip"]["packages"]
    assert any(p.startswith("deepspeed==") for p in packages) and any(p.startswith("mlflow==") for p in packages)
    assert any(p.startswith("pyarrow") and "<26" in p for p in packages)  # the numpy<2 trap
    assert env["env_vars"]["HF_HUB_OFFLINE"] == "1"
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "${MLFLOW_TRACKING_URI}"


def test_rayjob_runs_the_cluster_preset_on_gpu_groups_with_the_kit_runtime_env():
    job = load(RAYJOB)
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["entrypoint"] == "python -m orchestrator.training.train cluster"
    load_config("cluster")  # the preset the entrypoint names exists and is valid
    env = rayjob_runtime_env(job)
    kit_env = load(RUNTIME_ENV)
    assert env["pip"] == kit_env["pip"] and env["env_vars"] == kit_env["env_vars"]
    assert env["working_dir"].startswith("s3://")
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for group in cluster["workerGroupSpecs"]:
        container = group["template"]["spec"]["containers"][0]
        gpus = container["resources"]["limits"]["nvidia.com/gpu"]
        assert int(gpus) >= 1 and group["rayStartParams"]["num-gpus"] == gpus
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for container in [head] + [g["template"]["spec"]["containers"][0] for g in cluster["workerGroupSpecs"]]:
        assert {"secretRef": {"name": "prismrl-aws"}} in container["envFrom"]  # credentials from a Secret


def test_submit_command_names_the_runtime_env_and_entrypoint():
    cmd = submit_command("sweep", "cluster", ["sweep.num_samples=8", "run_dir=runs/sweep a"])
    assert cmd == ("ray job submit --runtime-env cluster/runtime_env.yaml -- python -m orchestrator.sweeps.sweep cluster "
                   "sweep.num_samples=8 'run_dir=runs/sweep a'")
