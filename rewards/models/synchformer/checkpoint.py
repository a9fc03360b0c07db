"""Loading `synchformer_state_dict.pth` (a flat state_dict, no prefix) strictly into `Synchformer`."""
from __future__ import annotations

import os

import torch

from rewards.models.state_dict_io import CheckpointError, check_state_dict, read_checkpoint
from rewards.models.synchformer.model import Synchformer

CHECKPOINT_NAME = "synchformer_state_dict.pth"
"""File name of the public checkpoint (MMAudio release v0.1, md5 5b2f5594b0730f70e41e549b7c94390c)."""

__all__ = ["CHECKPOINT_NAME", "CheckpointError", "load_synchformer"]


def load_synchformer(path: str, device: str | torch.device = "cpu") -> Synchformer:
    """The Synchformer in `path` (`synchformer_state_dict.pth`), loaded with strict=True, in eval mode."""
    state = read_checkpoint(path)
    with torch.device("meta"):  # no random init of 237M parameters that the file replaces
        model = Synchformer()
    check_state_dict(model, state, os.fspath(path))
    model.load_state_dict(state, strict=True, assign=True)
    return model.float().to(device).eval()
