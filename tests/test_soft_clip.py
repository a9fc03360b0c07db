"""The policies' output stage: quiet samples untouched, loud ones rounded below full scale."""
import pytest
import torch

from policies.soft_clip import SOFT_CLIP_CEILING, SOFT_CLIP_KNEE, soft_clip


def test_soft_clip_passes_the_quiet_part_and_bounds_the_loud_part_smoothly():
    x = torch.linspace(-3.0, 3.0, 60001, dtype=torch.float64)
    y = soft_clip(x)
    quiet = x.abs() <= SOFT_CLIP_KNEE
    assert torch.equal(y[quiet], x[quiet])
    assert float(y.abs().max()) <= SOFT_CLIP_CEILING  # below a clipping teacher's 0.99
    assert torch.all(torch.diff(y) >= 0)  # monotonic: louder in, never quieter out
    near = x.abs() <= 1.2
    assert torch.all(torch.diff(y[near]) > 0)  # and strictly so over any overshoot a decoder makes
    assert torch.equal(soft_clip(-x), -y)  # odd: no DC from asymmetric bending
    slope = torch.diff(y) / torch.diff(x)
    assert float(slope.max()) <= 1.0 + 1e-6 and float(slope[quiet[1:]].min()) == pytest.approx(1.0)
    at_knee = int(torch.argmin((x - SOFT_CLIP_KNEE).abs()))
    assert float(slope[at_knee]) == pytest.approx(1.0, abs=1e-3)  # no kink at the knee
    with pytest.raises(ValueError, match="knee"):
        soft_clip(x, knee=0.99, ceiling=0.9)
