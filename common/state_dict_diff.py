"""How a state_dict differs from the names and shapes a model expects: missing, unexpected and
mis-shaped tensors, in the model's order. Plain Python, shared by every strict checkpoint loader
(policies and teachers alike), so that each names what does not fit in the same way."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence


def listing(items: Sequence[str], limit: int = 8) -> str:
    """The first `limit` items, comma-separated, with the count when there are more."""
    return ", ".join(items[:limit]) + (f" ... ({len(items)} in all)" if len(items) > limit else "")


@dataclass(frozen=True)
class StateDictDiff:
    """What does not fit; empty lists when the state_dict matches."""

    missing: list[str]
    """Expected names the state_dict lacks."""
    unexpected: list[str]
    """Names of the state_dict the model does not have."""
    misshaped: list[str]
    """`name: file SHAPE vs model SHAPE` for every name present in both with another shape."""

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.misshaped)

    def parts(self, labels: tuple[str, str, str] = ("missing", "unexpected", "mis-shaped"), limit: int = 8) -> list[str]:
        """One `label: names` phrase per non-empty kind, in the order missing, unexpected, mis-shaped."""
        return [f"{label}: {listing(names, limit)}"
                for label, names in zip(labels, (self.missing, self.unexpected, self.misshaped)) if names]


def state_dict_diff(expected: Mapping[str, Sequence[int]], state: Mapping[str, Any], prefix: str = "",
                    shape: Callable[[Sequence[int]], Any] = list) -> StateDictDiff:
    """Compare `state` (name -> tensor) with `expected` (name -> shape); names are shown with
    `prefix`, shapes as `shape(...)` (list or tuple)."""
    missing = [prefix + k for k in expected if k not in state]
    unexpected = [prefix + k for k in state if k not in expected]
    misshaped = [f"{prefix}{k}: file {shape(state[k].shape)} vs model {shape(expected[k])}"
                 for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k])]
    return StateDictDiff(missing, unexpected, misshaped)
