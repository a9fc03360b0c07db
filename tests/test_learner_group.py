"""The DeepSpeed learner group on 2 gloo ranks (ZeRO-2 and ZeRO-3), its batch format and its EMA.

DeepSpeed start-up is slow (~30 s a group), so each group is built once in a module fixture that
runs a short scripted session and records what the tests then check.
"""
import functools
import math
import pickle
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import ray
import torch
from torch import nn

from actors.config import LearnerConfig
from actors.ema import EMA
from actors.experience import TransitionBatch, concat, micro_batch_plan, minibatches, split
from actors.learner_group import LearnerGroup, check_learner_config
from orchestrator.config.schema import GRPOConfig
from orchestrator.grpo.loss import grpo_loss


# ----- a tiny Gaussian policy and its transition log-prob (picklable by value for the ranks) ----
class TinyGaussPolicy(nn.Module):
    """mean = x + (MLP(x, label) * gain) * dt; `gain` is a top-level parameter used outside
    forward, which ZeRO-3 must still gather."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(3, 8)
        self.net = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 8))
        self.gain = nn.Parameter(torch.ones(8))

    def encode_conditions(self, inputs):
        return {"c": self.embed(inputs["label"])}


def tiny_log_prob(policy, cond, latents, next_latents, sigmas, sigmas_next, guidance_scale, noise_level):
    v = policy.net(torch.cat([latents, cond["c"]], -1)) * policy.gain
    mean = latents + v * (sigmas_next - sigmas)[:, None]
    std = (noise_level * sigmas)[:, None]
    return torch.distributions.Normal(mean, std).log_prob(next_latents).mean(1), mean, std


def make_batch(rows: int, seed: int) -> TransitionBatch:
    g = torch.Generator().manual_seed(seed)
    batch = TransitionBatch(
        cond_inputs={"label": torch.randint(0, 3, (rows,), generator=g)},
        latents=torch.randn(rows, 8, generator=g), next_latents=torch.randn(rows, 8, generator=g),
        sigmas=torch.full((rows,), 0.8), sigmas_next=torch.full((rows,), 0.7), old_log_probs=torch.zeros(rows),
        advantages=torch.randn(rows, generator=g), versions=torch.zeros(rows, dtype=torch.long),
        clip_ids=[f"clip{seed}-{i}" for i in range(rows)],
    )
    torch.manual_seed(0)  # the rollout policy = the learner's initial weights (same seed)
    policy = TinyGaussPolicy()
    with torch.no_grad():
        batch.old_log_probs = tiny_log_prob(policy, policy.encode_conditions(batch.cond_inputs), batch.latents,
                                            batch.next_latents, batch.sigmas, batch.sigmas_next, 1.0, 0.5)[0]
    return batch


GRPO = GRPOConfig(lr=2e-2, clip_range=0.5, kl_beta=0.04, minibatch_size=4, ema_decay=0.5, max_grad_norm=1.0)
LOSS = functools.partial(grpo_loss, grpo_cfg=GRPO, guidance_scale=1.0, noise_level=0.5, log_prob_fn=tiny_log_prob)
NUM_PARAMS = sum(p.numel() for p in TinyGaussPolicy().parameters())


# ----- plain data: batch format, EMA, config checks -----------------------------------------
def test_split_concat_and_minibatches_are_deterministic():
    b = make_batch(8, 0)
    parts = split(b, 3)
    assert [len(p) for p in parts] == [3, 3, 2]
    back = concat(parts)
    assert back.clip_ids == b.clip_ids and torch.equal(back.latents, b.latents)
    one = minibatches(b, 3, torch.Generator().manual_seed(5))
    two = minibatches(b, 3, torch.Generator().manual_seed(5))
    assert [m.clip_ids for m in one] == [m.clip_ids for m in two] and [len(m) for m in one] == [3, 3, 2]
    assert sorted(c for m in one for c in m.clip_ids) == sorted(b.clip_ids)
    again = pickle.loads(pickle.dumps(b))
    assert torch.equal(again.next_latents, b.next_latents) and again.clip_ids == b.clip_ids


def test_micro_batch_plan_pads_a_short_rank_with_zero_weight_chunks():
    b = make_batch(2, 1)
    plan = micro_batch_plan(b, 3, torch.Generator().manual_seed(0))
    assert [w for _, w in plan] == [1.0, 1.0, 0.0] and [len(m) for m, _ in plan] == [1, 1, 1]
    full = micro_batch_plan(make_batch(9, 2), 2, torch.Generator().manual_seed(0))
    assert [len(m) for m, _ in full] == [4, 5] and all(w == 1.0 for _, w in full)


def test_batch_to_casts_model_inputs_only_and_bad_rows_are_named():
    b = make_batch(4, 0).to("cpu", torch.bfloat16)
    assert b.latents.dtype == torch.bfloat16 and b.next_latents.dtype == torch.bfloat16
    assert b.old_log_probs.dtype == torch.float32 and b.versions.dtype == torch.int64
    assert b.cond_inputs["label"].dtype == torch.int64
    good = make_batch(4, 0)
    with pytest.raises(ValueError, match="advantages"):
        TransitionBatch(**{**good.__dict__, "advantages": torch.zeros(3)})
    with pytest.raises(ValueError, match="cond_inputs\\['label'\\]"):
        TransitionBatch(**{**good.__dict__, "cond_inputs": {"label": torch.zeros(5)}})


def test_ema_follows_the_recurrence():
    ema = EMA({"w": torch.zeros(2), "n": torch.tensor([1])}, decay=0.5)
    ema.update({"w": torch.ones(2), "n": torch.tensor([7])})
    ema.update({"w": torch.ones(2), "n": torch.tensor([9])})
    assert torch.allclose(ema.state_dict()["w"], torch.full((2,), 0.75)) and ema.state_dict()["n"].item() == 9
    with pytest.raises(KeyError, match="'x'"):
        ema.update({"x": torch.ones(1)})


def test_deepspeed_config_follows_the_learner_config():
    from actors.learner_rank import deepspeed_config

    ds = deepspeed_config(LearnerConfig(zero_stage=3, dtype="bf16", num_gpus=1), 0.7, 8, 1000)
    assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"]["enabled"] and ds["gradient_clipping"] == 0.7
    assert ds["zero_optimization"]["stage3_param_persistence_threshold"] == 100000
    assert ds["train_micro_batch_size_per_gpu"] == 8 and ds["zero_optimization"]["reduce_bucket_size"] == 1 << 20
    assert not deepspeed_config(LearnerConfig(zero_stage=2), 1.0, 4, 10)["bf16"]["enabled"]
    # grpo.optimizer=sgd: without this flag DeepSpeed's ZeRO refuses a torch SGD ("untested ZeRO Optimizer")
    assert ds["zero_allow_untested_optimizer"] is True


def test_learner_config_errors_name_the_key():
    with pytest.raises(ValueError, match="learner.dtype=bf16"):
        check_learner_config(LearnerConfig(dtype="bf16"))
    with pytest.raises(ValueError, match="learner.backend=nccl"):
        check_learner_config(LearnerConfig(backend="nccl"))
    with pytest.raises(ValueError, match="learner.zero_stage"):
        check_learner_config(LearnerConfig(zero_stage=4))
    with pytest.raises(ValueError, match="grpo.minibatch_size"):
        check_learner_config(LearnerConfig(), GRPOConfig(minibatch_size=0))


# ----- Ray + DeepSpeed ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


def _config(stage: int) -> LearnerConfig:
    return LearnerConfig(num_ranks=2, zero_stage=stage, backend="gloo", num_cpus=0.5,
                         zero3_param_persistence_threshold=0)


def _shards():
    """16 rows, each rank gets two refs of 4 rows."""
    parts = split(make_batch(16, 0), 4)
    refs = [ray.put(p) for p in parts]
    return [refs[:2], refs[2:]]


def _other_init() -> dict:
    torch.manual_seed(7)
    return TinyGaussPolicy().state_dict()


@pytest.fixture(scope="module")
def groups(ray_local):
    """The three groups the tests drive, started concurrently (DeepSpeed start-up dominates):
    ZeRO-2, ZeRO-3, and a second ZeRO-3 group (other seed) that resumes the first's checkpoint."""
    specs = {"zero2": (2, 0, None), "zero3": (3, 0, None), "zero3_fresh": (3, 123, ray.put(_other_init()))}
    with ThreadPoolExecutor(len(specs)) as pool:
        futures = {k: pool.submit(LearnerGroup, _config(stage), GRPO, TinyGaussPolicy, LOSS, init, seed)
                   for k, (stage, seed, init) in specs.items()}
        errors = [f.exception() for f in futures.values()]
    built = {k: f.result() for k, f in futures.items() if f.exception() is None}
    if any(errors):
        for group in built.values():
            group.shutdown()
        raise next(e for e in errors if e)
    yield built
    for group in built.values():
        group.shutdown()


@pytest.fixture(scope="module")
def zero2_run(groups):
    group = groups["zero2"]
    shards = _shards()
    published = [ray.get(group.get_weights()[1])]
    losses, step_metrics, walls = [], [], []
    for step in range(3):
        clock = time.perf_counter()
        step_metrics.append(group.train_step(shards, step))
        walls.append(time.perf_counter() - clock)
        losses.append(step_metrics[-1]["loss"])
        published.append(ray.get(group.get_weights()[1]))
    views = group.rank_views()
    ema_version, ema_ref = group.get_ema_weights()
    ema = ray.get(ema_ref)
    version = group.version
    # uneven shards: 9 rows vs 2 rows -> 3 micro steps each, rank 1 pads with a zero-weight chunk
    uneven = [[ray.put(make_batch(9, 3))], [ray.put(make_batch(2, 4))]]
    uneven_metrics = group.train_step(uneven, 3)
    after_uneven = group.rank_views()
    return dict(losses=losses, published=published, views=views, ema=ema, ema_version=ema_version,
                version=version, uneven_metrics=uneven_metrics, after_uneven=after_uneven,
                step_metrics=step_metrics, walls=walls)


def test_zero2_loss_decreases_and_ranks_hold_identical_weights(zero2_run):
    losses = zero2_run["losses"]
    assert losses[2] < losses[0], losses
    rank0, rank1 = (v["params"] for v in zero2_run["views"])
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    final = zero2_run["published"][-1]
    assert set(final) == set(TinyGaussPolicy().state_dict())
    for name in rank0:
        assert final[name].dtype == torch.float32
        assert torch.allclose(final[name], rank0[name], atol=0), name
    assert not torch.equal(final["gain"], zero2_run["published"][0]["gain"])
    assert zero2_run["version"] == 3 and zero2_run["ema_version"] == 3


def test_learner_steps_report_where_their_time_went(zero2_run):
    for m, wall in zip(zero2_run["step_metrics"], zero2_run["walls"]):
        parts = [m[k] for k in ("time/forward_s", "time/backward_s", "time/step_s", "time/ref_forward_s")]
        assert all(math.isfinite(p) and p > 0 for p in parts), m  # kl_beta > 0: the reference runs too
        assert m["time/ref_forward_s"] <= m["time/forward_s"]  # inside the engine's forward
        assert m["time/forward_s"] + m["time/backward_s"] + m["time/step_s"] <= wall
        others = [m[k] for k in ("time/fetch_s", "time/ema_s")]
        assert all(math.isfinite(p) and p > 0 for p in others), m
        inside = m["time/forward_s"] + m["time/backward_s"] + m["time/step_s"] + sum(others)
        assert inside <= m["time/rank_step_s"] <= wall
        assert "ref_forward_s" not in m  # summed as a time, not averaged over rows


def test_zero2_optimizer_state_is_sharded(zero2_run):
    held = [v["optimizer_state_numel"] for v in zero2_run["views"]]
    whole = 2 * NUM_PARAMS  # AdamW keeps exp_avg and exp_avg_sq per parameter
    assert all(0.45 * whole <= h <= 0.55 * whole for h in held), (held, whole)
    assert whole <= sum(held) <= whole + 64


def test_ema_is_the_decayed_average_of_published_weights(zero2_run):
    w = zero2_run["published"]
    d = GRPO.ema_decay
    for name, avg in zero2_run["ema"].items():
        expected = d**3 * w[0][name] + (1 - d) * (d**2 * w[1][name] + d * w[2][name] + w[3][name])
        assert torch.allclose(avg, expected, atol=1e-6), name


def test_uneven_shards_keep_ranks_in_step(zero2_run):
    m = zero2_run["uneven_metrics"]
    assert m["micro_steps"] == 3 and m["rows"] == 11
    rank0, rank1 = (v["params"] for v in zero2_run["after_uneven"])
    assert all(torch.equal(rank0[n], rank1[n]) for n in rank0)


@pytest.fixture(scope="module")
def zero3_run(groups, tmp_path_factory):
    ckpt = str(tmp_path_factory.mktemp("learner") / "ckpt")
    group, fresh = groups["zero3"], groups["zero3_fresh"]
    shards = _shards()
    for step in range(2):
        group.train_step(shards, step)
    group.save_checkpoint(ckpt, {"step": 2, "note": "after two"})
    third = group.train_step(shards, 2)
    weights = ray.get(group.get_weights()[1])
    ema = ray.get(group.get_ema_weights()[1])
    views = group.rank_views()
    fresh_initial = ray.get(fresh.get_weights()[1])
    client_state = fresh.load_checkpoint(ckpt)
    loaded_version = fresh.version
    resumed_third = fresh.train_step(shards, 2)
    resumed_weights = ray.get(fresh.get_weights()[1])
    resumed_ema = ray.get(fresh.get_ema_weights()[1])
    return dict(fresh_initial=fresh_initial, third=third, weights=weights, ema=ema, views=views, client_state=client_state,
                loaded_version=loaded_version, resumed_third=resumed_third, resumed_weights=resumed_weights,
                resumed_ema=resumed_ema)


def test_zero3_shards_parameters_and_trains_like_zero2(zero3_run, zero2_run):
    held = [sum(t.numel() for t in v["params"].values()) for v in zero3_run["views"]]
    assert all(h < 0.6 * NUM_PARAMS for h in held) and NUM_PARAMS <= sum(held), (held, NUM_PARAMS)
    # same seed, same data, same steps: ZeRO-3 reaches ZeRO-2's weights
    for name, w in zero3_run["weights"].items():
        assert torch.allclose(w, zero2_run["published"][3][name], atol=1e-5), name


def test_initial_state_ref_sets_every_ranks_start(zero3_run):
    expected = _other_init()
    for name, w in zero3_run["fresh_initial"].items():
        assert torch.equal(w, expected[name]), name


def test_checkpoint_round_trip_resumes_exactly(zero3_run):
    assert zero3_run["client_state"] == {"step": 2, "note": "after two"}
    assert zero3_run["loaded_version"] == 2
    assert zero3_run["resumed_third"]["loss"] == pytest.approx(zero3_run["third"]["loss"], abs=1e-7)
    for name, w in zero3_run["weights"].items():
        assert torch.allclose(zero3_run["resumed_weights"][name], w, atol=1e-6), name
        assert torch.allclose(zero3_run["resumed_ema"][name], zero3_run["ema"][name], atol=1e-6), name


def test_shm_buffer_removal_touches_only_the_given_group_and_rank(tmp_path):
    from actors.shm_buffers import remove_shm_buffers, shm_buffers

    names = [f"deepspeed_allreduce_buffer_0_127.0.0.1_{port}_{rank}" for port in (2900, 29001) for rank in (0, 1)]
    for n in names + ["unrelated_127.0.0.1_2900_0"]:
        (tmp_path / n).write_bytes(b"x")
    assert remove_shm_buffers("127.0.0.1", 2900, 1, shm_dir=str(tmp_path)) == 1
    assert [os.path.basename(p) for p in shm_buffers("127.0.0.1", 2900, shm_dir=str(tmp_path))] == [names[0]]
    assert remove_shm_buffers("127.0.0.1", 29001, shm_dir=str(tmp_path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [names[0], "unrelated_127.0.0.1_2900_0"]


def test_shutdown_leaves_no_deepspeed_shared_memory_behind(groups, zero2_run):
    # Runs last in this module: it shuts the ZeRO-2 group down (the fixture's shutdown is then a no-op).
    from actors.shm_buffers import shm_buffers

    group = groups["zero2"]
    addr, port = group.rendezvous
    assert len(shm_buffers(addr, port)) == 2  # DeepSpeed's CPU comm op made one buffer per rank
    group.shutdown()
    assert shm_buffers(addr, port) == []
