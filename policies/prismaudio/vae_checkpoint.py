"""Loading PrismAudio's Oobleck VAE strictly from the files users have, and exporting it by prefix.

Files read (torch.load with weights_only=True, or safetensors):
- `vae.ckpt`: a Lightning checkpoint, the VAE at `state_dict['autoencoder.' + name]` (other modules
  of the training wrapper, e.g. a discriminator, may sit beside it under other prefixes; ignored);
- `prismaudio.ckpt` (or its `.safetensors`): the whole model, the VAE at `pretransform.model.<name>`;
- a flat state_dict of the VAE alone, without prefix.
Every tensor the VAE has must be present with its shape and nothing else may sit under the prefix;
otherwise `VAECheckpointError` lists the missing, unexpected and mis-shaped names.
"""
from __future__ import annotations

import os
import zipfile
from collections import OrderedDict
from typing import Any, Mapping, Optional

import torch

from common.state_dict_diff import listing, state_dict_diff
from policies.prismaudio.vae import OobleckConfig, OobleckVAE

LIGHTNING_PREFIX = "autoencoder."
"""Prefix of the VAE's tensors in `vae.ckpt['state_dict']`."""
MODEL_PREFIX = "pretransform.model."
"""Prefix of the VAE's tensors in the whole-model `prismaudio.ckpt` (and PrismRL's export of it)."""
KNOWN_PREFIXES = (LIGHTNING_PREFIX, MODEL_PREFIX)
"""Prefixes tried, in order, when none is given; a file with neither is read as the bare VAE."""


class VAECheckpointError(RuntimeError):
    """A VAE checkpoint is missing, unreadable, or does not fit the model; the message names the path and tensors."""


def _torch_load(path: str) -> Any:
    """torch.load(weights_only=True), memory-mapped when the file is a zip archive (torch.save's format)."""
    if zipfile.is_zipfile(path):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return torch.load(path, map_location="cpu", weights_only=True)


def read_state_file(path: str) -> dict[str, Any]:
    """The dict stored at `path`: safetensors for `.safetensors`, else torch.load(weights_only=True) on the CPU.

    A Lightning checkpoint is returned whole (its tensors under 'state_dict'); see `unwrap_state`.
    Tensors of a torch.save zip file are memory-mapped (private, copy-on-write) rather than read
    into memory: callers copy what they keep, as `vae_from_state` does.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VAECheckpointError(f"{path}: checkpoint file not found")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            obj = load_file(path, device="cpu")
        else:
            obj = _torch_load(path)
    except Exception as exc:  # corrupt file, or a pickle holding objects other than tensors and plain data
        raise VAECheckpointError(
            f"{path}: cannot read checkpoint with weights_only=True ({type(exc).__name__}: {exc}); "
            "a trusted file that pickles other objects can be re-saved as .safetensors of its tensors"
        ) from exc
    if not isinstance(obj, Mapping):
        raise VAECheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return dict(obj)


def unwrap_state(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """The flat name -> tensor mapping: `obj['state_dict']` for a Lightning checkpoint, else `obj` itself."""
    inner = obj.get("state_dict")
    return inner if isinstance(inner, Mapping) else obj


def detect_prefix(state: Mapping[str, Any]) -> str:
    """The first of `KNOWN_PREFIXES` that some key of a flat state starts with, else '' (a bare VAE)."""
    return next((p for p in KNOWN_PREFIXES if any(k.startswith(p) for k in state)), "")


def vae_tensors(state: Mapping[str, Any], prefix: str, source: str) -> dict[str, torch.Tensor]:
    """The entries of a flat state under `prefix`, with the prefix stripped ('' takes them all).

    Entries under the prefix that are not tensors raise, naming them.
    """
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not picked:
        tops = sorted({k.split(".", 1)[0] + "." for k in state})
        raise VAECheckpointError(f"{source}: no tensor under prefix '{prefix}'; top-level prefixes: {listing(tops)}")
    not_tensors = [prefix + k for k, v in picked.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise VAECheckpointError(f"{source}: entries that are not tensors: {listing(not_tensors)}")
    return picked


def check_vae_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str, prefix: str = "") -> None:
    """Raise `VAECheckpointError` naming missing, unexpected and mis-shaped tensors (names shown with `prefix`)."""
    diff = state_dict_diff({k: v.shape for k, v in model.state_dict().items()}, state, prefix)
    parts = diff.parts(("missing tensors", "unexpected tensors", "mis-shaped tensors"))
    if parts:
        raise VAECheckpointError(f"{source}: does not match {type(model).__name__}: " + "; ".join(parts))


def vae_from_state(state: Mapping[str, Any], *, prefix: Optional[str] = None, cfg: Optional[OobleckConfig] = None,
                   device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                   source: str = "state_dict") -> OobleckVAE:
    """An `OobleckVAE` holding the tensors of a flat (or Lightning) state, checked strictly.

    The model is built on the meta device and filled from the file, so no random initialisation runs.
    Returned in eval mode with requires_grad False (PrismAudio keeps its VAE frozen).
    """
    flat = unwrap_state(state)
    prefix = detect_prefix(flat) if prefix is None else prefix
    tensors = vae_tensors(flat, prefix, source)
    with torch.device("meta"):
        vae = OobleckVAE(cfg)
    check_vae_state(vae, tensors, source, prefix)
    bad_dtype = [prefix + k for k, v in tensors.items() if not v.is_floating_point()]
    if bad_dtype:
        raise VAECheckpointError(f"{source}: tensors that are not floating point: {listing(bad_dtype)}")
    vae = vae.to_empty(device=device).to(dtype)
    vae.load_state_dict(tensors, strict=True)
    return vae.eval().requires_grad_(False)


def load_oobleck_vae(path: str, *, prefix: Optional[str] = None, cfg: Optional[OobleckConfig] = None,
                     device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> OobleckVAE:
    """PrismAudio's VAE from `vae.ckpt`, `prismaudio.ckpt`, a bare VAE state_dict, or their `.safetensors`.

    prefix: where the VAE's tensors sit ('autoencoder.', 'pretransform.model.', or '' for a bare
    state_dict); None detects it. Errors (`VAECheckpointError`) name the path and the tensors at fault.
    """
    return vae_from_state(read_state_file(path), prefix=prefix, cfg=cfg, device=device, dtype=dtype,
                          source=os.fspath(path))


def vae_state_dict(vae: OobleckVAE, prefix: str = MODEL_PREFIX) -> "OrderedDict[str, torch.Tensor]":
    """The VAE's tensors (detached, in state_dict order) named `prefix + name`, for a whole-model export."""
    return OrderedDict((prefix + k, v.detach()) for k, v in vae.state_dict().items())
