"""Helpers of the fault tests: a real `prismrl train` subprocess, its process tree (to find a learner
rank by its Ray process title and kill it), and cleanup of its processes and /dev/shm buffers."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import psutil

from actors.shm_buffers import PREFIX, remove_shm_buffers, shm_buffers

TRAIN = [sys.executable, "-m", "orchestrator.training.train", "tiny"]
SMALL = ["grpo.steps=3", "train.checkpoint_every=1", "train.keep_checkpoints=5", "train.val_clips=1",
         "train.media_clips=1", "policy.checkpoint=null", "rollout.num_workers=1", "ray.object_store_mb=200"]
"""The smallest run that still has two learner ranks, a pool per teacher and a checkpoint per step."""


def run_env() -> dict[str, str]:
    """The environment of a local single-node run (no cluster address, no node MLflow URI)."""
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               MLFLOW_ALLOW_FILE_STORE="false", DS_ACCELERATOR="cpu", PYTHONUNBUFFERED="1", RAY_DEDUP_LOGS="0")
    for key in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key, None)
    return env


_BUFFER = re.compile(rf"{PREFIX}_[^/]*_([0-9.]+)_(\d+)_\d+$")


def shm_ports(proc: psutil.Process) -> set[tuple[str, int]]:
    """(master address, port) of the DeepSpeed /dev/shm buffers a rank process has mapped."""
    out = set()
    for m in proc.memory_maps(grouped=True):
        hit = _BUFFER.search(m.path)
        if hit:
            out.add((hit.group(1), int(hit.group(2))))
    return out


class TrainProcess:
    """`python -m orchestrator.training.train tiny ...` in its own session; remembers every process
    it started (Ray's too) so that they can be killed whatever happens to the driver."""

    def __init__(self, run_dir: Path, overrides: list[str], cwd: Path, name: str):
        self.run_dir, self.cwd = Path(run_dir), Path(cwd)
        self.out_path, self.err_path = self.cwd / f"{name}.out", self.cwd / f"{name}.err"
        self.started = time.monotonic()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([*TRAIN, f"run_dir={run_dir}", *overrides], cwd=cwd, env=run_env(),
                                         stdout=out, stderr=err, start_new_session=True)
        self.seen: dict[int, psutil.Process] = {}
        self.ports: set[tuple[str, int]] = set()
        """(master address, port) of every learner group seen (its ranks' /dev/shm buffers carry them)."""
        self._mapped: set[int] = set()
        self._map_checked: dict[int, float] = {}

    def refresh(self) -> list[psutil.Process]:
        """The driver's live descendants (also remembered for cleanup, with their rendezvous ports)."""
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            kids = []
        for p in kids:
            self.seen.setdefault(p.pid, p)
            if p.pid in self._mapped or time.monotonic() - self._map_checked.get(p.pid, 0.0) < 1.0:
                continue  # reading a process's memory maps is not free: at most once a second
            self._map_checked[p.pid] = time.monotonic()
            try:
                if "LearnerRank" in " ".join(p.cmdline()):
                    found = shm_ports(p)
                    if found:
                        self.ports |= found
                        self._mapped.add(p.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return kids

    def find(self, title: str) -> list[psutil.Process]:
        """Descendants whose process title (Ray's `ray::Class.method`) contains `title`."""
        out = []
        for p in self.refresh():
            try:
                if title in " ".join(p.cmdline()):
                    out.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return out

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout: float, poll: float = 0.05) -> float:
        """Seconds until `predicate()` holds; fails if the driver exits first or time runs out."""
        t0 = time.monotonic()
        while not predicate():
            self.refresh()
            if self.proc.poll() is not None:
                raise AssertionError(f"the run exited ({self.proc.returncode}) before {what}:\n{self.tail()}")
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"no {what} within {timeout:.0f} s:\n{self.tail()}")
            time.sleep(poll)
        return time.monotonic() - t0

    def wait(self, timeout: float) -> int:
        """The driver's exit code (fails on timeout)."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            self.refresh()
            if time.monotonic() > deadline:
                raise AssertionError(f"the run did not finish within {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.2)
        self.wall_s = getattr(self, "wall_s", time.monotonic() - self.started)
        return self.proc.returncode

    def output(self) -> tuple[bytes, bytes]:
        """Everything the run wrote to stdout and stderr."""
        return self.out_path.read_bytes(), self.err_path.read_bytes()

    def tail(self, n: int = 3000) -> str:
        return self.err_path.read_bytes()[-n:].decode(errors="replace")

    def kill_driver(self) -> None:
        """SIGKILL the driver process only (as a preempted node or OOM killer would)."""
        self.refresh()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def cleanup(self) -> int:
        """Kill the driver and every process it started that is still alive; remove the DeepSpeed
        /dev/shm buffers of its learner groups. Returns how many buffers were left to remove."""
        self.refresh()
        procs = [p for p in self.seen.values() if p.is_running()]
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=15)
        left = sum(len(shm_buffers(addr, port)) for addr, port in self.ports)
        for addr, port in self.ports:
            remove_shm_buffers(addr, port)
        return left


def controller(run_dir: Path, step: int) -> dict:
    """controller.json of checkpoint `step`."""
    return json.loads((Path(run_dir) / "checkpoints" / f"ckpt-{step:08d}" / "controller.json").read_text())


def complete(run_dir: Path, step: int) -> bool:
    """Whether checkpoint `step` is marked complete."""
    return (Path(run_dir) / "checkpoints" / f"ckpt-{step:08d}" / "COMPLETE").exists()


def weights(path: Path) -> dict:
    """A safetensors file's tensors."""
    from safetensors.torch import load_file

    return load_file(str(path))


def weights_hash(path: Path) -> str:
    """SHA-256 over a safetensors file's tensors in name order (independent of file metadata)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(weights(path).items()):
        h.update(name.encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()
