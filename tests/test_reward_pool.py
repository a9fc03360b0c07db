"""Reward pools on a local Ray: batching, exactly-once delivery, restarts, retries, backpressure."""
from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
from ray.util.placement_group import placement_group, remove_placement_group

from actors.config import PoolConfig
from actors.pool_stats import PoolStats, percentile
from actors.reward_pool import RewardPool, RewardPoolError, batch_size_for
from common.types import Clip
from helpers.fake_teachers import MeanAbsTeacher, expected_reward
from orchestrator.training.reward_phase import step_sample_ids
from rewards.base import TeacherError

TESTS_DIR = Path(__file__).resolve().parent
SR = 16000


# ---------------------------------------------------------------- pure parts (no Ray)


def test_batch_size_spreads_due_samples_over_idle_replicas():
    assert batch_size_for(10, 1, 4) == 4
    assert batch_size_for(8, 4, 8) == 2
    assert batch_size_for(3, 8, 8) == 1
    assert batch_size_for(100, 2, 8) == 8
    assert batch_size_for(0, 2, 8) == 0 and batch_size_for(5, 0, 8) == 0


def test_step_sample_ids_are_unique_when_a_step_draws_a_clip_twice():
    assert step_sample_ids(["a", "b"], 2) == ["a#0", "a#1", "b#0", "b#1"]
    ids = step_sample_ids(["a", "b", "a"], 2)  # a step across an epoch boundary of the prompt order
    assert ids == ["a/0#0", "a/0#1", "b#0", "b#1", "a/2#0", "a/2#1"] and len(set(ids)) == len(ids)


def test_percentile_interpolates_and_rejects_bad_q():
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)
    assert np.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="q must lie"):
        percentile([1.0], 101)


def test_stats_throughput_counts_busy_time_only():
    now = [0.0]
    stats = PoolStats(clock=lambda: now[0])
    stats.submitted(4)
    now[0] = 2.0
    stats.graded([2.0, 2.0, 2.0, 2.0])  # 4 samples in 2 busy seconds
    now[0] = 100.0  # idle: must not dilute throughput
    stats.submitted(2)
    now[0] = 101.0
    stats.graded([1.0])
    stats.dropped(1)
    snap = stats.snapshot()
    assert snap["completed"] == 5 and snap["failed"] == 1 and snap["pending"] == 0
    assert snap["samples_per_s"] == pytest.approx(5 / 3.0)
    assert snap["latency_p50_s"] == 2.0


# ---------------------------------------------------------------- pools on Ray


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(TESTS_DIR)}})
    yield
    ray.shutdown()


def make_samples(prefix: str, n: int, seed: int = 0):
    """Sample ids, waveforms, and object refs of the waveforms and clips."""
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}-{i}" for i in range(n)]
    audio = [(rng.uniform(-1, 1, (2, 64)) * (i + 1) / (n + 1)).astype(np.float32) for i in range(n)]
    clips = [Clip(sid, "train", np.zeros((1, 2, 2, 3), np.uint8), 1.0, np.zeros((2, 64), np.float32), SR,
                  {"semantic": "a bell"}) for sid in ids]
    return ids, audio, [ray.put(a) for a in audio], [ray.put(c) for c in clips]


def cfg(**kw) -> PoolConfig:
    base = dict(replicas=1, num_cpus=0.25, max_batch=4, max_wait_s=0.01, call_timeout_s=60.0,
                max_retries=2, max_queue=64, start_timeout_s=60.0)
    base.update(kw)
    return PoolConfig(**base)


def wait_for_file(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout}s"
        time.sleep(0.02)


def test_concurrent_pools_grade_every_sample_once_in_order(local_ray):
    factory = functools.partial(MeanAbsTeacher, sleep_s=0.02)
    with RewardPool("timing", cfg(replicas=2, max_batch=3), factory, SR) as timing, \
            RewardPool("spatial", cfg(max_batch=5), factory, SR) as spatial:
        work = {name: [make_samples(f"{name}-a", 7, 1), make_samples(f"{name}-b", 5, 2)] for name in ("t", "s")}
        tickets = [(pool, ids, audio, pool.submit(ids, a_refs, c_refs))
                   for pool, key in ((timing, "t"), (spatial, "s"))
                   for ids, audio, a_refs, c_refs in work[key]]
        for pool, ids, audio, ticket in tickets:
            grades = pool.result(ticket, timeout=60)
            assert [g.reward for g in grades] == pytest.approx([expected_reward(a) for a in audio])
            assert ticket.deliveries == {sid: 1 for sid in ids}
            assert max(g.diagnostics["batch_size"] for g in grades) <= pool.cfg.max_batch
        for pool in (timing, spatial):
            s = pool.stats()
            assert (s["completed"], s["in_flight"], s["queue_depth"], s["retries"], s["restarts"]) == (12, 0, 0, 0, 0)
            assert s["samples_per_s"] > 0 and s["latency_p95_s"] >= s["latency_p50_s"] > 0
        # a step that holds one clip twice (its ids from step_sample_ids) is one valid submission
        _, audio, a_refs, c_refs = make_samples("t-c", 4, 4)
        ids = step_sample_ids(["clip", "clip"], 2)
        assert [g.reward for g in timing.grade(ids, a_refs, c_refs, timeout=60)] == pytest.approx(
            [expected_reward(a) for a in audio])
        with pytest.raises(ValueError, match="duplicate sample ids"):
            timing.submit(["clip#0", "clip#0"], a_refs[:2], c_refs[:2])
        # a sample id may be graded again once its earlier grade was delivered
        ids, audio, a_refs, c_refs = make_samples("t-a", 2, 3)
        assert [g.reward for g in timing.grade(ids, a_refs, c_refs, timeout=60)] == pytest.approx(
            [expected_reward(a) for a in audio])


def test_killed_replica_is_replaced_and_its_batch_graded_once(local_ray, tmp_path):
    marker = tmp_path / "stalled"
    factory = functools.partial(MeanAbsTeacher, stall_once_path=str(marker), stall_s=120.0)
    with RewardPool("timing", cfg(max_batch=4), factory, SR) as pool:
        ids, audio, a_refs, c_refs = make_samples("k", 4)
        ticket = pool.submit(ids, a_refs, c_refs)
        wait_for_file(marker)  # the replica is now sleeping inside grade()
        killed = pool.replica_actor(0)
        ray.kill(killed)
        grades = pool.result(ticket, timeout=90)
        assert [g.reward for g in grades] == pytest.approx([expected_reward(a) for a in audio])
        assert ticket.deliveries == {sid: 1 for sid in ids}
        assert pool.replica_actor(0) is not killed
        s = pool.stats()
        assert (s["restarts"], s["retries"], s["completed"], s["failed"]) == (1, 1, 4, 0)


def test_replica_slower_than_call_timeout_is_replaced_and_batch_retried(local_ray, tmp_path):
    marker = tmp_path / "stalled"
    factory = functools.partial(MeanAbsTeacher, stall_once_path=str(marker), stall_s=120.0)
    with RewardPool("timing", cfg(call_timeout_s=1.5), factory, SR) as pool:
        pool.wait_ready(60)
        ids, audio, a_refs, c_refs = make_samples("slow", 3)
        t0 = time.monotonic()
        grades = pool.grade(ids, a_refs, c_refs, timeout=90)
        assert time.monotonic() - t0 < 60  # did not wait out the 120 s stall
        assert marker.exists()
        assert [g.reward for g in grades] == pytest.approx([expected_reward(a) for a in audio])
        s = pool.stats()
        assert (s["restarts"], s["retries"], s["completed"]) == (1, 1, 3)


def test_teacher_exception_names_teacher_and_samples_and_is_not_retried(local_ray):
    factory = functools.partial(MeanAbsTeacher, fail_clip_ids=["bad-2"])
    with RewardPool("timing", cfg(max_batch=8, max_wait_s=0.05), factory, SR) as pool:
        ids, _, a_refs, c_refs = make_samples("bad", 4)
        with pytest.raises(TeacherError) as err:
            pool.grade(ids, a_refs, c_refs, timeout=60)
        msg = str(err.value)
        assert "timing/mean_abs_test" in msg and "pool 'timing'" in msg and "ValueError" in msg
        assert all(sid in msg for sid in ids)
        s = pool.stats()
        assert (s["retries"], s["restarts"], s["failed"], s["completed"]) == (0, 0, 4, 0)
        # the replica is healthy: the next batch grades
        ids, audio, a_refs, c_refs = make_samples("good", 2)
        assert [g.reward for g in pool.grade(ids, a_refs, c_refs, timeout=60)] == pytest.approx(
            [expected_reward(a) for a in audio])


def test_submit_blocks_while_max_queue_samples_are_pending(local_ray, tmp_path):
    gate = tmp_path / "open"
    factory = functools.partial(MeanAbsTeacher, gate_path=str(gate))
    with RewardPool("timing", cfg(max_queue=4), factory, SR) as pool:
        ids, _, a_refs, c_refs = make_samples("q1", 4)
        t1 = pool.submit(ids, a_refs, c_refs)
        ids, _, a_refs, c_refs = make_samples("q-rejected", 1)
        with pytest.raises(TimeoutError, match="max_queue 4"):
            pool.submit(ids, a_refs, c_refs, timeout=0.2)
        ids, audio, a_refs, c_refs = make_samples("q2", 2)
        box = {}
        blocked = threading.Thread(target=lambda: box.update(ticket=pool.submit(ids, a_refs, c_refs)))
        blocked.start()
        blocked.join(0.3)
        assert blocked.is_alive(), "submit returned although 4 samples were pending (max_queue=4)"
        gate.touch()  # the replica finishes the first batch, which frees the queue
        blocked.join(60)
        assert not blocked.is_alive()
        assert len(pool.result(t1, timeout=60)) == 4
        assert [g.reward for g in pool.result(box["ticket"], timeout=60)] == pytest.approx(
            [expected_reward(a) for a in audio])


def test_shutdown_fails_pending_tickets_and_later_submits(local_ray, tmp_path):
    factory = functools.partial(MeanAbsTeacher, gate_path=str(tmp_path / "never"))
    pool = RewardPool("aesthetic", cfg(), factory, SR)
    ids, _, a_refs, c_refs = make_samples("sd", 2)
    ticket = pool.submit(ids, a_refs, c_refs)
    pool.shutdown()
    with pytest.raises(RewardPoolError, match="pool 'aesthetic'.*shut down"):
        pool.result(ticket, timeout=10)
    with pytest.raises(RewardPoolError, match="shut down"):
        pool.submit(ids, a_refs, c_refs)


def test_quarter_cpu_replicas_run_four_at_once_on_one_cpu(local_ray):
    hold = placement_group([{"CPU": 3}])  # leave exactly 1 of the 4 CPUs
    ray.get(hold.ready(), timeout=60)
    try:
        factory = functools.partial(MeanAbsTeacher, sleep_s=1.0)
        with RewardPool("semantic", cfg(replicas=4, num_cpus=0.25, max_batch=1), factory, SR) as pool:
            pool.wait_ready(90)
            ids, _, a_refs, c_refs = make_samples("frac", 4)
            grades = pool.grade(ids, a_refs, c_refs, timeout=60)
            assert len({g.diagnostics["pid"] for g in grades}) == 4
            # all four 1 s grade calls overlapped in time: the replicas ran concurrently
            assert max(g.diagnostics["start"] for g in grades) < min(g.diagnostics["end"] for g in grades)
    finally:
        remove_placement_group(hold)
