"""The audio latent codecs of the built-in policy, by `policy.codec` name."""
from __future__ import annotations

from torch import nn

from policies.envelope_latent import EnvelopeGatedLatent
from policies.gated_latent import GatedParametricLatent
from policies.latent import StereoBandLatent
from policies.parametric_latent import ParametricStereoLatent

CODECS = {
    "parametric_envelope": EnvelopeGatedLatent,
    "parametric_gated": GatedParametricLatent,
    "parametric_stereo": ParametricStereoLatent,
    "stereo_band": StereoBandLatent,
}
"""Codec classes; each takes (sample_rate, patch, latent_channels) and has encode, decode, fit_stats."""


def build_codec(name: str, sample_rate: int, patch: int, latent_channels: int) -> nn.Module:
    """The codec `name` (`policy.codec`); an unknown name raises, listing the known ones."""
    if name not in CODECS:
        raise ValueError(f"policy.codec: unknown '{name}'; available: {', '.join(sorted(CODECS))}")
    return CODECS[name](sample_rate, patch, latent_channels)
