"""Encoding a row batch's conditions once per distinct row gives the loss and gradients of encoding every row."""
from __future__ import annotations

import pytest
import torch

from policies.build import build_policy
from policies.row_conditions import distinct_rows, encode_row_conditions
from test_policy_fixtures import make_clip, one_thread, randomize, tiny_cfg  # noqa: F401


def _rows(policy, clips, copies):
    """Condition inputs of `clips` (Clip, plan-or-None), each repeated `copies` times, and their ids."""
    parts, ids = [], []
    for clip, cot in clips:
        prepared = policy.prepare([clip], cot=None if cot is None else [cot])
        parts.append({k: v.expand(copies, *v.shape[1:]).clone() for k, v in prepared.items()})
        ids += [clip.clip_id] * copies
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}, ids


def test_distinct_rows_by_clip_and_content():
    inputs = {"a": torch.tensor([[1, 2], [1, 2], [3, 4], [1, 2], [3, 4]]), "b": torch.zeros(5, 3)}
    first, inverse = distinct_rows(inputs, ["x", "x", "y", "x", "y"])
    assert first.tolist() == [0, 2] and inverse.tolist() == [0, 0, 1, 0, 1]
    # One clip id whose rows differ (another plan) keeps each variant; equal rows of two ids stay apart.
    first, inverse = distinct_rows(inputs, ["x", "x", "x", "y", "y"])
    assert first.tolist() == [0, 2, 3, 4] and inverse.tolist() == [0, 0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"cond_inputs\['b'\] has shape \(4, 3\); expected 5 rows"):
        distinct_rows({"a": inputs["a"], "b": torch.zeros(4, 3)}, ["x"] * 5)


def test_encoding_distinct_rows_matches_every_row_in_value_and_gradient():
    policy = randomize(build_policy(tiny_cfg())).train()
    plan = {"semantic": "a dog barks", "temporal": "at the start", "aesthetic": "clean", "spatial": "left"}
    inputs, ids = _rows(policy, [(make_clip(0), None), (make_clip(1), None), (make_clip(0), plan)], copies=4)
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0))  # a shuffled minibatch
    inputs, ids = {k: v[order] for k, v in inputs.items()}, [ids[i] for i in order.tolist()]
    assert len(distinct_rows(inputs, ids)[0]) == 3
    x_t = torch.randn(len(ids), *policy.latent_shape(), generator=torch.Generator().manual_seed(1))
    t = torch.rand(len(ids), generator=torch.Generator().manual_seed(2))
    params = [p for p in policy.parameters() if p.requires_grad]

    def loss_and_grads(encode):
        loss = policy.velocity(x_t, t, encode()).pow(2).mean()
        return loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)

    every_row = loss_and_grads(lambda: policy.encode_conditions(inputs))
    distinct = loss_and_grads(lambda: encode_row_conditions(policy, inputs, ids))
    assert torch.allclose(every_row[0], distinct[0], rtol=1e-6)
    for p, a, b in zip(params, every_row[1], distinct[1]):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-7), [n for n, q in policy.named_parameters() if q is p]
