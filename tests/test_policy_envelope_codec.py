"""The band-envelope latent (`policy.codec=parametric_envelope`): band energies are channels of their
own, and decoding gives each band the energy its channel names whatever the source channels hold."""
from __future__ import annotations

import numpy as np
import torch

from policies.codecs import build_codec
from policies.envelope_latent import (BANDS, ENERGY_FLOOR_DB, MAX_BAND_GAIN_DB, band_edges, band_energy_db,
                                      band_index, set_band_energy)
from policies.gated_latent import GATE_OPEN
from test_policy_fixtures import SR, delayed_stereo, one_thread  # noqa: F401

PATCH, CHANNELS, FRAMES = 320, 64, 50


def _burst(first: int, last: int, seed: int = 0, f0: float = 220.0) -> torch.Tensor:
    x = np.zeros((2, FRAMES * PATCH), np.float32)
    n = (last - first + 1) * PATCH
    x[:, first * PATCH : first * PATCH + n] = delayed_stereo(n, 3, seed=seed, f0=f0)
    return torch.from_numpy(x)


def _fitted():
    codec = build_codec("parametric_envelope", SR, PATCH, CHANNELS)
    codec.fit_stats(torch.stack([_burst(5 + i, 30 + i, seed=i, f0=(220.0, 440.0)[i % 2]) for i in range(6)]))
    return codec


def test_bands_are_mel_spaced_and_cover_every_bin_once():
    edges = band_edges(PATCH, SR)
    assert len(edges) == BANDS and edges[0][0] == 0 and edges[-1][1] == PATCH
    assert all(a[1] == b[0] for a, b in zip(edges, edges[1:]))  # contiguous, no overlap
    widths = [stop - start for start, stop in edges]
    assert min(widths) >= 1 and widths[-1] > 5 * widths[0]  # wider towards Nyquist
    assert all(w >= 1 for w in (s - a for a, s in band_edges(8, SR, 8)))  # more bands than mel room: one bin each


def test_set_band_energy_gives_each_band_the_asked_energy_up_to_the_gain_cap():
    index = band_index(band_edges(PATCH, SR), PATCH)
    g = torch.Generator().manual_seed(0)
    coef = torch.randn(2, 5, PATCH, generator=g, dtype=torch.float64) * 0.05
    target = -35.0 + 20.0 * torch.rand(2, 5, BANDS, generator=g, dtype=torch.float64)
    assert torch.allclose(band_energy_db(set_band_energy(coef, target, index), index, BANDS), target, atol=1e-3)
    quiet = coef.clone()
    quiet[..., index == 3] = 0.0  # an empty band stays empty
    quiet[..., index == 5] *= 10 ** ((target[..., 5:6] - 40.0 - band_energy_db(coef, index, BANDS)[..., 5:6]) / 20)
    out = band_energy_db(set_band_energy(quiet, target, index), index, BANDS)
    assert torch.allclose(out[..., 3], torch.full_like(out[..., 3], ENERGY_FLOOR_DB))
    assert torch.allclose(out[..., 5], target[..., 5] - 40.0 + MAX_BAND_GAIN_DB, atol=1e-3)  # 40 dB short: the cap's 30


def test_channels_are_source_then_itd_ild_bands_gate():
    codec = _fitted()
    assert codec.param_names[:2] == ("ITD", "ILD") and codec.param_names[-1] == "gate"
    assert codec.param_channels == slice(CHANNELS - BANDS - 3, CHANNELS)
    assert codec.mean[-1] == 0 and codec.std[-1] == 1
    latent = codec.encode(_burst(10, 30, seed=9)[None])
    assert torch.all(latent[0, 12:29, -1] == GATE_OPEN)
    bands = latent[0, :, codec.source + 2 : codec.source + 2 + BANDS]
    assert bool((bands[20, :8] > bands[40, :8] + 1.0).all())  # the bands under 1 kHz (the burst's) are louder in it than after it


def test_decoded_band_energies_follow_the_band_channels_whatever_the_source_channels_hold():
    """The property the codec exists for: the timbre (band energies) is in the band channels; in
    parametric_gated it is in the source channels, and noise there loses it."""
    codec = _fitted()
    plain = build_codec("parametric_gated", SR, PATCH, CHANNELS)
    plain.fit_stats(torch.stack([_burst(5 + i, 30 + i, seed=i, f0=(220.0, 440.0)[i % 2]) for i in range(6)]))
    audio = _burst(10, 30, seed=9)[None]
    index = band_index(band_edges(PATCH, SR), PATCH)
    inside = slice(14, 27)

    def bands(wave):  # dB [frames, BANDS] of the source of a stereo waveform
        return band_energy_db(codec._analyse(wave)[0], index, BANDS)[0, inside]

    truth = bands(audio)
    loud = truth > truth.amax(-1, keepdim=True) - 30.0
    noise = torch.randn(1, FRAMES, CHANNELS, generator=torch.Generator().manual_seed(1))
    errors = {}
    for name, c in (("envelope", codec), ("gated", plain)):
        latent = c.encode(audio)
        errors[name, "round trip"] = float((bands(c.decode(latent)) - truth)[loud].abs().median())
        latent[..., : c.source] = noise[..., : c.source]
        errors[name, "noise"] = float((bands(c.decode(latent)) - truth)[loud].abs().median())
    assert errors["envelope", "round trip"] < 1.5 and errors["envelope", "noise"] < 1.5, errors  # dB
    assert errors["gated", "noise"] > 3.0, errors
