"""Exponential moving average of model weights (kept on the CPU in float32, for evaluation)."""
from __future__ import annotations

from typing import Iterable, Mapping

import torch


class EMA:
    """ema <- decay * ema + (1 - decay) * weight, per floating tensor; other tensors are copied.

    Holds float32 CPU copies keyed by name, so it can follow a model whose parameters live on a
    GPU, in bf16, or (under ZeRO-3) only while gathered: pass the gathered tensors to `update`.
    """

    def __init__(self, named_tensors: Iterable[tuple[str, torch.Tensor]] | Mapping[str, torch.Tensor], decay: float):
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA: decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {name: self._copy(t) for name, t in _items(named_tensors)}

    @staticmethod
    def _copy(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        return t.float().clone() if t.is_floating_point() else t.clone()

    @torch.no_grad()
    def update(self, named_tensors: Iterable[tuple[str, torch.Tensor]] | Mapping[str, torch.Tensor]) -> None:
        """Fold the current weights in; every name must be one the EMA was built with."""
        for name, t in _items(named_tensors):
            if name not in self.shadow:
                raise KeyError(f"EMA.update: unknown tensor {name!r}")
            avg = self.shadow[name]
            if t.shape != avg.shape:
                raise ValueError(f"EMA.update: {name!r} has shape {tuple(t.shape)}, EMA holds {tuple(avg.shape)}")
            if avg.is_floating_point():
                # lerp: exact when the weight has not moved (frozen tensors stay bit-identical)
                avg.lerp_(t.detach().to(device="cpu", dtype=torch.float32), 1.0 - self.decay)
            else:
                avg.copy_(t.detach().cpu())
        self.num_updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged tensors (float32 CPU copies), keyed by name."""
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor], num_updates: int = 0) -> None:
        """Replace the averages; the names must match exactly."""
        if set(state) != set(self.shadow):
            missing, extra = set(self.shadow) - set(state), set(state) - set(self.shadow)
            raise KeyError(f"EMA.load_state_dict: missing {sorted(missing)}, unexpected {sorted(extra)}")
        self.shadow = {name: self._copy(t) for name, t in state.items()}
        self.num_updates = int(num_updates)


def _items(named: Iterable[tuple[str, torch.Tensor]] | Mapping[str, torch.Tensor]):
    return named.items() if isinstance(named, Mapping) else named
