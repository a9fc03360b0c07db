"""`rollout.dtype`: which precision the sampler's network runs in, and what stays float32."""
import dataclasses

import pytest
import torch

from orchestrator.config.load import load_config
from orchestrator.training.roles import rollout_config
from policies.build import build_policy
from policies.config import SamplerConfig
from policies.forward_draws import noised, sample_group
from policies.precision import cpu_flags, resolve_sampling_dtype
from policies.rollout import expand_conditions, rollout_group
from test_policy_fixtures import make_clip, one_thread, randomize, tiny_cfg  # noqa: F401

ODE = SamplerConfig(num_steps=4, guidance_scale=2.0, noise_level=0.0, schedule="flow_grpo")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return randomize(build_policy(tiny_cfg())).eval()


def test_auto_is_bf16_only_on_a_cpu_with_native_bf16_dot_products():
    assert resolve_sampling_dtype("auto", CPU, {"avx512f", "avx512_bf16"}) is torch.bfloat16
    assert resolve_sampling_dtype("auto", CPU, {"amx_bf16", "amx_tile"}) is torch.bfloat16
    assert resolve_sampling_dtype("auto", CPU, {"avx512f", "avx2"}) is None
    assert resolve_sampling_dtype("auto", CPU, set()) is None
    assert resolve_sampling_dtype("fp32", CPU, {"avx512_bf16"}) is None
    assert resolve_sampling_dtype("bf16", CPU, set()) is torch.bfloat16
    with pytest.raises(ValueError, match="rollout.dtype"):
        resolve_sampling_dtype("fp16", CPU)


def test_cpu_flags_reads_the_first_processor_and_tolerates_a_missing_file(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(str(info)) == {"fpu", "avx512f", "avx512_bf16"}
    assert cpu_flags(str(tmp_path / "absent")) == frozenset()


def test_bf16_sampling_stays_near_fp32_and_keeps_float32_latents(policy):
    prepared = policy.prepare([make_clip(0)])
    fp32 = rollout_group(policy, prepared, 3, ODE, [], torch.Generator().manual_seed(0))
    bf16 = rollout_group(policy, prepared, 3, ODE, [], torch.Generator().manual_seed(0), network_dtype=torch.bfloat16)
    assert bf16.latents_final.dtype == torch.float32
    assert not torch.equal(bf16.latents_final, fp32.latents_final)  # the network did run in bf16
    rel = (bf16.latents_final - fp32.latents_final).norm() / fp32.latents_final.norm()
    assert rel < 0.05
    assert all(w.dtype.name == "float32" for w in bf16.waveforms)


def test_forward_draws_old_velocity_is_the_float32_velocity_whatever_the_sampling_precision(policy):
    prepared = policy.prepare([make_clip(1)])
    result, draws = sample_group(policy, prepared, 3, ODE, [], torch.Generator().manual_seed(2), draws=2,
                                 time_range=(0.5, 1.0), network_dtype=torch.bfloat16)
    assert torch.equal(draws.clean_latents, result.latents_final)
    cond = expand_conditions(policy.encode_conditions(prepared), 3)
    with torch.no_grad():
        for j in range(2):
            x_t = noised(draws.clean_latents, draws.noise[j].expand_as(draws.clean_latents), draws.times[j].expand(3))
            v = policy.velocity(x_t, draws.times[j].expand(3), cond)
            assert v.dtype == torch.float32 and torch.allclose(draws.old_velocity[:, j], v, atol=1e-6, rtol=1e-6)
    _, none = sample_group(policy, prepared, 3, ODE, [], torch.Generator().manual_seed(2))
    assert none is None


def test_fast_grpo_samples_in_fp32_and_refuses_bf16():
    grpo_auto = load_config("demo", ["rollout.dtype=auto"])
    assert rollout_config(grpo_auto).dtype == "fp32"
    with pytest.raises(ValueError, match="rollout.dtype=bf16 needs train.algorithm=nft"):
        rollout_config(load_config("demo", ["rollout.dtype=bf16"]))
    nft = load_config("demo_nft", ["rollout.dtype=bf16"])
    assert rollout_config(nft).dtype == "bf16"
    assert rollout_config(dataclasses.replace(nft, rollout=dataclasses.replace(nft.rollout, dtype="auto"))).dtype == "auto"
