"""The precision a teacher's model runs at: float32, or bfloat16 / float16 autocast.

Shared by the Synchformer timing teacher and `prismrl data features` (which runs the same model).
Importing this module needs no torch, so options can be checked before a model is loaded.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "float16")
"""Allowed precisions: `float32` (no autocast), `bfloat16` or `float16` autocast."""


def autocast_context(precision: str, device_type: str) -> ContextManager:
    """A no-op context for `float32`, else torch autocast to that dtype on `device_type` (`cpu`, `cuda`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision '{precision}' is not one of {PRECISIONS}")
    if precision == "float32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type, dtype=getattr(torch, precision))
