"""The precision the sampler runs the policy's network in (`rollout.dtype`).

Sampling only: the Euler/SDE updates, the forward draws' `old_velocity` (DiffusionNFT's v_old), the
codec's decode and every learner computation stay in float32. On a CPU with native bf16 dot
products (AVX-512 BF16 or AMX) the network's matrix products run about 4x faster in bf16 and a
guided forward of the demo policy about 2x (issue 18); on a CPU without them bf16 is slower than
float32, which is why `auto` looks at the CPU.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterable, Optional

import torch

ROLLOUT_DTYPES = ("fp32", "bf16", "auto")
"""Allowed values of `rollout.dtype`."""

NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""/proc/cpuinfo flags of x86 CPUs that compute bf16 dot products in hardware."""


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The `flags` of the first processor in `path` (empty where the file does not exist, e.g. macOS)."""
    if not os.path.exists(path):
        return frozenset()
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("flags") and ":" in line:
                return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def resolve_sampling_dtype(spec: str, device: torch.device, flags: Optional[Iterable[str]] = None
                           ) -> Optional[torch.dtype]:
    """torch.bfloat16 or None (float32) for `rollout.dtype` = spec on `device`. `auto` is bf16 on a CUDA
    device that supports it and on a CPU whose flags (default: this machine's) include one of
    NATIVE_BF16_CPU_FLAGS, float32 elsewhere."""
    if spec not in ROLLOUT_DTYPES:
        raise ValueError(f"rollout.dtype is {spec!r}; allowed: {', '.join(ROLLOUT_DTYPES)}")
    if spec == "fp32":
        return None
    if spec == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    flags = cpu_flags() if flags is None else frozenset(flags)
    return torch.bfloat16 if flags & NATIVE_BF16_CPU_FLAGS else None


def network_precision(device: torch.device, dtype: Optional[torch.dtype]):
    """Autocast to `dtype` on `device`'s type, or nothing for None (float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
