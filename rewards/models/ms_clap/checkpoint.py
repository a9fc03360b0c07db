"""Strict loading of `CLAP_weights_2023.pth` (`{'model': flat state_dict}`, every tensor float32).

Beyond the model's own tensors, the release holds 2 x 12 buffers that older transformers versions
(msclap's original pin, 4.26) saved for every GPT-2 block: `attn.bias` (the lower-triangular causal mask, `[1, 1, P, P]`) and
`attn.masked_bias` (-1e4). They are accepted only all together and only holding exactly those
values, then dropped (current GPT-2 builds its mask itself). Integer buffers
(`relative_position_index`, `num_batches_tracked`) stored as float are cast back after checking
they hold whole numbers; the Swin buffers derived from the architecture (`relative_position_index`,
the shifted-window `attn_mask`) must equal the ones it defines. Anything else missing, unexpected
or mis-shaped raises `CheckpointError` naming it.
"""
from __future__ import annotations

from typing import Mapping

import torch

from rewards.models.state_dict_io import CheckpointError, check_state_dict, read_checkpoint, unwrap_state_dict

LEGACY_MASKED_BIAS = -1e4
"""Value of the legacy `attn.masked_bias` buffers."""


def legacy_gpt2_buffers(n_layers: int, prefix: str = "caption_encoder.base.") -> list[str]:
    """Names of the old-transformers GPT-2 attention buffers: `h.<i>.attn.bias` and `.masked_bias` per block."""
    return [f"{prefix}h.{i}.attn.{b}" for i in range(n_layers) for b in ("bias", "masked_bias")]


def check_legacy_buffers(state: dict[str, torch.Tensor], n_layers: int, n_positions: int,
                         path: str) -> dict[str, torch.Tensor]:
    """`state` without the legacy GPT-2 buffers, after checking they are all there (or all absent) with their values."""
    names = legacy_gpt2_buffers(n_layers)
    present = [n for n in names if n in state]
    if not present:
        return state
    if len(present) != len(names):
        raise CheckpointError(f"{path}: has {len(present)} of the {len(names)} legacy GPT-2 attention buffers; "
                              f"missing: {', '.join(n for n in names if n not in state)}")
    mask = torch.tril(torch.ones(n_positions, n_positions)).view(1, 1, n_positions, n_positions)
    for name in names:
        value = state[name]
        want = mask if name.endswith(".bias") else torch.tensor(LEGACY_MASKED_BIAS)
        what = "the lower-triangular causal mask" if name.endswith(".bias") else f"{LEGACY_MASKED_BIAS:g}"
        if tuple(value.shape) != tuple(want.shape):
            raise CheckpointError(f"{path}: legacy buffer {name} has shape {tuple(value.shape)}, expected "
                                  f"{tuple(want.shape)} ({what})")
        if not torch.equal(value.to(torch.float32), want):
            raise CheckpointError(f"{path}: legacy buffer {name} does not hold {what}")
    return {k: v for k, v in state.items() if k not in set(names)}


def cast_integer_buffers(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str) -> dict[str, torch.Tensor]:
    """`state` with each tensor the model holds as an integer cast back from float (whole numbers only)."""
    out = dict(state)
    for name, own in model.state_dict().items():
        value = out.get(name)
        if value is None or own.dtype.is_floating_point or not value.dtype.is_floating_point:
            continue
        if not torch.equal(value, torch.round(value)):
            raise CheckpointError(f"{path}: {name} must hold whole numbers (an integer buffer stored as float)")
        out[name] = value.to(own.dtype)
    return out


DERIVED_BUFFERS: tuple[str, ...] = ("relative_position_index", "attn_mask")
"""Swin buffers computed from the architecture alone; a file must hold the same values."""


def check_derived_buffers(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str) -> None:
    """Raise unless every Swin buffer of DERIVED_BUFFERS in `state` equals the one the model's architecture defines."""
    for name, own in model.state_dict().items():
        if name.rsplit(".", 1)[-1] in DERIVED_BUFFERS and name in state and not torch.equal(state[name], own):
            raise CheckpointError(f"{path}: {name} differs from the value this architecture defines")


def load_ms_clap_state(model: torch.nn.Module, path: str) -> None:
    """Load `path` into `model` strictly (see the module docstring); the model's arch gives the legacy buffer sizes."""
    state = unwrap_state_dict(read_checkpoint(path), path, key="model")
    arch = model.arch
    state = check_legacy_buffers(state, arch.text_layers, arch.text_positions, path)
    check_state_dict(model, state, path)
    state = cast_integer_buffers(model, state, path)
    check_derived_buffers(model, state, path)
    model.load_state_dict(state, strict=True)
