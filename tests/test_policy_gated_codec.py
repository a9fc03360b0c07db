"""The gated parametric-stereo latent (`policy.codec=parametric_gated`): silence is one channel."""
from __future__ import annotations

import numpy as np
import torch

from policies.codecs import build_codec
from policies.gated_latent import ATTACK_FRAMES, GATE_CLOSED, GATE_OPEN, frame_gate, gate_gain
from test_policy_fixtures import SR, delayed_stereo, one_thread  # noqa: F401

PATCH, CHANNELS, FRAMES = 320, 34, 50


def _burst(first: int, last: int, delay: int = 3, seed: int = 0) -> torch.Tensor:
    """Stereo [2, FRAMES * PATCH]: a delayed harmonic sound in latent frames first..last, silence elsewhere."""
    x = np.zeros((2, FRAMES * PATCH), np.float32)
    n = (last - first + 1) * PATCH
    x[:, first * PATCH : first * PATCH + n] = delayed_stereo(n, delay, seed=seed)
    return torch.from_numpy(x)


def _fitted(name: str = "parametric_gated", channels: int = CHANNELS):
    codec = build_codec(name, SR, PATCH, channels)
    codec.fit_stats(torch.stack([_burst(5 + i, 30 + i, seed=i) for i in range(6)]))
    return codec


def _error(codec, audio: torch.Tensor) -> float:
    return float((codec.decode(codec.encode(audio)) - audio).pow(2).sum() / audio.pow(2).sum()) ** 0.5


def test_gate_is_open_around_sound_and_closed_in_silence():
    coef = torch.zeros(2, 12, PATCH)
    coef[0, 4:7] = 1.0
    coef[0, 9] = 1e-3  # 60 dB under the loudest frame
    gate = frame_gate(coef)
    open_ = torch.tensor([True] * 8 + [False] * 4)  # frames 4..6, from ATTACK_FRAMES before to one after
    assert ATTACK_FRAMES == 4
    assert torch.equal(gate[0] == GATE_OPEN, open_)
    assert torch.all(gate[0][~open_] == GATE_CLOSED)
    assert torch.all(gate[1] == GATE_CLOSED)  # an all-silent clip


def test_round_trip_keeps_the_sound_and_a_closed_gate_is_40_db_down():
    codec = _fitted()
    assert codec.param_channels == slice(CHANNELS - 3, CHANNELS)
    assert codec.mean[-1] == 0 and codec.std[-1] == 1  # the gate channel is used as is
    audio = _burst(10, 30, seed=9)[None]
    latent = codec.encode(audio)
    out = codec.decode(latent)
    plain = _fitted("parametric_stereo", CHANNELS - 1)  # the same source channels, no gate
    assert abs(_error(codec, audio) - _error(plain, audio)) < 0.01  # an open gate is transparent
    assert torch.all(latent[0, 12:29, -1] == GATE_OPEN) and torch.all(latent[0, 33:, -1] == GATE_CLOSED)
    closed = latent.clone()
    closed[0, 15:25, -1] = GATE_CLOSED
    silenced = codec.decode(closed)
    inside = slice(int(15.5 * PATCH), int(23.5 * PATCH))  # between the centres of frames 15 and 24
    ratio = silenced[..., inside].abs().max() / out[..., inside].abs().max()
    assert 0.005 < ratio < 0.02  # CLOSED_GAIN_DB = -40 dB: a quiet bed, not digital silence
    assert torch.allclose(silenced[..., : 13 * PATCH], out[..., : 13 * PATCH], atol=1e-6)


def test_gain_rises_slowly_and_falls_at_once():
    gate = torch.tensor([GATE_OPEN, GATE_CLOSED, GATE_CLOSED] + [GATE_OPEN] * 6 + [GATE_CLOSED])
    assert gate_gain(gate).tolist() == [1.0, 0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.0]


def test_noise_latent_leaves_the_gate_open_almost_everywhere():
    """A random-init model writes standard normal latents: the gate must not make that noise dynamic."""
    gain = gate_gain(torch.randn(100, 2000, generator=torch.Generator().manual_seed(0)))
    assert float((gain >= 0.5).float().mean()) > 0.95
    assert float((gain == 0).float().mean()) < 0.005
