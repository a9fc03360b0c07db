"""A bf16 learner re-scores fp32 rollouts within `BF16_RATIO_TOLERANCE` (issue 18).

The rollout runs in float32; the learner casts the model as DeepSpeed's bf16 mode does (parameters
to bf16, buffers kept) and the batch with `TransitionBatch.to(dtype=bfloat16)`, then recomputes the
window transitions' log-probs exactly as `grpo_loss` does.
"""
import copy

import torch

from actors.config import BF16_RATIO_TOLERANCE
from actors.experience_builder import assemble_transitions
from orchestrator.config.schema import GRPOConfig
from orchestrator.grpo.loss import grpo_loss
from policies.build import build_policy
from policies.config import SamplerConfig
from policies.rollout import rollout_group, transition_log_prob
from test_policy_fixtures import make_clip, one_thread, randomize, tiny_cfg  # noqa: F401

SAMPLER = SamplerConfig(num_steps=8, guidance_scale=3.0, noise_level=0.7, schedule="fast_grpo", window=2)


def deepspeed_bf16(model: torch.nn.Module) -> torch.nn.Module:
    """A copy cast as DeepSpeed 0.19's bf16 engine casts its module: parameters only, buffers stay fp32."""
    out = copy.deepcopy(model)
    for p in out.parameters():
        p.data = p.data.to(torch.bfloat16)
    return out


def rescored(model, batch) -> torch.Tensor:
    with torch.no_grad():
        cond = model.encode_conditions(batch.cond_inputs)
        return transition_log_prob(model, cond, batch.latents, batch.next_latents, batch.sigmas, batch.sigmas_next,
                                   SAMPLER.guidance_scale, SAMPLER.noise_level)[0]


def test_bf16_log_probs_agree_with_fp32_within_the_stated_tolerance():
    torch.manual_seed(0)
    policy = randomize(build_policy(tiny_cfg())).eval()
    prepared = policy.prepare([make_clip(0)])
    res = rollout_group(policy, prepared, 8, SAMPLER, [1, 2], torch.Generator().manual_seed(0))
    batch = assemble_transitions({"records": res.records, "prepared": prepared}, [1.0, -1.0] * 4, 0, "clip0")

    fp32 = rescored(policy, batch)
    assert torch.allclose(fp32, batch.old_log_probs, atol=1e-6)  # fp32 re-scoring is the rollout's own

    b16 = batch.to("cpu", torch.bfloat16)
    assert b16.latents.dtype == torch.bfloat16 and b16.old_log_probs.dtype == torch.float32
    bf16 = rescored(deepspeed_bf16(policy), b16)
    reference_bf16 = rescored(copy.deepcopy(policy).to(torch.bfloat16), b16)  # the learner's frozen reference
    assert bf16.dtype == torch.bfloat16
    for lp in (bf16, reference_bf16):
        ratio_error = (torch.exp(lp.float() - batch.old_log_probs) - 1.0).abs()
        assert torch.isfinite(ratio_error).all()
        assert ratio_error.max() < BF16_RATIO_TOLERANCE, f"bf16 ratio error {ratio_error.max():.2e}"
        assert ratio_error.max() > 0  # really computed in bf16


def test_a_bf16_learner_takes_a_grpo_gradient():
    torch.manual_seed(1)
    policy = randomize(build_policy(tiny_cfg())).eval()
    prepared = policy.prepare([make_clip(1)])
    res = rollout_group(policy, prepared, 4, SAMPLER, [0, 1], torch.Generator().manual_seed(1))
    batch = assemble_transitions({"records": res.records, "prepared": prepared}, [1.0, -1.0, 0.5, -0.5], 0, "clip1")
    model = deepspeed_bf16(policy).train()
    reference = copy.deepcopy(policy).to(torch.bfloat16).eval().requires_grad_(False)
    loss, metrics = grpo_loss(model, reference, batch.to("cpu", torch.bfloat16), GRPOConfig(clip_range=0.2, kl_beta=0.04),
                              SAMPLER.guidance_scale, SAMPLER.noise_level)
    loss.backward()
    assert torch.isfinite(loss) and abs(metrics["ratio_mean"] - 1.0) < BF16_RATIO_TOLERANCE
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and g.dtype == torch.bfloat16 and torch.isfinite(g).all() for g in grads)
    assert model.final.linear.weight.grad.abs().sum() > 0
