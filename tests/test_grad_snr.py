"""Signal-to-noise maths of the policy gradient (orchestrator/grpo/snr.py)."""
import math

import numpy as np
import pytest
import torch

from benchmarks.grad_snr import stepped_along
from orchestrator.grpo.snr import gradient_snr, gradient_snr_from_gram


def noisy_gradients(mean: np.ndarray, sigma: float, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return mean[None, :] + sigma * rng.standard_normal((k, mean.size))


def test_snr_recovers_signal_and_noise_of_known_gradients():
    p, k, sigma = 4000, 64, 1.0
    mean = np.full(p, 0.1)  # |g|^2 = 40, tr Cov = 4000: SNR per group 0.01, 100 groups for SNR 1
    result = gradient_snr(noisy_gradients(mean, sigma, k, seed=1))
    assert result.signal_sq == pytest.approx(40.0, rel=0.25)
    assert result.noise_trace == pytest.approx(4000.0, rel=0.05)
    assert result.snr_per_group == pytest.approx(0.01, rel=0.25)
    assert result.detected
    assert result.groups_for_snr1 == pytest.approx(100.0, rel=0.3)
    # 100 groups: SNR about 1, cosine about sqrt(1/2)
    assert result.cosine_at(100) == pytest.approx(math.sqrt(0.5), abs=0.08)


def test_pure_noise_is_not_detected_and_needs_infinite_groups():
    result = gradient_snr(noisy_gradients(np.zeros(4000), 1.0, 48, seed=2))
    assert abs(result.snr_per_group) < 4 * result.null_sd
    assert not result.detected
    assert result.groups_for_snr1 == math.inf
    assert result.cosine_at(10_000) == 0.0


def test_gram_and_gradient_paths_agree_and_the_null_spread_matches_pure_noise():
    g = noisy_gradients(np.full(2000, 0.05), 1.0, 32, seed=3)
    a, b = gradient_snr(g), gradient_snr_from_gram(g @ g.T)
    assert a.snr_per_group == pytest.approx(b.snr_per_group) and a.null_sd == pytest.approx(b.null_sd)
    # The sign-flip spread is what pure noise of the same power scatters: sqrt(2 / (K (K - 1) d)).
    expected = math.sqrt(2.0 / (32 * 31 * 2000))
    assert a.null_sd == pytest.approx(expected, rel=0.4)


def test_identical_gradients_are_all_signal_and_zero_gradients_are_nothing():
    same = gradient_snr(np.ones((4, 5)))
    assert same.detected and same.groups_for_snr1 == 0.0 and same.cosine_at(1) == 1.0
    # A reward with no spread within any group gives zero advantages, so zero gradients.
    none = gradient_snr(np.zeros((4, 5)))
    assert not none.detected and none.snr_per_group == 0.0 and none.cosine_at(100) == 0.0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="at least 2"):
        gradient_snr(np.ones((1, 5)))
    with pytest.raises(ValueError, match=r"\[groups, params\]"):
        gradient_snr(np.ones(5))
    with pytest.raises(ValueError, match="non-finite"):
        gradient_snr_from_gram(np.array([[1.0, np.nan], [np.nan, 1.0]]))


def test_step_along_a_direction_moves_the_weights_by_the_asked_fraction_and_restores_them():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[1].bias.requires_grad_(False)  # frozen: neither moved nor counted
    before = [p.detach().clone() for p in model.parameters()]
    trainable = [p for p in model.parameters() if p.requires_grad]
    norm = float(torch.sqrt(sum((p.detach() ** 2).sum() for p in trainable)))
    direction = np.random.default_rng(0).standard_normal(sum(p.numel() for p in trainable))
    with stepped_along(model, direction, 0.01):
        moved = torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(model.parameters(), before) if p.requires_grad])
        assert float(moved.norm()) == pytest.approx(0.01 * norm, rel=1e-5)
        assert np.allclose(moved.numpy() / moved.norm().item(), direction / np.linalg.norm(direction), atol=1e-5)
        assert torch.equal(model[1].bias, before[3])
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
