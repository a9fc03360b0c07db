"""Signal-to-noise ratio of a policy-gradient estimate (plain numpy, no Ray, no torch).

GRPO's gradient for one group is G_k = sum over its members of advantage x score gradient. Over
K independent groups, the expected gradient g = E[G_k] and the noise of one group's gradient,
tr Cov(G_k), are estimated without bias from the Gram matrix M_kl = G_k . G_l:

  |g|^2     ~ (sum of M_kl over k != l) / (K (K - 1))
  tr Cov    ~ trace(M) / K - |g|^2           (E|G_k|^2 = |g|^2 + tr Cov)

`snr_per_group` = |g|^2 / tr Cov. A gradient averaged over N groups has SNR N * snr_per_group, and
its expected cosine with the true gradient is sqrt(s / (1 + s)), s = N * snr_per_group. The
estimate itself is noisy; its spread when there is no signal (g = 0) comes from random sign flips
of the G_k, which leave pure noise unchanged in distribution (`null_sd`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class GradientSNR:
    """What K group gradients say about the policy gradient's signal and noise."""

    groups: int
    """K: the independent group gradients measured."""
    signal_sq: float
    """Unbiased estimate of |E[G_k]|^2 (may come out negative when there is no detectable signal)."""
    noise_trace: float
    """Unbiased estimate of tr Cov(G_k): the noise power of one group's gradient."""
    snr_per_group: float
    """signal_sq / noise_trace."""
    null_sd: float
    """Standard deviation of snr_per_group over sign-flipped gradients (its spread when there is no signal)."""

    @property
    def detected(self) -> bool:
        """True when snr_per_group is positive and more than 3 null standard deviations above zero."""
        return self.snr_per_group > 0 and self.snr_per_group > 3.0 * self.null_sd

    @property
    def groups_for_snr1(self) -> float:
        """Groups whose mean gradient has SNR 1 (inf when no signal is detected)."""
        return 1.0 / self.snr_per_group if self.detected else math.inf

    @property
    def groups_for_snr1_at_least(self) -> float:
        """Lower bound on the groups needed for SNR 1 at the 3-sd upper bound of the SNR
        (1 / (max(snr, 0) + 3 null_sd)); finite even when nothing is detected (inf when the
        gradients are all zero)."""
        upper = max(self.snr_per_group, 0.0) + 3.0 * self.null_sd
        return 1.0 / upper if upper > 0 else math.inf

    def cosine_at(self, n_groups: int) -> float:
        """Expected cosine between an n_groups mean gradient and the true one (0 when nothing is detected)."""
        if not self.detected:
            return 0.0
        if math.isinf(self.snr_per_group):
            return 1.0
        s = n_groups * self.snr_per_group
        return math.sqrt(s / (1.0 + s))

    def to_dict(self) -> dict[str, float]:
        """The fields plus detected, groups_for_snr1 and groups_for_snr1_at_least, for JSON reports."""
        return {**asdict(self), "detected": self.detected, "groups_for_snr1": self.groups_for_snr1,
                "groups_for_snr1_at_least": self.groups_for_snr1_at_least}


def _snr_from_gram(gram: np.ndarray, signs: np.ndarray | None = None) -> tuple[float, float]:
    k = gram.shape[0]
    trace = float(np.trace(gram))
    total = float(gram.sum()) if signs is None else float(signs @ gram @ signs)
    signal = (total - trace) / (k * (k - 1))
    return signal, trace / k - signal


def gradient_snr_from_gram(gram: np.ndarray, null_draws: int = 200, seed: int = 0) -> GradientSNR:
    """GradientSNR from the K x K Gram matrix of the group gradients (K >= 2)."""
    gram = np.asarray(gram, dtype=np.float64)
    if gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
        raise ValueError(f"gradient_snr_from_gram: the Gram matrix must be square, got shape {gram.shape}")
    k = gram.shape[0]
    if k < 2:
        raise ValueError(f"gradient_snr_from_gram: needs at least 2 group gradients, got {k}")
    if not np.isfinite(gram).all():
        raise ValueError("gradient_snr_from_gram: the Gram matrix has non-finite entries")
    signal, noise = _snr_from_gram(gram)
    if noise <= 0:  # every group gave the same gradient: all zero (no reward spread) or pure signal
        snr = math.inf if signal > 0 else 0.0
        return GradientSNR(groups=k, signal_sq=max(signal, 0.0), noise_trace=0.0, snr_per_group=snr, null_sd=0.0)
    rng = np.random.default_rng(seed)
    nulls = []
    for _ in range(max(0, null_draws)):
        s_sig, s_noise = _snr_from_gram(gram, rng.choice([-1.0, 1.0], size=k))
        nulls.append(s_sig / s_noise)
    null_sd = float(np.std(nulls)) if nulls else 0.0
    return GradientSNR(groups=k, signal_sq=signal, noise_trace=noise, snr_per_group=signal / noise, null_sd=null_sd)


def gradient_snr(group_grads: np.ndarray, null_draws: int = 200, seed: int = 0) -> GradientSNR:
    """GradientSNR of group gradients [K, P] (one row per independent group)."""
    g = np.asarray(group_grads, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError(f"gradient_snr: group gradients must be [groups, params], got shape {g.shape}")
    return gradient_snr_from_gram(g @ g.T, null_draws, seed)


def _leave_one_out_snr(gram: np.ndarray) -> np.ndarray:
    """snr_per_group of the K Gram matrices that each leave one group out (K >= 3)."""
    k = gram.shape[0]
    diag = np.diag(gram)
    total = gram.sum() - 2.0 * gram.sum(axis=1) + diag
    trace = np.trace(gram) - diag
    m = k - 1
    signal = (total - trace) / (m * (m - 1))
    noise = trace / m - signal
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(noise > 0, signal / noise, 0.0)


def snr_difference_se(gram_a: np.ndarray, gram_b: np.ndarray) -> tuple[float, float]:
    """snr_per_group(a) - snr_per_group(b) and its jackknife standard error, for two gradient sets measured
    on the SAME K groups (one Gram matrix each, the groups in the same order): the paired comparison of
    two trainable sets, window starts or advantage rules on the same rollouts. Leave-one-group-out
    keeps the Gram estimate unbiased (a bootstrap would count a resampled group's G_k . G_k as a pair)."""
    a, b = (np.asarray(g, dtype=np.float64) for g in (gram_a, gram_b))
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"snr_difference_se: two square Gram matrices of one shape needed, got {a.shape} and {b.shape}")
    k = a.shape[0]
    if k < 3:
        raise ValueError(f"snr_difference_se: needs at least 3 groups, got {k}")
    full = gradient_snr_from_gram(a, 0).snr_per_group - gradient_snr_from_gram(b, 0).snr_per_group
    loo = _leave_one_out_snr(a) - _leave_one_out_snr(b)
    se = math.sqrt((k - 1) / k * float(((loo - loo.mean()) ** 2).sum()))
    return float(full), se
