"""Reading and writing PrismAudio's whole-model weights in the released layout.

`prismaudio.ckpt` is one flat float32 state_dict of the wrapper (no prefix, every buffer included):
`model.model.*` (DiT), `conditioner.conditioners.*`, `pretransform.model.*` (VAE). It is read with
torch.load(weights_only=True) (or safetensors for `.safetensors`) and loaded strictly: a file that
does not match stops with every missing, unexpected and mis-shaped name. `export_weights` writes
the same layout, in the model's state_dict order, as `.ckpt` (torch.save) or `.safetensors`.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Mapping

import torch
from torch import nn

from common.state_dict_diff import listing, state_dict_diff
from policies.prismaudio.vae_checkpoint import read_state_file, unwrap_state


class WeightsError(ValueError):
    """A weights file that cannot be used; the message names the file and the tensors at fault."""


def layout_problems(expected: Mapping[str, tuple[int, ...]], state: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and mis-shaped names of `state` against name -> shape `expected`."""
    return state_dict_diff(expected, state).parts(limit=10)


def read_weights(path: str) -> dict[str, torch.Tensor]:
    """The flat state_dict in a `.ckpt`/`.pt` (weights_only) or `.safetensors` file (a Lightning-style
    {'state_dict': ...} wrapper is unwrapped); non-tensor entries raise, naming them."""
    try:
        obj = read_state_file(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the path (read_state_file names it too)
        raise WeightsError(str(exc)) from None
    state = dict(unwrap_state(obj))
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path}: entries that are not tensors: {listing(bad)}")
    return state


def check_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise WeightsError when `state` does not have exactly the model's names and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = layout_problems(expected, state)
    if problems:
        raise WeightsError(f"{source}: does not fit the PrismAudio model ({len(expected)} tensors): " + "; ".join(problems))


def load_weights(model: nn.Module, path: str) -> None:
    """Load a whole-model file into `model` strictly (its tensors are copied, in float32 or the
    model's dtype); a mismatch raises WeightsError naming every tensor at fault."""
    state = read_weights(path)
    check_state(model, state, path)
    model.load_state_dict(state, strict=True)


def ordered_export(model_keys: list[str], state: Mapping[str, torch.Tensor], source: str) -> "OrderedDict[str, torch.Tensor]":
    """`state` as contiguous float CPU tensors in the order of `model_keys` (the layout); a state
    that misses or adds names raises, naming them."""
    missing = [k for k in model_keys if k not in state]
    unexpected = [k for k in state if k not in set(model_keys)]
    if missing or unexpected:
        raise WeightsError(f"{source}: cannot export: missing {listing(missing)}; unexpected {listing(unexpected)}")
    out = OrderedDict()
    for k in model_keys:
        t = state[k].detach().cpu()
        out[k] = (t.float() if t.is_floating_point() else t).contiguous().clone()
    return out


def export_weights(state: "OrderedDict[str, torch.Tensor]", path: str) -> str:
    """Write an ordered flat state_dict to `path`: safetensors for `.safetensors`, else torch.save
    (the reference's `.ckpt`). The file is written next to its destination and renamed into place."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    tmp = path + ".tmp"
    if path.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(dict(state), tmp, metadata={"format": "pt", "layout": "prismaudio.ckpt"})
    else:
        torch.save(state, tmp)
    os.replace(tmp, path)
    return path
