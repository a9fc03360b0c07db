"""Which latent channels the SDE window explores (`sampler.noise_channels`), or DiffusionNFT's objective
trains (`nft.channels`), as a boolean channel mask.

The latent is [frames, channels], channels last: the codec's source channels first (PCA components
ordered by energy), then its per-frame parameter channels in `codec.param_names` order (ITD, ILD and,
for parametric_gated, gate). A mask [C] says which channels get SDE noise; the others take the
deterministic Euler step (policies/sampling.py).
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import torch

PARAMS = "params"
"""Spec token for every codec parameter channel."""


def noise_channel_mask(spec: str, latent_channels: int, param_names: Sequence[str],
                       key: str = "sampler.noise_channels") -> Optional[torch.Tensor]:
    """Bool [latent_channels] of the channels `spec` names; None for `all` (every channel, no mask).

    spec: `all`, or a comma list of parameter channel names (`ITD`, `ILD`, `gate`), `params` (all
    of them) and `pca:K` (the first K source channels); a token with a leading `-` removes those
    channels from what the tokens before it named (`params,-ITD,-ILD`). A token that names nothing of
    this latent raises, quoting it and what is available (and `key`, the config field that holds the
    spec).
    """
    spec = (spec or "").strip()
    if spec == "all":
        return None
    names = list(param_names)
    sources = latent_channels - len(names)
    mask = torch.zeros(latent_channels, dtype=torch.bool)
    tokens = [t.strip() for t in spec.split(",") if t.strip()]
    if not tokens:
        raise ValueError(f"{key} is empty; use `all` or e.g. `params,pca:13`")
    for token in tokens:
        keep = not token.startswith("-")
        name = token if keep else token[1:].strip()
        m = re.fullmatch(r"pca:(\d+)", name)
        if m:
            k = int(m.group(1))
            if not 0 <= k <= sources:
                raise ValueError(f"{key}: {token!r} asks for {k} source channels; the latent has {sources}")
            mask[:k] = keep
        elif name == PARAMS:
            if not names:
                raise ValueError(f"{key}: `params`, but this policy's codec has no parameter channels")
            mask[sources:] = keep
        elif name in names:
            mask[sources + names.index(name)] = keep
        else:
            raise ValueError(f"{key}: unknown token {token!r}; available: all, params, pca:K, "
                             f"{', '.join(names) or '(no parameter channels)'}, each also as -NAME to remove it")
    return mask


def policy_noise_mask(policy, spec: str, key: str = "sampler.noise_channels") -> Optional[torch.Tensor]:
    """noise_channel_mask for a policy's latent (its last latent dimension; codec.param_names if any)."""
    if (spec or "").strip() == "all":
        return None
    channels = int(policy.latent_shape()[-1])
    names = getattr(getattr(policy, "codec", None), "param_names", ())
    return noise_channel_mask(spec, channels, names, key)
