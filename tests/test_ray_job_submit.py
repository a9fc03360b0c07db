"""`ray job submit --working-dir . -- python -m orchestrator.training.train ...` against a local `ray start --head`:
the same entry point joins the existing cluster through RAY_ADDRESS and trains."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from orchestrator.config import load_config
from orchestrator.data.synth import write_synthscenes
from orchestrator.training.pretrain import run_pretrain

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def ray_head():
    """A head node on loopback, without token auth (test only)."""
    bin_dir = Path(sys.executable).parent
    # The venv's bin dir goes last on PATH, not first: a `ninja` found there (pip's, another version than
    # the system's) would make DeepSpeed's JIT-built CPU comm op (~/.cache/torch_extensions) look out of
    # date, and it would be compiled again here (~40-70 s on 2 cores) and once more by the next test.
    env = dict(os.environ, RAY_AUTH_MODE="disabled", PATH=f"{os.environ['PATH']}:{bin_dir}")
    env.pop("RAY_ADDRESS", None)
    port, dash = free_port(), free_port()
    temp_dir = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's unix socket paths must fit 107 bytes
    start = [str(bin_dir / "ray"), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--num-cpus=4",
             "--include-dashboard=true", "--disable-usage-stats", f"--temp-dir={temp_dir}"]
    out = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    try:
        yield env, f"http://127.0.0.1:{dash}"
    finally:
        stop_processes_of([temp_dir, f"--address=127.0.0.1:{port}"])
        shutil.rmtree(temp_dir, ignore_errors=True)


def stop_processes_of(markers: list[str]) -> None:
    """Kill this head's processes only (those whose command line names its temp dir or GCS
    address, and their children); `ray stop` would stop every Ray process on the machine, including the test
    session's own local cluster."""
    import psutil

    procs: dict[int, psutil.Process] = {}
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid != os.getpid() and any(m in part for m in markers for part in (p.info["cmdline"] or [])):
                procs[p.pid] = p
                # agents and workers retitle themselves (`ray::DashboardAgent`): take the whole tree
                procs.update({c.pid: c for c in p.children(recursive=True)})
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    procs.pop(os.getpid(), None)
    procs = list(procs.values())
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    # A throwaway head: a short grace for SIGTERM, then SIGKILL (Ray's workers of a stopped head can
    # outlive SIGTERM for many seconds; nothing of this head is kept, its temp dir is removed next).
    _, alive = psutil.wait_procs(procs, timeout=3)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def test_ray_job_submit_runs_the_training_entry_point(tmp_path, ray_head):
    env, address = ray_head
    # Two pretraining steps: the job needs a policy checkpoint to start from, not a good one.
    cfg = load_config("tiny", [f"run_dir={tmp_path / 'pre'}", f"policy.checkpoint={tmp_path / 'policy'}",
                               "pretrain.steps=2"])
    manifest = write_synthscenes(str(tmp_path / "data"), cfg.data.synth, cfg.data.s3, progress=False)
    cfg.data.manifest = manifest
    run_pretrain(cfg)
    run_dir = tmp_path / "job-run"
    # One learner rank and one rollout worker: what is checked here is that the entry point joins the
    # cluster and trains (several ranks and workers: the other end-to-end tests); each extra process
    # only adds start-up CPU (~8 s a DeepSpeed rank) on the test machine's 2 cores.
    entry = [sys.executable, "-m", "orchestrator.training.train", "tiny", f"run_dir={run_dir}", f"data.manifest={manifest}",
             f"policy.checkpoint={tmp_path / 'policy'}", "grpo.steps=1", "train.checkpoint_every=0",
             "learner.num_ranks=1", "rollout.num_workers=1"]
    submit = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", address,
              "--working-dir", str(REPO), "--", *entry]
    for _ in range(30):  # the dashboard's job agent comes up a little after `ray start` returns
        out = subprocess.run(submit, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
        if "No available agent to submit job" not in out.stdout + out.stderr:
            break
        time.sleep(2)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "succeeded" in (out.stdout + out.stderr)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 1
    assert summary["rollout_precision"] == ["fp32"]  # Fast-GRPO (the tiny preset) samples in fp32
    assert set(summary["val_after"]) == {"semantic", "timing", "aesthetic", "spatial", "total"}
    # The change is paired clip by clip (same clips and noise before and after): its mean is the change of means.
    change = summary["val_change"]
    assert set(change) == set(summary["val_after"])
    for key, c in change.items():
        assert c["diff"] == pytest.approx(summary["val_after"][key] - summary["val_before"][key], abs=1e-9), key
        assert c["clips"] == 2 and c["se"] >= 0 and c["higher"] + c["lower"] <= 2
