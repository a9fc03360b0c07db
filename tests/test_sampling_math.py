"""The SDE/ODE step maths on their own: Euler limit, log-prob formula, exact Gaussian marginals."""
from test_policy_fixtures import one_thread  # noqa: F401  (autouse)
import math

import torch

from policies.sampling import make_sigmas, ode_step, sde_log_prob, sde_step


def test_sigmas_run_from_one_to_zero_and_shift_bends_them_towards_noise():
    s = make_sigmas(12)
    assert s.shape == (13,) and s[0] == 1.0 and s[-1] == 0.0 and bool((s[1:] < s[:-1]).all())
    shifted = make_sigmas(12, shift=3.0)
    assert shifted[0] == 1.0 and shifted[-1] == 0.0 and bool((shifted[1:-1] > s[1:-1]).all())


def test_noise_level_zero_is_exactly_the_euler_step():
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    for s, s_next in [(1.0, 0.9), (0.5, 0.4), (0.1, 0.0)]:
        step = sde_step(x, v, s, s_next, 0.0, generator=g)
        assert torch.equal(step.x_next, ode_step(x, v, s, s_next))
        assert torch.allclose(step.x_next, x + v * (s_next - s), atol=1e-6, rtol=0)
        assert torch.equal(step.log_prob, torch.zeros(3))


def test_sampling_and_recomputed_log_prob_agree_and_match_the_gaussian_formula():
    g = torch.Generator().manual_seed(1)
    x, v = torch.randn(4, 6, 3, generator=g), torch.randn(4, 6, 3, generator=g)
    sig, sig_next = torch.tensor([1.0, 0.7, 0.4, 0.2]), torch.tensor([0.9, 0.6, 0.3, 0.0])
    step = sde_step(x, v, sig, sig_next, 0.7, generator=g)
    lp, mean, std = sde_log_prob(x, step.x_next, v, sig, sig_next, 0.7)
    assert torch.allclose(lp, step.log_prob, atol=1e-6)
    # Flow-GRPO's formula by hand for sample 1 (s=0.7), and sample 0 where s=1 uses s_next.
    for i, denom in [(0, 0.9), (1, 0.7)]:
        s, sn = float(sig[i]), float(sig_next[i])
        st = 0.7 * math.sqrt(s / (1 - denom))
        dt = sn - s
        m = x[i] * (1 + st**2 * dt / (2 * s)) + v[i] * (1 + st**2 * (1 - s) / (2 * s)) * dt
        sd = st * math.sqrt(-dt)
        assert torch.allclose(mean[i], m, atol=1e-6) and abs(float(std[i]) - sd) < 1e-6
        ref = (-(step.x_next[i] - m) ** 2 / (2 * sd**2) - math.log(sd) - 0.5 * math.log(2 * math.pi)).mean()
        assert abs(float(lp[i]) - float(ref)) < 1e-5
    # a different x_next is less likely than the sample's own mean
    lp_mean, _, _ = sde_log_prob(x, mean, v, sig, sig_next, 0.7)
    assert bool((lp_mean > lp).all())


def exact_velocity(x, t, m, s0):
    """E[noise - x0 | x_t = x] for x0 ~ N(m, s0^2), noise ~ N(0, 1), x_t = (1-t) x0 + t noise."""
    var = (1 - t) ** 2 * s0**2 + t**2
    r = x - (1 - t) * m
    return t / var * r - m - (1 - t) * s0**2 / var * r


def test_sde_sampling_with_exact_velocity_reaches_the_data_marginal():
    m, s0, n = 1.5, 0.5, 40000
    g = torch.Generator().manual_seed(2)
    sig = make_sigmas(200).double()
    for a in (0.7, 0.0):
        x = torch.randn(n, 1, generator=g, dtype=torch.float64)
        for i in range(200):
            v = exact_velocity(x, sig[i], m, s0)
            x = sde_step(x, v, sig[i], sig[i + 1], a, generator=g).x_next
        assert abs(float(x.mean()) - m) < 0.03, (a, float(x.mean()))
        assert abs(float(x.std()) - s0) < 0.03, (a, float(x.std()))
    # and midway the marginal std matches the exact one
    x = torch.randn(n, 1, generator=g, dtype=torch.float64)
    for i in range(100):
        x = sde_step(x, exact_velocity(x, sig[i], m, s0), sig[i], sig[i + 1], 0.7, generator=g).x_next
    t = float(sig[100])
    assert abs(float(x.std()) - math.sqrt((1 - t) ** 2 * s0**2 + t**2)) < 0.03
    assert abs(float(x.mean()) - (1 - t) * m) < 0.03
