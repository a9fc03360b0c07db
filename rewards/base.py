"""The `Teacher` interface and the backend registry.

A teacher grades a batch of generated stereo waveforms against their clips. Backends register
themselves under (teacher, backend) names; the orchestrator builds them from config only, so a
user adds a backend with `@register_backend("timing", "my_model")` in an imported module and
`rewards.timing.backend=my_model` on the command line.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, Callable, Sequence

import numpy as np

from common.types import Clip, Grade


class TeacherError(ValueError):
    """A teacher could not grade: the message names the teacher, backend and clip or path."""


class Teacher(ABC):
    """Grades generated audio for one of the four aspects (semantic, timing, aesthetic, spatial)."""

    teacher: str = ""
    """Which aspect this grades: one of `common.types.TEACHERS`."""
    backend: str = ""
    """Registered backend name."""
    reward_range: tuple[float, float] = (-float("inf"), float("inf"))
    """Range every valid reward of this backend lies in; anything outside is a bad grade."""

    @abstractmethod
    def grade(self, audio: Sequence[np.ndarray], sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        """One `Grade` per generated waveform.

        audio: stereo float32 arrays of shape [2, N] in [-1, 1], one per clip (lengths may differ).
        sample_rate: the waveforms' sample rate in Hz (backends resample to what they need).
        clips: the matching clips (frames, fps, CoT, ground-truth audio, metadata).
        """

    def describe(self) -> str:
        """`teacher/backend`, for messages and metric names."""
        return f"{self.teacher}/{self.backend}"


BackendFactory = Callable[..., Teacher]
_REGISTRY: dict[tuple[str, str], tuple[BackendFactory, type | None]] = {}


def register_backend(teacher: str, backend: str, options: type | None = None):
    """Class decorator: register a Teacher class as `teacher`/`backend`.

    options: a dataclass of the backend's options; config `options` are checked against it.
    """

    def wrap(cls):
        cls.teacher, cls.backend = teacher, backend
        _REGISTRY[(teacher, backend)] = (cls, options)
        return cls

    return wrap


def _import_builtin_backends() -> None:
    import rewards.backends  # noqa: F401  (registers every built-in backend)


def import_plugins(modules: Sequence[str]) -> None:
    """Import user modules that register backends (config `rewards.plugins`)."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise TeacherError(f"rewards.plugins: cannot import '{name}': {e}") from e


def available_backends(teacher: str | None = None) -> list[tuple[str, str]]:
    """Registered (teacher, backend) pairs."""
    _import_builtin_backends()
    return sorted(k for k in _REGISTRY if teacher is None or k[0] == teacher)


def check_options(teacher: str, backend: str, options: dict[str, Any] | None) -> Any:
    """Validated options object for a backend; raises TeacherError naming any unknown key."""
    _import_builtin_backends()
    if (teacher, backend) not in _REGISTRY:
        names = ", ".join(b for t, b in _REGISTRY if t == teacher)
        raise TeacherError(f"rewards.{teacher}.backend: unknown backend '{backend}'; available: {names}")
    _, opt_cls = _REGISTRY[(teacher, backend)]
    options = dict(options or {})
    if opt_cls is None:
        if options:
            raise TeacherError(f"rewards.{teacher}.options: backend '{backend}' takes no options, got {sorted(options)}")
        return None
    fields = {f.name: f for f in dataclasses.fields(opt_cls)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise TeacherError(
            f"rewards.{teacher}.options: unknown key(s) {unknown} for backend '{backend}'; allowed: {', '.join(fields)}"
        )
    return opt_cls(**options)


def build_teacher(teacher: str, backend: str, options: dict[str, Any] | None = None,
                  plugins: Sequence[str] = ()) -> Teacher:
    """Construct a registered backend from its name and options (after importing `plugins`)."""
    import_plugins(plugins)
    opts = check_options(teacher, backend, options)
    cls, _ = _REGISTRY[(teacher, backend)]
    return cls(opts) if opts is not None else cls()


def backend_reward_range(teacher: str, backend: str) -> tuple[float, float]:
    """The range every valid reward of a registered backend lies in."""
    _import_builtin_backends()
    if (teacher, backend) not in _REGISTRY:
        raise TeacherError(f"rewards.{teacher}.backend: unknown backend '{backend}'")
    return tuple(_REGISTRY[(teacher, backend)][0].reward_range)  # type: ignore[return-value]
