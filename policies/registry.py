"""Policy classes by name: `build_policy(cfg)` makes the one `policy.kind` names.

A user adds a generator with `@register_policy("my_model")` on a `Policy` subclass whose
constructor takes a `PolicyConfig`, imported before the orchestrator builds policies.
"""
from __future__ import annotations

from typing import Callable

from policies.base import Policy
from policies.config import PolicyConfig

_POLICIES: dict[str, Callable[[PolicyConfig], Policy]] = {}


def register_policy(kind: str):
    """Class decorator: register a Policy class under `kind`."""

    def wrap(cls):
        _POLICIES[kind] = cls
        return cls

    return wrap


def available_policies() -> list[str]:
    """Registered policy kinds."""
    _import_builtin()
    return sorted(_POLICIES)


def _import_builtin() -> None:
    if "small_dit" not in _POLICIES:
        from policies.small_dit import SmallDiTPolicy

        _POLICIES["small_dit"] = SmallDiTPolicy


def build_policy(cfg: PolicyConfig, load_checkpoint: bool = True) -> Policy:
    """A policy of `cfg.kind`: weights from `cfg.checkpoint` when set (and load_checkpoint), else random.

    The checkpoint's architecture must match cfg (a mismatch raises, naming the fields);
    run-time fields (duration, video fps, dropout, text encoder path) come from cfg.
    """
    _import_builtin()
    if cfg.kind not in _POLICIES:
        raise ValueError(f"policy.kind: unknown '{cfg.kind}'; available: {', '.join(sorted(_POLICIES))}")
    if cfg.checkpoint and load_checkpoint:
        from policies.checkpoint import load_policy

        return load_policy(cfg.checkpoint, expect=cfg)
    return _POLICIES[cfg.kind](cfg)
