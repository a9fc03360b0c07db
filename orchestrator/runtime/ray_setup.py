"""Joining a Ray cluster (RAY_ADDRESS or ray.address) or starting a local one on loopback."""
from __future__ import annotations

import logging
import os

from orchestrator.config.schema import PrismConfig

log = logging.getLogger(__name__)


def loopback_for_local_ray() -> None:
    """Keep a local (single-node) Ray on 127.0.0.1; call before `ray` is imported.

    A cluster run (RAY_ADDRESS set, as under `ray job submit`) is left alone.
    """
    if not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def init_ray(cfg: PrismConfig) -> bool:
    """ray.init for this run; returns True when this call started (and so owns) a local Ray.

    With an address (config or RAY_ADDRESS, as under `ray job submit`) the driver joins that cluster.
    Otherwise a local single-node Ray starts; RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (set before ray is
    imported, see README) keeps it on 127.0.0.1.
    """
    import ray

    if ray.is_initialized():
        return False
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    from orchestrator.runtime.tracking import NODE_TRACKING_URI

    # Workers get the node's MLflow URI as the process started with it, not one that MLflow's
    # set_tracking_uri wrote into this process's environment for an earlier run.
    env = {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"), "TOKENIZERS_PARALLELISM": "false",
           "MLFLOW_TRACKING_URI": NODE_TRACKING_URI or ""}
    if address:
        log.info("joining Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=True)  # keeps the job's own runtime_env (ray job submit)
        return False
    ray.init(
        address="local",  # a new local Ray, never a `ray start` head that happens to run on this machine
        num_cpus=cfg.ray.num_cpus,
        object_store_memory=cfg.ray.object_store_mb * 1024 * 1024,
        include_dashboard=False,
        runtime_env={"env_vars": env},
        log_to_driver=True,
    )
    return True
