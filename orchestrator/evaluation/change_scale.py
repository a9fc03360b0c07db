"""A policy's change scaled by a factor: baseline + scale x (checkpoint - baseline), weight by weight
(`eval.change_scale`). How a teacher's change grows with the size of the weight change tells a linear
response (it scales with the factor, and so does its paired s.e.) from one that needs the whole move."""
from __future__ import annotations

from typing import Mapping

import torch

from common.state_dict_diff import state_dict_diff


def scaled_change(baseline: Mapping[str, torch.Tensor], checkpoint: Mapping[str, torch.Tensor], scale: float
                  ) -> dict[str, torch.Tensor]:
    """checkpoint's state with every floating tensor at baseline + scale (checkpoint - baseline), computed
    in float64 and stored in the checkpoint's dtype; other tensors (integer buffers) are the checkpoint's.
    scale 0 gives the baseline, 1 the checkpoint, -1 the change reversed. Raises ValueError naming the
    tensors when the two states do not hold the same names and shapes."""
    diff = state_dict_diff({k: tuple(v.shape) for k, v in checkpoint.items()}, baseline, shape=tuple)
    if diff:
        raise ValueError("eval.change_scale: the baseline's weights do not match the checkpoint's ("
                         + "; ".join(diff.parts(("missing in the baseline", "only in the baseline", "other shapes"))) + ")")
    out = {}
    for name, value in checkpoint.items():
        if value.is_floating_point() and scale != 1.0:
            base = baseline[name].double()
            value = (base + scale * (value.double() - base)).to(value.dtype)
        out[name] = value.clone()
    return out
