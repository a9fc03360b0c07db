"""orchestrator.evaluation.change_scale: a checkpoint's change from its baseline, scaled."""
from __future__ import annotations

import pytest
import torch

from orchestrator.config.schema import PrismConfig
from orchestrator.evaluation.change_scale import scaled_change
from orchestrator.evaluation.evaluate import run_eval


def _states():
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(3, 4, generator=g), "h": torch.randn(5, generator=g).half(), "steps": torch.tensor([7])}
    ckpt = {"w": torch.randn(3, 4, generator=g), "h": torch.randn(5, generator=g).half(), "steps": torch.tensor([9])}
    return base, ckpt


def test_zero_is_the_baseline_one_the_checkpoint_and_between_is_on_the_line():
    base, ckpt = _states()
    at0, at1, half, back = (scaled_change(base, ckpt, s) for s in (0.0, 1.0, 0.5, -1.0))
    assert torch.equal(at0["w"], base["w"]) and torch.equal(at0["h"], base["h"])
    assert all(torch.equal(at1[k], ckpt[k]) for k in ckpt)
    assert torch.allclose(half["w"], (base["w"] + ckpt["w"]) / 2, atol=1e-6)
    assert torch.allclose(back["w"], 2 * base["w"] - ckpt["w"], atol=1e-6)
    assert half["h"].dtype == torch.float16 and torch.equal(half["steps"], ckpt["steps"])


def test_different_names_or_shapes_are_named():
    base, ckpt = _states()
    with pytest.raises(ValueError, match=r"missing in the baseline: w"):
        scaled_change({k: v for k, v in base.items() if k != "w"}, ckpt, 0.5)
    with pytest.raises(ValueError, match=r"other shapes: h: file \(4,\) vs model \(5,\)"):
        scaled_change({**base, "h": torch.zeros(4)}, ckpt, 0.5)


def test_a_scale_without_a_baseline_is_refused_before_any_work(tmp_path):
    cfg = PrismConfig()
    cfg.eval.checkpoint, cfg.eval.change_scale, cfg.run_dir = str(tmp_path / "nothing-here"), 0.5, str(tmp_path)
    with pytest.raises(ValueError, match=r"eval.change_scale=0.5 scales a checkpoint's change from eval.baseline"):
        run_eval(cfg, track=False)
