"""The experience buffer: each step's groups of experience, keyed by step, tagged with weight versions.

A group is a `GroupExperience` (actors/experience_builder.py): the ref of its rollout payload, its
advantages, version and clip id. The tensors stay in the Ray object store; this holds refs only.
`take` enforces the staleness bound: an experience whose weight version lags the learner's by more than
`max_staleness` is refused (it would train on samples from too old a policy).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any


class StalenessError(RuntimeError):
    """Experience older than the bound reached the learner."""


class ExperienceBuffer:
    """Experience per step (one `GroupExperience` per group), handed to the learner in step order."""

    def __init__(self, max_staleness: int):
        self.max_staleness = max_staleness
        self._steps: "OrderedDict[int, tuple[list[Any], list[int]]]" = OrderedDict()
        self.max_seen_staleness = 0

    def add(self, step: int, items: list[Any], versions: list[int]) -> None:
        """Experience of one step (one item per group) and the weight version of each."""
        if step in self._steps:
            raise ValueError(f"experience of step {step} was added twice")
        self._steps[step] = (list(items), list(versions))

    def take(self, step: int, learner_version: int) -> tuple[list[Any], int]:
        """The items of `step` and their staleness (learner version - oldest experience version)."""
        if step not in self._steps:
            raise KeyError(f"no experience for step {step} (have {list(self._steps)})")
        items, versions = self._steps.pop(step)
        staleness = learner_version - min(versions)
        if staleness > self.max_staleness:
            raise StalenessError(
                f"step {step}: experience from weight version {min(versions)} is {staleness} versions behind the "
                f"learner (version {learner_version}); bound train.max_staleness={self.max_staleness}")
        self.max_seen_staleness = max(self.max_seen_staleness, staleness)
        return items, staleness

    def __len__(self) -> int:
        return len(self._steps)
