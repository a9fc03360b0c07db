"""The fixed stereo latent: exact when uncompressed, keeps the inter-aural delay, unit-scaled."""
import numpy as np
import pytest
import torch

from policies.latent import StereoBandLatent
from test_policy_fixtures import SR, delayed_stereo, one_thread  # noqa: F401

try:
    from rewards.dsp import gcc_phat_itd
except ImportError:  # pragma: no cover - the teachers' DSP module is written in parallel
    def gcc_phat_itd(left, right, sample_rate, max_delay_s=0.001, interp=16):
        n = 2 * len(left)
        cross = np.conj(np.fft.rfft(left, n)) * np.fft.rfft(right, n)
        cc = np.fft.irfft(cross / np.maximum(np.abs(cross), 1e-12), n * interp)
        k = int(round(interp * sample_rate * max_delay_s))
        curve = np.concatenate([cc[-k:], cc[: k + 1]])
        return (int(np.argmax(curve)) - k) / (interp * sample_rate)


def test_full_size_latent_is_lossless():
    codec = StereoBandLatent(SR, 160, 320)
    x = torch.randn(2, 2, 16000) * 0.1
    assert codec.encode(x).shape == (2, 100, 320)
    assert torch.allclose(codec.decode(codec.encode(x)), x, atol=1e-5)


@pytest.mark.parametrize("f0", [220.0, 440.0])
def test_fitted_latent_keeps_the_inter_aural_delay(f0):
    """The codec as pretraining leaves it (fitted to the audio): 128 of 640 numbers per frame."""
    fit = True
    codec = StereoBandLatent(SR, 320, 128)
    delays = [-11, -6, -2, 0, 3, 7, 11]
    x = torch.tensor(np.stack([delayed_stereo(16000, d, seed=i, f0=f0) for i, d in enumerate(delays)]))
    if fit:
        train = torch.tensor(np.stack([delayed_stereo(16000, d, seed=100 + d, f0=f0) for d in range(-11, 12, 2)]))
        assert codec.fit_stats(train) > 0.95
    y = codec.decode(codec.encode(x)).numpy()
    assert np.mean((y - x.numpy()) ** 2) / np.mean(x.numpy() ** 2) < 0.05
    for d, a, b in zip(delays, x.numpy(), y):
        itd_in = gcc_phat_itd(a[0], a[1], SR)
        itd_out = gcc_phat_itd(b[0], b[1], SR)
        assert abs(itd_in - d / SR) < 0.05e-3, (d, itd_in)
        assert abs(itd_out - itd_in) < 0.05e-3, (d, itd_in, itd_out)


def test_fitted_latent_has_unit_scale_and_is_saved_in_the_state_dict():
    codec = StereoBandLatent(SR, 320, 64)
    x = torch.tensor(np.stack([delayed_stereo(16000, d, seed=d + 20) for d in range(-8, 9, 4)]))
    codec.fit_stats(x)
    z = codec.encode(x)
    assert 0.7 < float(z.std()) < 1.3 and abs(float(z.mean())) < 0.1
    assert {"basis", "mean", "std"} <= set(codec.state_dict())
    with pytest.raises(ValueError, match="multiple of policy.patch"):
        codec.encode(torch.zeros(1, 2, 1000))
    with pytest.raises(ValueError, match="latent_channels"):
        StereoBandLatent(SR, 16, 64)
