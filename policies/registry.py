"""Policy classes by name: `policy_class(kind)` is the class `policy.kind` names.

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
    if "prismaudio" not in _POLICIES:
        from policies.prismaudio.policy import PrismAudioPolicy

        _POLICIES["prismaudio"] = PrismAudioPolicy


def policy_class(kind: str) -> Callable[[PolicyConfig], Policy]:
    """The class registered under `kind` (raises naming the registered kinds when there is none)."""
    _import_builtin()
    if kind not in _POLICIES:
        raise ValueError(f"policy.kind: unknown '{kind}'; available: {', '.join(sorted(_POLICIES))}")
    return _POLICIES[kind]
