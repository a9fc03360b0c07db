"""rewards.dsp: physical checks of GCC-PHAT delays, onset envelopes, resampling and mel spectra."""
import numpy as np
import pytest

from rewards import dsp

SR = 16000


def _noise(n=SR, seed=0):
    return np.random.default_rng(seed).standard_normal(n)


def _delayed(x, delay_samples):
    """x delayed by a (possibly fractional) number of samples, by a linear phase on a zero-padded FFT."""
    n = 2 * x.size
    f = np.fft.rfftfreq(n)
    y = np.fft.irfft(np.fft.rfft(x, n) * np.exp(-2j * np.pi * f * delay_samples), n)
    return y[: x.size]


@pytest.mark.parametrize("delay", [0, 1, 3, -4, 9, -15, 0.5, 2.25, -6.7, 11.4])
def test_gcc_phat_itd_recovers_known_delay_within_one_sample(delay):
    x = _noise()
    itd = dsp.gcc_phat_itd(x, _delayed(x, delay), SR, max_delay_s=0.001)
    assert abs(itd * SR - delay) < 1.0
    assert abs(itd * SR - delay) < 0.25  # sub-sample resolution, not just integer lags


def test_gcc_phat_sign_positive_when_right_lags_left():
    x = _noise(seed=1)
    assert dsp.gcc_phat_itd(x, _delayed(x, 5), SR) > 0  # right later: source on the left
    assert dsp.gcc_phat_itd(_delayed(x, 5), x, SR) < 0


def test_gcc_phat_itd_is_bounded_and_finite_on_silence():
    assert dsp.gcc_phat_itd(np.zeros(800), np.zeros(800), SR) == 0.0
    x = _noise(seed=2)
    itd = dsp.gcc_phat_itd(x, _delayed(x, 40), SR, max_delay_s=0.001)  # 2.5 ms, outside the window
    assert abs(itd) <= 0.001 + 1e-9


def test_gcc_phat_curve_peaks_at_delay():
    x = _noise(seed=3)
    lags, curve = dsp.gcc_phat(x, _delayed(x, 6), SR, max_delay_s=0.001, interp=4)
    assert lags.shape == curve.shape == (2 * 64 + 1,)
    assert lags[np.argmax(curve)] * SR == pytest.approx(6.0, abs=0.25)


def test_onset_envelope_peaks_at_event_times_for_stereo_input():
    x = 1e-3 * _noise(2 * SR, seed=4)
    times = [0.3, 0.95, 1.6]
    for t in times:
        i = int(t * SR)
        x[i : i + 1600] += np.sin(2 * np.pi * 800 * np.arange(1600) / SR) * np.exp(-np.arange(1600) / 400)
    env, frame_rate = dsp.onset_envelope(np.stack([x, 0.5 * x]), SR)
    assert frame_rate == 100.0
    assert env.shape == (2 * SR // 160 + 1,)
    found = dsp.pick_onsets(env, frame_rate)
    assert len(found) == len(times)
    assert np.allclose(found, times, atol=0.02)


def test_resample_keeps_frequency_and_duration():
    t = np.arange(SR) / SR
    x = np.stack([np.sin(2 * np.pi * 440 * t)] * 2)
    y = dsp.resample(x, SR, 44100)
    assert y.shape == (2, 44100) and y.dtype == np.float32
    spec = np.abs(np.fft.rfft(y[0]))
    assert np.fft.rfftfreq(44100, 1 / 44100)[spec.argmax()] == pytest.approx(440, abs=1)


def test_to_mono_and_log_mel_band_of_a_tone():
    t = np.arange(SR) / SR
    low, high = np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 4000 * t)
    assert dsp.to_mono(np.stack([low, high])) == pytest.approx((low + high) / 2, abs=1e-6)
    mel_low, mel_high = dsp.log_mel(low, SR, n_mels=40), dsp.log_mel(high, SR, n_mels=40)
    assert mel_low.shape == (40, SR // 160 + 1)
    assert mel_low.mean(axis=1).argmax() < mel_high.mean(axis=1).argmax()
    with pytest.raises(ValueError, match="shape"):
        dsp.to_mono(np.zeros((1, 2, 3)))



def _band(x, lo_hz, hi_hz):
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.size, 1.0 / SR)
    spec[(f < lo_hz) | (f > hi_hz)] = 0.0
    return np.fft.irfft(spec, x.size)


@pytest.mark.parametrize("delay", [-11.0, -7.0, 4.0, 10.0])
def test_gcc_phat_measures_the_source_not_a_faint_coherent_artefact(delay):
    # A source below 1.5 kHz plus a -45 dB artefact at 2-8 kHz that is identical in both ears (as a
    # codec's out-of-band residue can be): the regularised PHAT measures the source's delay; a plain
    # PHAT weights the artefact's many bins as much as the source's and is pulled towards 0.
    src = _band(_noise(seed=3), 0.0, 1500.0)
    src /= np.abs(src).max()
    art = _band(_noise(seed=4), 2000.0, 8000.0)
    art *= 10 ** (-45 / 20) / np.abs(art).max()
    left, right = src + art, _delayed(src, delay) + art
    assert abs(dsp.gcc_phat_itd(left, right, SR, max_delay_s=0.001) * SR - delay) < 0.25
    assert abs(dsp.gcc_phat_itd(left, right, SR, max_delay_s=0.001, floor_db=180.0) * SR - delay) > 2.0
