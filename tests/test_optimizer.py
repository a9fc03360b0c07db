"""`grpo.optimizer` (actors/optimizer.py): AdamW or SGD with momentum; a bad name or momentum is named."""
import pytest
import torch

from actors.optimizer import build_optimizer
from orchestrator.config import load_config


def test_sgd_moves_each_coordinate_in_proportion_to_its_gradient_and_adamw_by_about_lr():
    grad = torch.tensor([1e-6, 1e-3, 1.0])
    for name, expect in (("sgd", 0.1 * grad), ("adamw", torch.full((3,), 0.1))):
        w = torch.nn.Parameter(torch.zeros(3))
        frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)
        opt = build_optimizer([w], name, lr=0.1, weight_decay=0.0, momentum=0.9)
        w.grad = grad.clone()
        opt.step()
        assert torch.allclose(-w.detach(), expect, rtol=2e-2, atol=1e-12), name  # first step (AdamW: g / (|g| + eps))
        assert torch.equal(frozen, torch.ones(2))
    w = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([w], "sgd", lr=1.0, weight_decay=0.0, momentum=0.5)
    for _ in range(2):
        w.grad = torch.ones(1)
        opt.step()
    assert torch.allclose(w.detach(), torch.tensor([-2.5]))  # heavy ball: 1, then 0.5 * 1 + 1


def test_bad_optimizer_settings_are_named():
    with pytest.raises(ValueError, match="grpo.optimizer"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], "lion", 0.1, 0.0, 0.9)
    with pytest.raises(ValueError, match="grpo.momentum"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], "sgd", 0.1, 0.0, 1.0)
    from orchestrator.config.load import ConfigError

    assert load_config("tiny", ["grpo.optimizer=sgd"]).grpo.optimizer == "sgd"
    assert load_config("demo").grpo.optimizer == "adamw"
    with pytest.raises(ConfigError, match="grpo.optimizer"):
        load_config("tiny", ["grpo.optimizer=lion"])
