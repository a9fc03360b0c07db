"""`prismrl bench learn`: its runs' configs, the null-control verdict, the curve plot and report (no Ray)."""
import os

from benchmarks.learn import LearnOptions, arm_config, beyond, curve_png, markdown
from orchestrator.config import load_config


def _change(total, se=0.01):
    keys = ("semantic", "timing", "aesthetic", "spatial", "total")
    return {k: {"diff": total if k == "total" else 0.0, "se": se, "higher": 1, "lower": 1, "clips": 2} for k in keys}


def test_the_null_arm_differs_from_the_trained_one_only_in_its_advantages(tmp_path):
    cfg = load_config("tiny", [f"run_dir={tmp_path}"])
    opts = LearnOptions(val_every=3, null_control="shuffle")
    train, null = arm_config(cfg, "train", opts), arm_config(cfg, "null_shuffle", opts)
    assert train.run_dir == os.path.join(str(tmp_path), "train") and null.train.val_every == 3
    assert (train.grpo.null_control, null.grpo.null_control) == ("none", "shuffle")
    null.grpo.null_control, null.run_dir, null.tracking.run_name = "none", train.run_dir, train.tracking.run_name
    assert null == train and cfg.train.val_every == 0  # nothing else differs; the caller's config is untouched


def test_beyond_names_the_keys_that_moved_more_than_the_bar():
    assert beyond(_change(0.05), 2.0) == ["total"]
    assert beyond(_change(0.015), 2.0) == []
    assert beyond(_change(0.01, se=0.0), 2.0) == ["total"]


def test_curve_png_and_markdown_show_every_run(tmp_path):
    curves = {"train": [{"step": 0, "change": _change(0.0)}, {"step": 2, "change": _change(0.05)}],
              "null_zero": [{"step": 0, "change": _change(0.0)}, {"step": 2, "change": _change(0.001)}]}
    png = curve_png(curves, str(tmp_path / "learn.png"), "t")
    assert os.path.getsize(png) > 1000
    result = {"val_every": 2, "null_bar": 2.0, "png": png, "null_passes": True,
              "arms": {arm: {"curve": c, "beyond_bar": beyond(c[-1]["change"], 2.0), "samples_per_s": 1.0,
                             "wall_s": 3.0} for arm, c in curves.items()}}
    md = markdown(result)
    assert "| train | 2 |" in md and "| null_zero | 2 |" in md and "+0.0500 ± 0.0100" in md
    assert "train: beyond 2 s.e. at the end: total" in md and "Null control passes" in md
