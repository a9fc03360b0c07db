"""`policy.trainable`: LoRA adapters merge and unmerge exactly, frozen weights get no update, and a LoRA
policy's adapters-disabled reference gives a KL of zero while the policy equals it."""
import copy
import re

import pytest
import torch

from actors.experience import TransitionBatch
from orchestrator.config.schema import GRPOConfig
from orchestrator.grpo.loss import grpo_loss
from policies.build import build_policy
from policies.rollout import transition_log_prob
from policies.trainable import (AdaptersDisabled, apply_trainable, lora_layers, merge_lora_weight, optimizer_groups,
                                parse_trainable, plain_state_dict, reference_of, trainable_parts, unmerge_lora_weight)
from test_policy_fixtures import make_clip, one_thread, randomize, tiny_cfg  # noqa: F401

GRPO = GRPOConfig(lr=1e-2, weight_decay=0.1, clip_range=0.5, kl_beta=0.04)


def _policy(trainable: str, **kw):
    torch.manual_seed(0)
    cfg = tiny_cfg(trainable=trainable, **kw)
    return apply_trainable(randomize(build_policy(cfg)), cfg), cfg


def _batch(policy, adv=(1.0, -1.0)):
    prepared = {k: torch.as_tensor(v).repeat(2, *[1] * (torch.as_tensor(v).ndim - 1))
                for k, v in policy.prepare([make_clip(0)]).items()}
    g = torch.Generator().manual_seed(1)
    shape = (2, *policy.latent_shape())
    b = TransitionBatch(cond_inputs=prepared, latents=torch.randn(shape, generator=g),
                        next_latents=torch.randn(shape, generator=g), sigmas=torch.tensor([0.9, 0.8]),
                        sigmas_next=torch.tensor([0.8, 0.7]), old_log_probs=torch.zeros(2),
                        advantages=torch.tensor(adv), versions=torch.zeros(2, dtype=torch.long), clip_ids=["a", "a"])
    with torch.no_grad():
        b.old_log_probs = transition_log_prob(policy, policy.encode_conditions(prepared), b.latents, b.next_latents,
                                              b.sigmas, b.sigmas_next, 2.0, 0.7)[0]
    return b


def _step(policy, reference, batch):
    """One learner step: AdamW over the trainable parameters, as actors/learner_rank.py builds it."""
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=GRPO.lr,
                            weight_decay=GRPO.weight_decay)
    loss, metrics = grpo_loss(policy, reference, batch, GRPO, 2.0, 0.7)
    loss.backward()
    opt.step()
    return metrics


def test_bad_trainable_values_are_named():
    assert parse_trainable("last_blocks:2") == ("last_blocks", 2)
    assert parse_trainable("lora+mlp+ada") == ("parts", 0)
    assert trainable_parts("lora+mlp+ada") == (True, ("mlp", "ada")) and trainable_parts("heads") == (False, ("heads",))
    assert parse_trainable("all-cond") == ("all_but", 0) and parse_trainable("all-cond-ada") == ("all_but", 0)
    for bad in ("some", "last_blocks:0", "last_blocks:x", "lora+lora", "lora+", "lora+mlp+conv", "",
                "all-", "all-lora", "all-cond-cond", "all-conv"):
        with pytest.raises(ValueError, match="policy.trainable"):
            parse_trainable(bad)
    with pytest.raises(ValueError, match="only 2 blocks"):
        _policy("last_blocks:3")
    with pytest.raises(ValueError, match=r"lora\+attn.*blocks\.0\.attn"):  # adapters and full weights on one module
        _policy("lora+attn", lora_rank=4)


@pytest.mark.parametrize("trainable", ["heads", "last_blocks:1", "lora", "lora+mlp+ada", "mlp", "all-cond", "all-cond-inputs"])
def test_a_frozen_parameter_receives_no_update(trainable):
    policy, _ = _policy(trainable, lora_rank=4)
    before = {n: p.detach().clone() for n, p in policy.named_parameters()}
    reference = reference_of(policy) or copy.deepcopy(policy).requires_grad_(False)
    _step(policy, reference, _batch(policy))
    frozen = [n for n, p in policy.named_parameters() if not p.requires_grad]
    trained = [n for n, p in policy.named_parameters() if p.requires_grad]
    assert frozen and trained
    assert all(torch.equal(before[n], dict(policy.named_parameters())[n]) for n in frozen)
    assert all(dict(policy.named_parameters())[n].grad is None for n in frozen)
    moved = [n for n in trained if not torch.equal(before[n], dict(policy.named_parameters())[n])]
    assert moved, "no trainable parameter moved"
    if trainable == "heads":
        assert all(n.startswith("final.") for n in trained)
    if trainable == "last_blocks:1":
        assert all(n.startswith(("final.", "blocks.1.")) for n in trained)
    if trainable == "lora+mlp+ada":
        assert {n for n in trained if ".lora_" not in n} == {
            n for n in before if re.fullmatch(r"blocks\.\d\.(mlp|ada)\..*|final\.ada\..*", n)}
        assert any(".lora_" in n for n in moved) and any(".mlp." in n for n in moved)
        assert not any(".base_layer." in n for n in trained)
    if trainable == "all-cond":  # the conditioning encoders frozen, every other weight trained
        cond = r"(text|video|sync_proj|pool_proj)\..*|video_segment"
        assert set(frozen) == {n for n in before if re.fullmatch(cond, n)}
        assert {n.split(".")[0] for n in frozen} == {"text", "video", "video_segment", "sync_proj", "pool_proj"}
    if trainable == "all-cond-inputs":
        assert {n.split(".")[0] for n in frozen} == {"text", "video", "video_segment", "sync_proj", "pool_proj",
                                                     "x_in", "t_embed", "blocks"}
        assert {n for n in frozen if n.startswith("blocks.")} == {n for n in before if ".norm_x." in n}


def test_lora_beside_full_weights_gets_its_own_rate_and_a_frozen_copy_as_reference():
    policy, _ = _policy("lora+mlp+ada", lora_rank=4)
    assert reference_of(policy) is None  # disabling the adapters no longer gives the reference: the learner copies
    groups = optimizer_groups(policy, 1e-3, 0.25)
    assert [g["lr"] for g in groups] == [1e-3, 2.5e-4]
    assert all(p.requires_grad for g in groups for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in policy.parameters())
    names = {id(p): n for n, p in policy.named_parameters()}
    assert all(".lora_" in names[id(p)] for p in groups[0]["params"])
    assert not any(".lora_" in names[id(p)] for p in groups[1]["params"])
    assert len(optimizer_groups(policy, 1e-3, 1.0)) == 1
    assert len(optimizer_groups(_policy("lora", lora_rank=4)[0], 1e-3, 0.25)) == 1  # nothing at full weight
    with pytest.raises(ValueError, match="full_weight_lr_scale"):
        optimizer_groups(policy, 1e-3, 0.0)
    # the merged state is the plain policy's, with the full-weight parts as trained
    plain = build_policy(tiny_cfg())
    state = plain_state_dict(policy)
    assert set(state) == set(plain.state_dict())


def test_lora_merges_into_the_plain_policy_and_unmerges_exactly():
    policy, cfg = _policy("lora", lora_rank=4, lora_alpha=8.0)
    layers = lora_layers(policy)
    assert sorted(layers)[:3] == ["blocks.0.attn.kv", "blocks.0.attn.out", "blocks.0.attn.q"] and len(layers) == 12
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in layers.values():
            m.lora_B["default"].weight.copy_(0.05 * torch.randn(m.lora_B["default"].weight.shape, generator=g))
    plain = build_policy(tiny_cfg())
    state = plain_state_dict(policy)
    assert set(state) == set(plain.state_dict())
    plain.load_state_dict(state)
    x = torch.randn(2, *policy.latent_shape(), generator=g)
    prepared = policy.prepare([make_clip(1), make_clip(2)])
    with torch.no_grad():
        v_lora = policy.velocity(x, torch.tensor([0.5, 0.3]), policy.encode_conditions(prepared))
        v_plain = plain.velocity(x, torch.tensor([0.5, 0.3]), plain.encode_conditions(prepared))
    assert torch.allclose(v_lora, v_plain, atol=1e-5)
    m = layers["blocks.1.cross.kv"]
    w0 = m.base_layer.weight.detach().clone()
    a, b = m.lora_A["default"].weight.detach(), m.lora_B["default"].weight.detach()
    merged = merge_lora_weight(w0, a, b, 2.0)
    assert torch.equal(state["blocks.1.cross.kv.weight"], merged)
    assert torch.allclose(unmerge_lora_weight(merged, a, b, 2.0), w0, atol=1e-6, rtol=0)
    m.merge()  # peft's own merge and unmerge agree with ours
    assert torch.allclose(m.base_layer.weight, merged, atol=1e-6, rtol=0)
    m.unmerge()
    assert torch.allclose(m.base_layer.weight, w0, atol=1e-6, rtol=0)


def test_lora_reference_is_the_adapters_disabled_policy_and_kl_is_zero_while_they_are_equal():
    policy, _ = _policy("lora", lora_rank=4)
    reference = reference_of(policy)
    assert isinstance(reference, AdaptersDisabled) and reference._model is policy  # no second copy
    batch = _batch(policy)
    _, metrics = grpo_loss(policy, reference, batch, GRPO, 2.0, 0.7)
    assert metrics["kl"] == 0.0  # B starts at zero: the adapted policy is the reference
    _step(policy, reference, batch)
    _, metrics = grpo_loss(policy, reference, batch, GRPO, 2.0, 0.7)
    assert metrics["kl"] > 0
    # the reference is the base weights: a plain policy loaded with the pre-LoRA state gives the same velocity
    base = build_policy(tiny_cfg())
    base.load_state_dict({k.replace(".base_layer.", "."): v for k, v in policy.state_dict().items() if ".lora_" not in k})
    x = torch.randn(2, *policy.latent_shape())
    cond_inputs = batch.cond_inputs
    with torch.no_grad():
        v_ref = reference.velocity(x, torch.tensor([0.5, 0.5]), reference.encode_conditions(cond_inputs))
        v_base = base.velocity(x, torch.tensor([0.5, 0.5]), base.encode_conditions(cond_inputs))
        v_pol = policy.velocity(x, torch.tensor([0.5, 0.5]), policy.encode_conditions(cond_inputs))
    assert torch.allclose(v_ref, v_base, atol=1e-6) and not torch.allclose(v_pol, v_base, atol=1e-6)
    assert all(not m.disable_adapters for m in lora_layers(policy).values())  # the view left them on


def test_the_learners_optimizer_moves_full_weights_at_their_scaled_rate():
    """AdamW's first step moves each coordinate by about its group's lr (weight decay off), so the
    full-weight parts move by lr * grpo.full_weight_lr_scale and the adapters by lr."""
    from actors.optimizer import build_optimizer

    policy, _ = _policy("lora+mlp", lora_rank=4)
    with torch.no_grad():  # B != 0 so that A gets a gradient too
        for m in lora_layers(policy).values():
            m.lora_B["default"].weight.normal_(0, 0.05)
    before = {n: p.detach().clone() for n, p in policy.named_parameters() if p.requires_grad}
    opt = build_optimizer(optimizer_groups(policy, 1e-3, 0.1), "adamw", 1e-3, 0.0, 0.9)
    reference = copy.deepcopy(policy).requires_grad_(False)
    loss, _ = grpo_loss(policy, reference, _batch(policy), GRPO, 2.0, 0.7)
    loss.backward()
    opt.step()
    steps = {n: (p.detach() - before[n]).abs() for n, p in policy.named_parameters() if p.requires_grad}
    moved = lambda lora: torch.cat([s[s > 0] for n, s in steps.items() if (".lora_" in n) == lora])  # noqa: E731
    assert torch.allclose(moved(True).median(), torch.tensor(1e-3), rtol=0.05)
    assert torch.allclose(moved(False).median(), torch.tensor(1e-4), rtol=0.05)
