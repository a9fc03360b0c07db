"""PrismAudio's reward formulas as plain functions (numbers or numpy arrays in, same shape out).

Every teacher backend turns its measurement into a reward with one of these, so a model backend
and its signal stand-in give rewards on the same scale.
"""
from __future__ import annotations

import numpy as np

SYNCHFORMER_MAX_OFFSET_S = 2.0
"""Largest audio-visual offset Synchformer classifies, in seconds (either sign)."""
SYNCHFORMER_STEP_S = 0.2
"""Spacing of Synchformer's offset classes, in seconds."""


def synchformer_offset_grid() -> np.ndarray:
    """The 21 offset classes of Synchformer: -2.0, -1.8, ..., +2.0 seconds."""
    n = int(round(2 * SYNCHFORMER_MAX_OFFSET_S / SYNCHFORMER_STEP_S)) + 1
    return np.round(np.linspace(-SYNCHFORMER_MAX_OFFSET_S, SYNCHFORMER_MAX_OFFSET_S, n), 10)


def snap_to_offset_grid(offset_s):
    """The Synchformer class nearest to `offset_s` (clipped to +-2 s)."""
    grid = synchformer_offset_grid()
    off = np.asarray(offset_s, dtype=np.float64)
    snapped = grid[np.abs(off[..., None] - grid).argmin(axis=-1)]
    return float(snapped) if snapped.ndim == 0 else snapped


def timing_reward(offset_s):
    """Timing reward `(2 - |offset|) / 4`: 0.5 in sync, 0 at a 2 s offset (PrismAudio)."""
    return (SYNCHFORMER_MAX_OFFSET_S - np.abs(offset_s)) / 4.0


def aesthetic_reward(ce, cu, pc, pq):
    """Aesthetic reward `(CE + CU - PC + PQ) / 40` from Audiobox Aesthetics' four 1-10 axes.

    CE content enjoyment, CU content usefulness, PC production complexity (subtracted), PQ
    production quality. Range: [-0.175, 0.725] for axes in [1, 10].
    """
    return (ce + cu - pc + pq) / 40.0


def spatial_reward(ditd_crw_ms, ditd_gcc_ms, w_crw: float = 1.25, w_gcc: float = 2.5):
    """Spatial reward `-(w_crw * dITD_crw^2 + w_gcc * dITD_gcc^2)`, ITD differences in milliseconds.

    dITD_*: ITD of the generated audio minus ITD of the ground truth, by StereoCRW and by GCC-PHAT.
    PrismAudio's weights are 1.25 and 2.5; 0 is a perfect stereo image, more negative is worse.
    """
    return -(w_crw * np.square(ditd_crw_ms) + w_gcc * np.square(ditd_gcc_ms))


def spatial_gcc_reward(ditd_gcc_ms, w_gcc: float = 2.5):
    """The GCC-PHAT term of `spatial_reward` alone, `-w_gcc * dITD_gcc^2` (the gcc_phat backend's reward)."""
    return -w_gcc * np.square(ditd_gcc_ms)


def ms_clap_score(cos, logit_scale):
    """MS-CLAP semantic reward `exp(logit_scale) * cos / 80` (cos: audio-text cosine similarity)."""
    return np.exp(logit_scale) * cos / 80.0
