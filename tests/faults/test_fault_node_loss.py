"""A real second Ray node and a small object store (ray.cluster_utils.Cluster on 127.0.0.1):

- the node that holds the rollout worker and every reward replica (custom resource `edge`, which the
  head lacks) is removed while the learner ranks fetch the step's experience, which lay in that
  node's object store: the ranks give the step up together, the controller samples it again, the
  fleet and the pools replace their actors on the head, and the step completes, each sample graded
  once per attempt;
- on the head's 75 MiB store (Ray's minimum) a step of large groups spills to disk, completes, and
  afterwards the driver's references, the store's objects, the spill files and /dev/shm are back
  where they were.

The tests share one cluster and one Trainer (the learner group is built while the head is alone,
so its ranks sit there); they run in this order. A third, quick one checks that a reward replica given
waveforms that were lost fails the batch by name instead of restarting.
"""
from __future__ import annotations

import gc
import json
import os
import re
import time
from types import SimpleNamespace

import numpy as np
import pytest
import ray
from ray._private import state as ray_state
from ray._private.internal_api import memory_summary
from ray.cluster_utils import Cluster
from ray.exceptions import ObjectLostError, RayActorError
from ray.experimental import get_object_locations

from actors.lost_objects import InputsLost
from actors.rollout_fleet import RolloutFleet
from actors.shm_buffers import shm_buffers
from common.types import TEACHERS
from orchestrator.config import load_config
from orchestrator.data.synth import write_synthscenes
from orchestrator.training.roles import Roles, build_learner, build_pools
from orchestrator.training.trainer import Trainer

pytestmark = pytest.mark.slow
EDGE = "edge"
"""The custom resource of the node that is removed."""
SECONDS = 2.0
"""Clip and policy duration: a member's waveform is 256 KB, above Ray's 100 KB inline limit."""
FAST_FAILURE_DETECTION = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                          "health_check_timeout_ms": 500, "health_check_failure_threshold": 2}
"""A node is declared dead ~1 s after it stops answering (Ray's default, ~15-30 s, only lengthens the test)."""
LARGE_GROUPS = {"group_size": 192, "prompts_per_step": 2}
"""384 members of 2 s: stereo waveforms of ~96 MiB plus window records, beyond the 75 MiB store."""


def _actor_nodes(trainer: Trainer) -> set[str]:
    """Node ids of the rollout workers and reward replicas (each answers a call first: placed)."""
    fleet, pools = trainer.roles.fleet, trainer.roles.pools
    ray.get([w.get_version.remote() for w in fleet.workers], timeout=120)
    for pool in pools.values():
        pool.wait_ready(timeout=120)
    handles = list(fleet.workers) + [pool.replica_actor(i) for pool in pools.values() for i in range(pool.cfg.replicas)]
    states = ray_state.actors()
    return {states[h._actor_id.hex()]["Address"]["NodeID"] for h in handles}


def _plasma_objects() -> int:
    """Objects in the cluster's object stores (memory_summary's aggregate line)."""
    text = memory_summary(ray.get_runtime_context().gcs_address, stats_only=True)
    return int(re.search(r"Plasma memory usage \d+ MiB, (\d+) objects", text).group(1))


def _spilled_mib() -> int:
    """MiB spilled since the cluster started (0 before the first spill)."""
    text = memory_summary(ray.get_runtime_context().gcs_address, stats_only=True)
    hit = re.search(r"Spilled (\d+) MiB", text)
    return int(hit.group(1)) if hit else 0


def _driver_refs() -> int:
    """Object refs the driver holds (owned or borrowed)."""
    return len(ray._private.worker.global_worker.core_worker.get_all_reference_counts())


def _settles(what: str, probe, target, timeout: float = 20.0):
    """Poll `probe()` until it is <= target (references are released asynchronously)."""
    deadline = time.monotonic() + timeout
    value = probe()
    while value > target and time.monotonic() < deadline:
        time.sleep(0.2)
        gc.collect()
        value = probe()
    assert value <= target, (f"{what}: {value} after the run, {target} before\n"
                             f"{memory_summary(ray.get_runtime_context().gcs_address, stats_only=False)}")


def _trainer_beside_edge_node(world: SimpleNamespace) -> Trainer:
    """The learner group while the head is alone (its ranks go there), then the `edge` node, then the
    rollout fleet and the pools, which prefer it. (A function, so that no ref outlives it but the trainer's.)"""
    cfg = world.cfg
    learner = build_learner(cfg)
    world.groups.append(learner.rendezvous)
    try:
        world.node = world.cluster.add_node(num_cpus=2, resources={EDGE: 1},
                                            object_store_memory=cfg.ray.object_store_mb << 20)
        fleet = RolloutFleet(cfg.rollout, cfg.policy, cfg.sampler, *reversed(learner.get_weights()))
        pools, backends = build_pools(cfg)
        return Trainer(cfg, roles=Roles(learner, fleet, pools, backends))
    except BaseException:
        learner.shutdown()
        raise


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    root = tmp_path_factory.mktemp("nodeloss")
    sized = [f"data.synth.min_duration_s={SECONDS}", f"data.synth.max_duration_s={SECONDS}"]
    manifest = write_synthscenes(str(root / "data"), load_config("tiny", ["data.synth.n=6", *sized]).data.synth,
                                 progress=False)
    cfg = load_config("tiny", [
        f"run_dir={root / 'run'}", f"data.manifest={manifest}", "policy.checkpoint=null", f"policy.duration_s={SECONDS}",
        "grpo.steps=3", "grpo.minibatch_size=64", "train.checkpoint_every=0", "train.val_clips=1",
        "rollout.num_workers=1", f"rollout.node_resource={EDGE}", *[f"pools.{t}.node_resource={EDGE}" for t in TEACHERS],
        "ray.object_store_mb=75", "learner.experience_timeout_s=60"])
    shm_before = set(os.listdir("/dev/shm"))
    spill_dir = root / "spill"
    spilling = json.dumps({"type": "filesystem", "params": {"directory_path": str(spill_dir)}})
    cluster = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=4, object_store_memory=cfg.ray.object_store_mb << 20, include_dashboard=False,
        _system_config={**FAST_FAILURE_DETECTION, "object_spilling_config": spilling}))
    world = SimpleNamespace(cluster=cluster, cfg=cfg, spill_dir=spill_dir, shm_before=shm_before, trainer=None,
                            groups=[])

    def close():
        if world.trainer is not None:
            world.trainer.shutdown()
            world.trainer = None
        ray.shutdown()
        cluster.shutdown()

    world.close = close
    try:
        ray.init(address=cluster.address)
        world.head = ray.get_runtime_context().get_node_id()
        world.trainer = _trainer_beside_edge_node(world)
        yield world
    finally:
        close()


def _owner_class():
    """An actor class whose actor puts a waveform into its node's store and owns it; killed, the object
    is lost (OwnerDiedError). Made here, not at module level, so that Ray ships the class by value: its
    worker imports numpy and ray, not this module (torch, the trainer: ~3 s of CPU)."""

    @ray.remote(num_cpus=0)
    class Owner:
        def waveform(self, seconds: float) -> list:
            return [ray.put(np.zeros((2, int(16000 * seconds)), np.float32))]

    return Owner


def _until_dead(owner, timeout: float = 60.0) -> None:
    """Return once a call on the killed `owner` fails because it is dead. ray.kill returns at once, and
    a call that reaches the actor before the kill does still succeeds: ask until one fails."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ray.get(owner.waveform.remote(0.0), timeout=timeout)
        except RayActorError:
            return
        assert time.monotonic() < deadline, f"the killed owner still answers after {timeout:.0f} s"
        time.sleep(0.1)


def _until_lost(ref, timeout: float = 60.0) -> None:
    """Return once the object of `ref`, whose owner was killed, can no longer be read on the `edge` node.
    It is freed a moment (~1-2 s) after its owner is known dead, not at once: until then a reward replica
    that is up and idle when the sample arrives reads it and grades it."""

    @ray.remote(num_cpus=0, resources={EDGE: 0.01})  # made here: Ray ships it by value, its worker stays light
    def readable(refs: list) -> bool:
        try:
            ray.get(refs[0], timeout=10)
            return True
        except ObjectLostError:  # OwnerDiedError
            return False

    deadline = time.monotonic() + timeout
    while ray.get(readable.remote([ref]), timeout=timeout):
        assert time.monotonic() < deadline, f"the waveform of the killed owner is still readable after {timeout:.0f} s"
        time.sleep(0.2)


@pytest.mark.timeout(120)
def test_reward_pool_fails_a_batch_whose_waveforms_were_lost_without_restarting_its_replica(two_nodes):
    trainer = two_nodes.trainer
    pool, clip = trainer.roles.pools["timing"], trainer.clip_refs[trainer.train_ids[0]]
    before = pool.stats()
    owner = _owner_class().options(resources={EDGE: 0.01}).remote()  # its object goes with the node in the next test
    (lost,) = ray.get(owner.waveform.remote(SECONDS))
    ray.kill(owner, no_restart=True)
    _until_dead(owner)  # dead for sure
    _until_lost(lost)  # and its objects freed
    ticket = pool.submit(["lost#0"], [lost], [clip], 16000)
    with pytest.raises(InputsLost, match=r"pool 'timing' .*the inputs of samples \['lost#0'\] were lost"):
        pool.result(ticket, timeout=60)
    (fine,) = pool.grade(["fine#0"], [ray.put(np.zeros((2, int(16000 * SECONDS)), np.float32))], [clip], 16000,
                         timeout=60)
    after = pool.stats()
    assert np.isfinite(fine.reward)
    assert (after["restarts"], after["retries"]) == (before["restarts"], before["retries"])  # the replica was fine


@pytest.mark.timeout(300)
def test_node_holding_rollout_and_replicas_removed_mid_step_is_survived(two_nodes):
    world, trainer = two_nodes, two_nodes.trainer
    edge = world.node.node_id
    assert _actor_nodes(trainer) == {edge}  # every rollout worker and reward replica is on the node to go
    learner, seen = trainer.roles.learner, {}
    before = {t: pool.stats() for t, pool in trainer.roles.pools.items()}
    train_step = learner.train_step

    def remove_node_then_train(shards, step):
        if not seen:  # the step's experience exists (on the node), the ranks are about to fetch it
            refs = [item.payload for shard in shards for item in shard]  # GroupExperience: the rollout payloads
            ray.wait(refs, num_returns=len(refs), timeout=120, fetch_local=False)
            seen["where"] = {n for loc in get_object_locations(refs).values() for n in loc["node_ids"]}
            seen["t"] = time.perf_counter()
            world.cluster.remove_node(world.node, allow_graceful=False)
        return train_step(shards, step)

    learner.train_step = remove_node_then_train
    try:
        history = trainer.fit(stop_after=1)
    finally:
        del learner.train_step
    recovery_s = time.perf_counter() - seen["t"]
    print(f"\nnode removed -> step complete: {recovery_s:.1f} s")
    assert seen["where"] == {edge}  # the experience lay in the lost node's store only

    P, G = trainer.cfg.grpo.prompts_per_step, trainer.cfg.grpo.group_size
    assert [h["step"] for h in history] == [0] and trainer.samples_done == P * G
    assert np.isfinite(history[0]["reward/total"]) and np.isfinite(history[0]["learn/loss"])
    assert history[0]["learn/rows"] > 0 and learner.version == 1
    (event,) = trainer.faults.events
    assert event["kind"] == "lost_objects" and event["resumed_from_step"] == 0 and event["recovery_s"] > 0
    assert re.search(r"learner rank \d: experience of step 0 lost", event["message"]), event["message"]
    assert trainer.roles.fleet.replacements == 1
    for t, pool in trainer.roles.pools.items():  # each sample graded once in each attempt, none twice
        stats = pool.stats()
        got = {k: stats[k] - before[t][k] for k in ("restarts", "completed", "failed", "ignored_results")}
        assert got == {"restarts": 1, "completed": 2 * P * G, "failed": 0, "ignored_results": 0}, (t, stats)
        assert stats["pending"] == 0, (t, stats)
    assert _actor_nodes(trainer) == {world.head}  # replaced on the remaining node


@pytest.mark.timeout(300)
def test_small_object_store_spills_large_groups_without_deadlock_or_leak(two_nodes):
    world, trainer = two_nodes, two_nodes.trainer
    gc.collect()
    refs_before, objects_before, spilled_before = _driver_refs(), _plasma_objects(), _spilled_mib()
    for key, value in LARGE_GROUPS.items():
        setattr(trainer.cfg.grpo, key, value)
    t0 = time.perf_counter()
    history = trainer.fit(stop_after=1)
    print(f"\nlarge-group step on a {trainer.cfg.ray.object_store_mb} MiB store: {time.perf_counter() - t0:.1f} s, "
          f"spilled {_spilled_mib() - spilled_before} MiB")
    assert history[-1]["step"] == 1 and np.isfinite(history[-1]["reward/total"])
    assert history[-1]["learn/rows"] >= LARGE_GROUPS["group_size"] * LARGE_GROUPS["prompts_per_step"]
    assert _spilled_mib() - spilled_before > 0  # the step did not fit: it spilled, and finished
    del history
    _settles("driver's object refs", _driver_refs, refs_before)
    _settles("objects in the store", _plasma_objects, objects_before)
    trainer.shutdown()  # then nothing holds an object: the store and the spill files empty
    world.trainer = trainer = None
    _settles("objects in the store", _plasma_objects, 0)
    _settles("spill files", lambda: sum(p.is_file() for p in world.spill_dir.rglob("*")), 0)

    world.close()
    # /dev/shm: the learner ranks' DeepSpeed buffers are this run's only named files there (Ray's store
    # maps unlinked ones); other engineers' runs on the machine may add their own meanwhile.
    ours = [path for addr, port in world.groups for path in shm_buffers(addr, port)]
    assert ours == [], f"/dev/shm not back to its baseline: {ours}"
    assert not {f for f in set(os.listdir("/dev/shm")) - world.shm_before if "plasma" in f or "ray" in f}
