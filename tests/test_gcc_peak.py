"""GCC-PHAT peak picking: PrismRL's parabolic fit of the signed peak (default) and PrismAudio's
reference-parity mode (`integer_abs`: the integer lag of the largest |cross-correlation|, with the
plain phase transform and no upsampling), as a plain function and as options of the spatial teachers."""
from __future__ import annotations

import numpy as np
import pytest

from rewards import dsp
from rewards.backends.spatial_gcc_phat import SpatialGccPhatOptions, SpatialGccPhatTeacher
from rewards.backends.spatial_stereocrw import StereoCRWOptions, windowed_gcc_itd
from rewards.base import TeacherError
from common.types import Clip

SR = 16000
PARITY = dict(interp=1, floor_db=float("inf"), peak="integer_abs")
"""PrismAudio's reward: StereoCRW's gcc_phat with interp=1."""


def _noise(n=4000, seed=0):
    return np.random.default_rng(seed).standard_normal(n)


def _delayed(x, delay_samples):
    """x delayed by a (possibly fractional) number of samples (linear phase on a zero-padded FFT)."""
    n = 2 * x.size
    f = np.fft.rfftfreq(n)
    return np.fft.irfft(np.fft.rfft(x, n) * np.exp(-2j * np.pi * f * delay_samples), n)[: x.size]


def _textbook_integer_itd(left, right, max_shift):
    """GCC-PHAT from its definition: irfft of the unit-magnitude cross spectrum on 2N points, the
    lag in [-max_shift, max_shift] of the largest |correlation|; positive when right lags left."""
    n = 2 * left.size
    cross = np.conj(np.fft.rfft(left, n)) * np.fft.rfft(right, n)
    corr = np.fft.irfft(cross / np.maximum(np.abs(cross), 1e-30), n)
    lags = np.arange(-max_shift, max_shift + 1)
    return lags[np.argmax(np.abs(corr[lags % n]))] / SR


def test_peak_lag_modes_on_a_known_curve():
    lags = np.arange(-3, 4, dtype=float)
    curve = np.array([0.0, -0.9, 0.1, 0.2, 0.5, 0.4, 0.0])  # signed peak at +1, largest |value| at -2
    a, b, c = 0.2, 0.5, 0.4
    assert dsp.gcc_peak_lag(lags, curve) == pytest.approx(1 + 0.5 * (a - c) / (a - 2 * b + c))
    assert dsp.gcc_peak_lag(lags, curve, "integer_abs") == -2.0
    assert dsp.gcc_peak_lag(lags, np.zeros(7), "integer_abs") == 0.0 == dsp.gcc_peak_lag(lags, np.zeros(7))
    assert dsp.gcc_peak_lag(lags, np.array([0, 1, 0, 0, 0, 1, 0.0]), "integer_abs") == -2.0  # ties: first lag
    with pytest.raises(ValueError, match="peak mode 'nearest'"):
        dsp.gcc_peak_lag(lags, curve, "nearest")


@pytest.mark.parametrize("delay", [0, 3, -7, 16])
def test_integer_mode_recovers_an_integer_delay_exactly_as_the_textbook_estimator(delay):
    x = _noise(seed=abs(delay))
    right = _delayed(x, delay) + 0.05 * _noise(seed=99)
    itd = dsp.gcc_phat_itd(x, right, SR, max_delay_s=1.5e-3, **PARITY)
    assert itd == delay / SR
    assert itd == _textbook_integer_itd(x, right, max_shift=24)


def test_integer_mode_differs_from_the_default_on_a_fractional_delay():
    x = _noise(seed=5)
    right = _delayed(x, 2.4)
    default = dsp.gcc_phat_itd(x, right, SR, max_delay_s=1e-3)
    parity = dsp.gcc_phat_itd(x, right, SR, max_delay_s=1e-3, **PARITY)
    assert abs(default * SR - 2.4) < 0.25  # sub-sample
    assert parity * SR == 2.0  # the nearest grid lag, no refinement
    # with the same curve (16x upsampled) the integer mode stays on the 1/16-sample grid
    grid = dsp.gcc_phat_itd(x, right, SR, max_delay_s=1e-3, peak="integer_abs") * SR * 16
    assert grid == pytest.approx(round(grid)) and abs(grid / 16 - 2.4) <= 1 / 32 + 1e-9


def test_integer_abs_takes_a_phase_inverted_channel_at_its_delay():
    x = _noise(seed=7)
    right = -_delayed(x, 4)  # one channel wired the other way round
    assert dsp.gcc_phat_itd(x, right, SR, max_delay_s=1e-3, **PARITY) == 4 / SR
    assert abs(dsp.gcc_phat_itd(x, right, SR, max_delay_s=1e-3) * SR - 4) > 0.5  # signed peak is elsewhere


def test_spatial_teachers_take_the_peak_option():
    x = _noise(n=8000, seed=8)
    clip = Clip("c1", "val", np.zeros((1, 4, 4, 3), np.uint8), 25.0, np.stack([x, _delayed(x, 3)]), SR, cot={})
    gen = np.stack([x, _delayed(x, 1.4)])
    teacher = SpatialGccPhatTeacher(SpatialGccPhatOptions(peak="integer_abs", interp=1, phat_floor_db=float("inf")))
    grade = teacher.grade([gen], SR, [clip])[0]
    assert grade.diagnostics["itd_gt_ms"] == 1000 * 3 / SR and grade.diagnostics["itd_gen_ms"] == 1000 * 1 / SR
    default = SpatialGccPhatTeacher().grade([gen], SR, [clip])[0]
    assert abs(default.diagnostics["itd_gen_ms"] - 1000 * 1.4 / SR) < 1000 * 0.25 / SR
    with pytest.raises(TeacherError, match="options.peak: 'argmax'"):
        SpatialGccPhatTeacher(SpatialGccPhatOptions(peak="argmax"))
    with pytest.raises(TeacherError, match="gcc_peak must be one of"):
        StereoCRWOptions(checkpoint="crw.pth.tar", gcc_peak="argmax")
    stereo = np.stack([x, _delayed(x, 2.6)])
    assert windowed_gcc_itd(stereo, 3840, 4, 1.5e-3, 1, "integer_abs", float("inf")) * SR == 3.0
    assert abs(windowed_gcc_itd(stereo, 3840, 4, 1.5e-3, 1) * SR - 2.6) < 0.3
