"""Which clips each training step uses: a seeded, resumable epoch-shuffled cursor."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class CursorState:
    """Position of the data cursor (saved in checkpoints)."""

    epoch: int = 0
    """Completed passes over the split."""
    index: int = 0
    """Next position within the current epoch's order."""


class PromptSampler:
    """Yields clip ids in a per-epoch permutation that depends only on (seed, epoch)."""

    def __init__(self, clip_ids: list[str], seed: int, state: CursorState | None = None):
        if not clip_ids:
            raise ValueError("the training split has no clips")
        self.clip_ids = list(clip_ids)
        self.seed = seed
        self.state = state or CursorState()

    def _order(self, epoch: int) -> list[int]:
        rng = np.random.default_rng([self.seed, epoch])
        return list(rng.permutation(len(self.clip_ids)))

    def next(self, n: int) -> list[str]:
        """The next n clip ids (crossing epoch boundaries as needed)."""
        out: list[str] = []
        order = self._order(self.state.epoch)
        while len(out) < n:
            if self.state.index >= len(order):
                self.state = CursorState(self.state.epoch + 1, 0)
                order = self._order(self.state.epoch)
            out.append(self.clip_ids[order[self.state.index]])
            self.state.index += 1
        return out

    def state_dict(self) -> dict:
        """Cursor as a plain dict."""
        return asdict(self.state)

    def load_state_dict(self, state: dict) -> None:
        """Restore the cursor."""
        self.state = CursorState(**state)
