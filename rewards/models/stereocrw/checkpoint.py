"""Loading `FreeMusic-StereoCRW-1024.pth.tar` strictly into `StereoCRW`.

The release is a dict with `state_dict` (plus `epoch`, maybe `step`/`optimizer`) whose keys carry
the `module.` prefix of `nn.DataParallel`; the prefix is stripped and every tensor must fit.
(PrismAudio's reward code never loaded this file, so its StereoCRW term came from random weights;
here a missing or mismatched file is an error.)
"""
from __future__ import annotations

import os

import torch

from rewards.models.state_dict_io import CheckpointError, check_state_dict, read_checkpoint
from rewards.models.stereocrw.model import StereoCRW

CHECKPOINT_NAME = "FreeMusic-StereoCRW-1024.pth.tar"
"""File name of the public checkpoint (IFICL/stereocrw release)."""
PREFIX = "module."

__all__ = ["CHECKPOINT_NAME", "CheckpointError", "load_stereocrw", "strip_prefix"]


def strip_prefix(state: dict, prefix: str = PREFIX) -> dict:
    """Keys without `prefix` where every key has it (the DataParallel layout); otherwise unchanged."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def load_stereocrw(path: str, patch_samples: int = 1024, device: str | torch.device = "cpu") -> StereoCRW:
    """The StereoCRW encoder in `path`, loaded with strict=True, in eval mode.

    patch_samples: audio samples per patch (the STFT hop is patch_samples // 128).
    """
    obj = read_checkpoint(path)
    state = obj.get("state_dict", obj)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(state).__name__}, expected a dict of tensors")
    state = strip_prefix(state)
    model = StereoCRW(patch_samples)
    check_state_dict(model, state, os.fspath(path))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
