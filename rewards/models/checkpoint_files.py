"""Local checkpoints for the model teachers: path checks, `weights_only` loading, key prefixes, devices.

Reading and key checking are `state_dict_io`'s; here its errors become a `TeacherError` that names
the teacher/backend as well as the path, as the orchestrator reports teacher failures.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import torch

from rewards.base import TeacherError
from rewards.models import state_dict_io
from rewards.models.state_dict_io import CheckpointError, check_state_dict, read_checkpoint


def require_path(path: str | None, owner: str, what: str = "checkpoint", kind: str = "file") -> str:
    """`path` as an absolute path, after checking it exists as a `kind` ("file", "dir" or "any").

    owner: who needs it, e.g. "semantic/laion_clap", named in the error.
    """
    if not path:
        raise TeacherError(f"{owner}: option '{what}' is required (a local path; nothing is downloaded)")
    full = os.path.abspath(os.path.expanduser(str(path)))
    ok = {"file": os.path.isfile, "dir": os.path.isdir, "any": os.path.exists}[kind](full)
    if not ok:
        expected = {"file": "a file", "dir": "a directory", "any": "a file or directory"}[kind]
        raise TeacherError(f"{owner}: {what} '{full}' does not exist or is not {expected}")
    return full


def load_weights_only(path: str, owner: str) -> dict:
    """`torch.load(path, weights_only=True)` on the CPU (`state_dict_io.read_checkpoint`); errors name owner, path."""
    try:
        return read_checkpoint(path)
    except CheckpointError as err:
        raise TeacherError(f"{owner}: checkpoint {err}") from err


def unwrap_state_dict(checkpoint: Any, path: str, owner: str, key: str = "state_dict") -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint (`state_dict_io.unwrap_state_dict`); errors name owner and path."""
    try:
        return state_dict_io.unwrap_state_dict(checkpoint, path, key)
    except CheckpointError as err:
        raise TeacherError(f"{owner}: checkpoint {err}") from err


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys without a leading `prefix` (e.g. DistributedDataParallel's "module."); other keys unchanged."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}


def load_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str, owner: str) -> None:
    """`model.load_state_dict(state)` with every key and shape accounted for; a mismatch names the first few keys."""
    try:
        check_state_dict(model, state, path)
    except CheckpointError as err:
        raise TeacherError(f"{owner}: checkpoint {err}") from err
    model.load_state_dict(dict(state), strict=True)


def resolve_device(device: str, owner: str) -> torch.device:
    """`auto` = CUDA when visible, else CPU; an explicit `cuda...` fails loudly when no GPU is visible."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise TeacherError(f"{owner}: option device='{device}' is not a torch device: {err}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TeacherError(f"{owner}: option device='{device}' but no CUDA device is visible to this process")
    return dev
