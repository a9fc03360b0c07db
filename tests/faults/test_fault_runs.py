"""Real `prismrl train` runs, killed for real, against an uninterrupted reference run with the same
seed (started at the same time, in its own process):

- a learner rank's process is SIGKILLed in the middle of its collective train step: the group is
  rebuilt in the job from the newest complete checkpoint and the run goes on;
- later in that run the driver itself is SIGKILLed mid-step; `train.resume=auto` finishes it.

The finished run must equal the reference step by step (rewards, loss, advantages, sample count)
and in its EMA weights, and its MLflow history must be one run with each step once. Every run
carries a planted S3 key and secret on its command line that no file of its run dir (mlflow.db and
artifacts included) and no line of its output may show; its MLflow artifacts lie inside the run dir.
"""
from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import pytest
import torch

from actors.shm_buffers import shm_buffers
from fault_tools import SMALL, TrainProcess, complete, controller, weights, weights_hash
from orchestrator.config import load_config
from orchestrator.data.synth import write_synthscenes

pytestmark = pytest.mark.slow
SECRET, KEY = "PLANTED-s3cr3t-7c41d0", "AKIAPLANTED0KEY42"
PLANT = [f"data.s3.key={KEY}", f"data.s3.secret={SECRET}"]
COMPARED = ("reward/total", "reward/semantic/mean", "reward/timing/mean", "reward/spatial/mean",
            "reward/aesthetic/mean", "learn/loss", "adv/std")
LONG_LEARNER_STEP = ["grpo.minibatch_size=1", "grpo.inner_epochs=4"]
"""16 optimizer steps a learner step instead of 1: a window of a few hundred ms in which the test finds
the ranks' `train_step` processes to kill (the tiny step's rows are assembled in the rank, so its
learner step alone lasts a few tens of ms and a 10 ms poll could miss it and hit the next step)."""
RUN_TIMEOUT = 600
TOL = dict(rel=1e-5, abs=1e-7)
"""Stated tolerance of a recovered or resumed run against the uninterrupted one (CPU, fp32; in
practice they are bit-identical)."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    cfg = load_config("tiny", ["data.synth.n=8"])
    manifest = write_synthscenes(str(root / "data"), cfg.data.synth, progress=False)
    return root, [f"data.manifest={manifest}", *SMALL, *PLANT, *LONG_LEARNER_STEP]


@pytest.fixture(scope="module")
def reference(world):
    """The uninterrupted run, started now and left running beside the faulted one."""
    root, base = world
    run = TrainProcess(root / "ref", base, root, "ref")
    try:
        yield run
    finally:
        assert run.cleanup() == 0  # a finished run leaves no /dev/shm buffer


def _finished(run: TrainProcess) -> TrainProcess:
    assert run.wait(RUN_TIMEOUT) == 0, run.tail()
    return run


def _metric_steps(run_dir: Path, key: str = "reward/total") -> dict[str, list[int]]:
    with sqlite3.connect(run_dir / "mlflow.db") as db:
        rows = db.execute("SELECT run_uuid, step FROM metrics WHERE key = ? ORDER BY step", (key,)).fetchall()
    out: dict[str, list[int]] = {}
    for run_id, step in rows:
        out.setdefault(run_id, []).append(step)
    return out


def _assert_same_run(got_dir: Path, ref_dir: Path, steps: int = 3) -> dict:
    got, ref = controller(got_dir, steps)["history"], controller(ref_dir, steps)["history"]
    assert [h["step"] for h in got] == list(range(steps))  # each step once, none lost
    for g, r in zip(got, ref):
        for key in COMPARED:
            assert g[key] == pytest.approx(r[key], **TOL), (g["step"], key)
    assert controller(got_dir, steps)["samples_done"] == controller(ref_dir, steps)["samples_done"]
    a_path, b_path = got_dir / "policy_ema" / "model.safetensors", ref_dir / "policy_ema" / "model.safetensors"
    a, b = weights(a_path), weights(b_path)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a), worst
    return {"max_abs_weight_diff": worst, "same_weights_hash": weights_hash(a_path) == weights_hash(b_path)}


def _leaks(run_dir: Path, *runs: TrainProcess) -> list[str]:
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files) and any(p.name == "controller.json" for p in files)
    found = [str(p) for p in files if SECRET.encode() in p.read_bytes() or KEY.encode() in p.read_bytes()]
    for run in runs:
        for name, data in zip(("stdout", "stderr"), run.output()):
            if SECRET.encode() in data or KEY.encode() in data:
                found.append(f"{run.out_path.stem} {name}")
    return found


def test_rank_killed_then_driver_killed_then_resume_auto_equals_uninterrupted(world, reference):
    root, base = world
    run_dir = root / "faulted"
    first = TrainProcess(run_dir, [*base, "train.max_failures=1"], root, "faulted")
    try:
        # 1. a learner rank dies in the middle of step 1's collective train step
        first.wait_until("checkpoint 1", lambda: complete(run_dir, 1), RUN_TIMEOUT)
        first.wait_until("step 1's learner step", lambda: bool(first.find("LearnerRank.train_step")), 120, poll=0.01)
        old_ports = set(first.ports)
        first.find("LearnerRank.train_step")[-1].kill()
        t_rank = time.monotonic()
        first.wait_until("the learner group's recovery", lambda: b"learner group rebuilt" in first.output()[1], 300, 0.1)
        rank_s = time.monotonic() - t_rank
        err = first.output()[1].decode(errors="replace")
        assert re.search(r"learner rank \d was lost during 'train step 1': ActorDiedError", err), err[-3000:]
        assert old_ports and not any(shm_buffers(a, p) for a, p in old_ports)  # the dead group's buffers are swept
        # 2. the driver dies in the middle of step 2
        first.wait_until("checkpoint 2", lambda: complete(run_dir, 2), RUN_TIMEOUT)
        first.wait_until("step 2's learner step", lambda: bool(first.find("LearnerRank.train_step"))
                         or complete(run_dir, 3), 120, poll=0.01)
        first.kill_driver()
        t_kill = time.monotonic()
    finally:
        first.cleanup()  # what a killed driver left: its Ray processes and the ranks' /dev/shm buffers
    listed = sorted(p.name for p in (run_dir / "checkpoints").iterdir() if (p / "COMPLETE").exists())
    assert listed == ["ckpt-00000001", "ckpt-00000002"], listed  # only complete ones, none past the kill

    resumed = TrainProcess(run_dir, [*base, "train.resume=auto"], root, "resumed")
    try:
        resumed.wait_until("the restore", lambda: b"resumed from" in resumed.output()[1], RUN_TIMEOUT, poll=0.2)
        restored_s = time.monotonic() - t_kill
        assert resumed.wait(RUN_TIMEOUT) == 0, resumed.tail()
    finally:
        assert resumed.cleanup() == 0
    assert "ckpt-00000002 at step 2" in resumed.output()[1].decode(errors="replace")

    same = _assert_same_run(run_dir, _finished(reference).run_dir)
    # MLflow: the resumed driver continued the killed driver's run; each step was logged once
    # (step 1 was computed twice, before and after the rank's death; its metrics once).
    assert list(_metric_steps(run_dir).values()) == [[0, 1, 2]], _metric_steps(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["mlflow"]["continued"] and summary["steps"] == 3 and summary["steps_this_run"] == 1
    assert not _leaks(run_dir, first, resumed)
    rebuilt = float(re.search(r"learner group rebuilt in ([\d.]+) s", err).group(1))
    print(f"\nlearner rank SIGKILL: in-job recovery {rebuilt:.1f} s (kill to 'rebuilt' seen {rank_s:.1f} s); "
          f"driver SIGKILL: resume=auto back at step 2 {restored_s:.1f} s after the kill (new process, new Ray); "
          f"reference run {reference.wall_s:.1f} s; {same}")


def test_planted_secret_reaches_no_file_and_no_output(reference):
    run = _finished(reference)
    assert not _leaks(run.run_dir, run)
    assert b'"secret": "<redacted>"' in (run.run_dir / "summary.json").read_bytes()


def test_run_is_one_folder(reference):
    """Default sqlite store: the artifacts (media, summary.json, reward curves) are in the run dir."""
    run = _finished(reference)
    names = {p.name for p in (run.run_dir / "mlartifacts").rglob("*") if p.is_file()}
    assert {"summary.json", "reward_curves.png"} <= names and any(n.endswith(".wav") for n in names), names
    assert not (run.cwd / "mlruns").exists()  # nothing left beside the run dir
