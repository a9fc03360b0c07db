"""The parametric-stereo latent: per-frame ITD/ILD measured right, written where the model can set
them, rendered back as the delay the spatial teacher hears; old checkpoints keep their codec."""
import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from orchestrator.data.synth.audio import fractional_delay
from policies.checkpoint import load_policy, save_policy
from policies.codecs import build_codec
from policies.parametric_latent import ParametricStereoLatent
from policies.build import build_policy
from policies.stereo_params import frame_stereo_params, shift_by_frames
from rewards.dsp import gcc_phat_itd
from test_policy_fixtures import SR, delayed_stereo, one_thread, tiny_cfg  # noqa: F401


def _placed(n: int, delay: float, ild_db: float, seed: int) -> np.ndarray:
    """A noisy harmonic source whose right ear lags by `delay` samples and is `ild_db` dB quieter."""
    mono = delayed_stereo(n, 0, seed=seed)[0].astype(np.float64)
    left = fractional_delay(mono, -delay / 2) * 10 ** (ild_db / 40)
    right = fractional_delay(mono, delay / 2) * 10 ** (-ild_db / 40)
    return np.stack([left, right]).astype(np.float32)


def test_frame_parameters_recover_a_sources_delay_and_level_and_silence_has_none():
    x = torch.from_numpy(np.stack([_placed(16000, 6.4, 4.0, 1), _placed(16000, -9.0, -2.5, 2)]))
    x[:, :, :3200] = 0.0  # the first 10 frames are silent
    itd, ild = frame_stereo_params(x, 320, max_delay_samples=16.0)
    assert itd.shape == ild.shape == (2, 50)
    assert torch.all(itd[:, :8] == 0) and torch.all(ild[:, :8] == 0)
    loud = slice(20, 40)
    assert torch.allclose(itd[0, loud], torch.tensor(6.4), atol=0.15)
    assert torch.allclose(itd[1, loud], torch.tensor(-9.0), atol=0.15)
    assert torch.allclose(ild[0, loud], torch.tensor(4.0), atol=0.3)
    assert torch.allclose(ild[1, loud], torch.tensor(-2.5), atol=0.3)


def test_shift_by_frames_is_a_fractional_delay_and_zero_is_identity():
    x = torch.from_numpy(delayed_stereo(16000, 0, seed=3)[:1])
    same = shift_by_frames(x, torch.zeros(1, 50), 320)
    assert torch.equal(same, x)
    moved = shift_by_frames(x, torch.full((1, 50), 2.7), 320)
    want = torch.from_numpy(fractional_delay(x[0].double().numpy(), -2.7)).float()  # y(n) = x(n + 2.7)
    err = (moved[0] - want)[640:-640].pow(2).mean() / want.pow(2).mean()
    assert float(err) < 1e-6
    with pytest.raises(ValueError, match="frames"):
        shift_by_frames(x, torch.zeros(1, 7), 320)


def test_fitted_latent_keeps_the_delay_and_the_model_sets_it_in_one_channel():
    codec = ParametricStereoLatent(SR, 320, 66)
    train = torch.from_numpy(np.stack([_placed(16000, d, d / 3, 10 + i) for i, d in enumerate(range(-10, 11, 2))]))
    assert codec.fit_stats(train) > 0.9
    z = codec.encode(train)
    assert z.shape == (11, 50, 66)
    assert 0.6 < float(z.std()) < 1.4
    delays = [-8.5, -3.0, 0.0, 4.0, 9.5]
    test = torch.from_numpy(np.stack([_placed(16000, d, 0.0, 50 + i) for i, d in enumerate(delays)]))
    back = codec.decode(codec.encode(test)).numpy()
    assert np.mean((back - test.numpy()) ** 2) / np.mean(test.numpy() ** 2) < 0.05
    for d, y in zip(delays, back):
        assert abs(gcc_phat_itd(y[0], y[1], SR) * SR - d) < 0.3, d
    # Writing +0.5 ms into the ITD channel of a centred sound moves it left by 0.5 ms.
    centred = codec.encode(test[2:3])
    raw_itd = 0.5
    centred[..., 64] = (raw_itd - codec.mean[64]) / codec.std[64]
    y = codec.decode(centred)[0].numpy()
    assert abs(gcc_phat_itd(y[0], y[1], SR) * 1000 - raw_itd) < 0.03
    # A guided sampler can overshoot: an ILD of 40 dB renders as the largest one the codec allows,
    # at constant power (the near ear at most sqrt(2) times the source), so it cannot clip the mix.
    loud = codec.encode(test[2:3])
    loud[..., 65] = (40.0 - codec.mean[65]) / codec.std[65]
    y = codec.decode(loud)[0]
    mid = codec.decode(codec.encode(test[2:3]))[0]
    level = 10 * torch.log10(y[0].pow(2).sum() / y[1].pow(2).sum())
    assert float(level) == pytest.approx(12.0, abs=0.5)
    assert float(y.pow(2).sum()) == pytest.approx(float(mid.pow(2).sum()), rel=0.05)
    assert {"basis", "mean", "std"} <= set(codec.state_dict())


def test_codec_choice_is_checked_and_old_checkpoints_keep_theirs(tmp_path):
    with pytest.raises(ValueError, match="policy.codec: unknown 'vae'"):
        build_codec("vae", SR, 320, 34)
    with pytest.raises(ValueError, match="latent_channels"):
        ParametricStereoLatent(SR, 16, 64)
    with pytest.raises(ValueError, match="latent_channels"):
        ParametricStereoLatent(SR, 320, 2)
    cfg = dataclasses.replace(tiny_cfg(), codec="stereo_band")
    out = str(tmp_path / "old")
    save_policy(build_policy(cfg), cfg, out)
    path = os.path.join(out, "policy.json")
    saved = json.load(open(path))
    del saved["codec"]  # as written before policy.codec existed
    json.dump(saved, open(path, "w"))
    assert load_policy(out).cfg.codec == "stereo_band"
    with pytest.raises(ValueError, match="codec"):
        build_policy(dataclasses.replace(cfg, codec="parametric_stereo", checkpoint=out))
