"""Reading a PyTorch checkpoint safely and checking it against a model, with errors naming the path.

Shared by the model packages under `rewards/models/` (Synchformer, StereoCRW).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import torch

from common.state_dict_diff import state_dict_diff


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or does not fit the model; the message names the path."""


def unwrap_state_dict(checkpoint: Any, path: str, key: str = "state_dict") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint: `checkpoint[key]` when present, else the checkpoint itself;
    `CheckpointError` naming the path when there is none or an entry is not a tensor."""
    state = checkpoint.get(key, checkpoint) if isinstance(checkpoint, Mapping) else checkpoint
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"'{path}' holds no state dict (expected a dict of tensors or '{key}')")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"'{path}': entries that are not tensors: {bad[:5]}")
    return dict(state)


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str) -> None:
    """Raise `CheckpointError` naming missing keys, unexpected keys and shape mismatches, if any."""
    diff = state_dict_diff({k: v.shape for k, v in model.state_dict().items()}, state, shape=tuple)
    parts = diff.parts(("missing keys", "unexpected keys", "shape mismatches"))
    if parts:
        raise CheckpointError(f"{path}: does not match {type(model).__name__}: " + "; ".join(parts))


def read_checkpoint(path: str) -> dict:
    """`torch.load(path, weights_only=True)` on the CPU; `CheckpointError` naming the path if missing or unreadable."""
    path = os.fspath(path)
    if not path:
        raise CheckpointError("no checkpoint path given")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with non-tensor objects...
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return obj
