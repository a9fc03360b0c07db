"""The band-envelope latent (`policy.codec=parametric_envelope`): `parametric_gated` plus the log
energy of each of `BANDS` mel-spaced bands of the source, one channel per band per frame. Decoding
scales each band of the decoded source coefficients to the energy its channel names, as CELT (Opus)
codes band energies apart from the fine structure within the bands.

Why: a source coefficient is a signed MDCT coefficient, whose mean is zero whatever the sound is:
a bell and a drum differ in how large the coefficients of each band are, not in their sign. A
flow-matching model regresses E[x0 | x_t, conditions]; at high noise that is about zero for every
class, and the class can only enter as a class-dependent shrinkage of x_t, a second-order effect
that a small model learns slowly. On the demo set the pretrained parametric_gated policy's sounds
did not depend on the classes its plan names (docs/learning/, issue 18: plan following +0.003 +- 0.057;
65% of its segments graded as buzz, a noisy drone). Band energies make the timbre a first-order
target, as the gate made silence one and ITD / ILD made the stereo image one.

Encoding: `parametric_gated`'s channels with the band energies (dB, floored at `ENERGY_FLOOR_DB`)
between ILD and the gate: [source coefficients, ITD, ILD, band00 .. band{BANDS-1}, gate]; the
source coefficients are unchanged (principal components of the raw MDCT frames).
Decoding: the source coefficients' MDCT frames, each band multiplied by the gain that gives it its
channel's energy (at most `MAX_BAND_GAIN_DB`, so a band the projection left empty stays empty
rather than amplifying rounding noise), then `parametric_gated`'s gate and stereo placement.
"""
from __future__ import annotations

import torch

from policies.gated_latent import GATE_CLOSED, GATE_OPEN, GatedParametricLatent

BANDS = 24
"""Mel-spaced bands of the source spectrum (0 Hz to Nyquist), one latent channel each."""
ENERGY_FLOOR_DB = -100.0
"""Floor of a band's mean coefficient power, in dB (full scale 0 dB): digital silence encodes here."""
MAX_BAND_GAIN_DB = 30.0
"""Largest gain decoding applies to a band to give it its channel's energy."""


def _mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def band_edges(patch: int, sample_rate: int, bands: int = BANDS) -> list[tuple[int, int]]:
    """[start, stop) MDCT bin ranges of `bands` mel-spaced bands over the `patch` bins (bin k centred
    at (k + 0.5) * Nyquist / patch); a band that would hold no bin takes the next one, so every
    band holds at least one bin and together they cover every bin once."""
    if not 1 <= bands <= patch:
        raise ValueError(f"band_edges: {bands} bands for {patch} MDCT bins")
    centres = (torch.arange(patch, dtype=torch.float64) + 0.5) * (sample_rate / 2.0) / patch
    mel = _mel(centres)
    top = float(_mel(torch.tensor(sample_rate / 2.0, dtype=torch.float64)))
    bounds = [int(torch.searchsorted(mel, top * i / bands)) for i in range(1, bands)]
    edges, start = [], 0
    for i, b in enumerate(bounds):
        stop = min(max(b, start + 1), patch - (bands - 1 - i))  # leave a bin for each band still to come
        edges.append((start, stop))
        start = stop
    edges.append((start, patch))
    return edges


def band_index(edges: list[tuple[int, int]], patch: int) -> torch.Tensor:
    """Band of each MDCT bin, int64 [patch]."""
    index = torch.empty(patch, dtype=torch.long)
    for band, (start, stop) in enumerate(edges):
        index[start:stop] = band
    return index


def band_energy_db(coef: torch.Tensor, index: torch.Tensor, bands: int) -> torch.Tensor:
    """Mean power of each band's coefficients in dB, floored at ENERGY_FLOOR_DB: [B, F, bands] of
    MDCT frames [B, F, patch]."""
    power = torch.zeros(*coef.shape[:-1], bands, dtype=coef.dtype, device=coef.device)
    power.index_add_(-1, index.to(coef.device), coef.pow(2))
    count = torch.bincount(index, minlength=bands).to(coef)
    return 10.0 * torch.log10(power / count + 10.0 ** (ENERGY_FLOOR_DB / 10.0))


def set_band_energy(coef: torch.Tensor, energy_db: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """MDCT frames [B, F, patch] with each band scaled to the energy `energy_db` [B, F, bands] asks
    for (the gain capped at MAX_BAND_GAIN_DB)."""
    bands = energy_db.shape[-1]
    have = band_energy_db(coef, index, bands)
    gain_db = (energy_db - have).clamp(max=MAX_BAND_GAIN_DB)
    gain = 10.0 ** (gain_db / 20.0)
    return coef * gain[..., index.to(coef.device)]


class EnvelopeGatedLatent(GatedParametricLatent):
    """`GatedParametricLatent` with band energies before the gate:
    [source coefficients, ITD, ILD, band00 .. band{BANDS-1}, gate]."""

    name = "parametric_envelope"
    param_names = ("ITD", "ILD", *(f"band{i:02d}" for i in range(BANDS)), "gate")
    param_spreads = (1.0, 1.0, *(1.0,) * BANDS, (GATE_OPEN - GATE_CLOSED) / 2)
    band_params = param_names[2:-1]
    """The band-energy channels (their pretraining loss weight is `pretrain.band_loss_weight`)."""

    def __init__(self, sample_rate: int, patch: int, latent_channels: int):
        super().__init__(sample_rate, patch, latent_channels)
        self.register_buffer("band_of_bin", band_index(band_edges(patch, sample_rate), patch), persistent=False)

    def _extra_params(self, coef: torch.Tensor) -> list[torch.Tensor]:
        energy = band_energy_db(coef, self.band_of_bin, BANDS)
        return [*energy.unbind(-1), *super()._extra_params(coef)]

    def _shape_coefficients(self, coef: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        first = self.source + 2
        return set_band_energy(coef, raw[..., first : first + BANDS], self.band_of_bin)
