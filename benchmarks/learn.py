"""Learning curve benchmark: does training move the validation reward beyond its noise, and does a null control not?

`prismrl bench learn [CONFIG]` trains the config (`orchestrator.training.train.run_training`) with a
validation pass every `bench.val_every` steps (ODE, EMA weights, the same clips and noise every
pass) and reports each pass's change from the first, paired clip by clip, with its standard error,
per teacher and for the total. With `bench.null_control=shuffle_in_group|shuffle|zero` a second run
from the same start trains with `grpo.null_control` set (advantages permuted within each group,
across groups, or zero): its curve is what the update mechanics do without the reward, and the bar is that no teacher moves beyond
`bench.null_bar` standard errors. Writes learn.png (one panel per teacher and the total, ±1 s.e.
bands, both runs), logged to each run's MLflow run with the curves as `val_change/<teacher>`.

    prismrl bench learn demo bench.val_every=10 bench.null_control=shuffle_in_group
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any, Sequence

from common.types import TEACHERS
from orchestrator.config.schema import PrismConfig
from orchestrator.grpo.advantages import NULL_CONTROLS

KEYS = (*TEACHERS, "total")
"""Panels and table columns: each teacher, then the configured total."""
TRAIN_ARM = "train"
"""Name of the run that trains on the advantages."""


@dataclass
class LearnOptions:
    """Options of `prismrl bench learn` (set as bench.<field>=value)."""

    val_every: int = 10
    """Learner steps between validation passes (train.val_every of each run)."""
    null_control: str = "none"
    """`none`, or `shuffle_in_group` / `shuffle` / `zero`: also train a null-control run (grpo.null_control) from the same start."""
    null_bar: float = 2.0
    """A null-control run passes when no teacher's final change exceeds this many standard errors."""


def arm_config(cfg: PrismConfig, arm: str, opts: LearnOptions) -> PrismConfig:
    """The config of one run: its own run_dir under cfg.run_dir, validation every opts.val_every steps,
    and for a null arm grpo.null_control set (everything else, seeds included, unchanged)."""
    out = copy.deepcopy(cfg)
    out.run_dir = os.path.join(cfg.run_dir, arm)
    out.train.val_every = int(opts.val_every)
    out.grpo.null_control = "none" if arm == TRAIN_ARM else arm.removeprefix("null_")
    out.tracking.run_name = f"{os.path.basename(cfg.run_dir.rstrip('/')) or 'learn'}-{arm}"
    return out


def beyond(change: dict[str, dict[str, float]], bar: float) -> list[str]:
    """Keys whose |diff| exceeds bar standard errors (a zero s.e. with a nonzero diff counts)."""
    return [k for k, v in change.items() if abs(v["diff"]) > bar * v["se"] and v["diff"] != 0.0]


def curve_png(curves: dict[str, Sequence[dict[str, Any]]], path: str, title: str = "") -> str:
    """One panel per key: each run's change from its first pass against learner steps, ±1 s.e. band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(KEYS), figsize=(3.2 * len(KEYS), 3.2), sharex=True)
    for ax, key in zip(axes, KEYS):
        for arm, curve in curves.items():
            steps = [p["step"] for p in curve]
            diff = [p["change"][key]["diff"] for p in curve]
            se = [p["change"][key]["se"] for p in curve]
            line, = ax.plot(steps, diff, marker=".", label=arm)
            ax.fill_between(steps, [d - s for d, s in zip(diff, se)], [d + s for d, s in zip(diff, se)],
                            color=line.get_color(), alpha=0.2)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_title(key)
        ax.set_xlabel("learner step")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation change (paired, ±1 s.e.)")
    axes[-1].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(cfg: PrismConfig, opts: LearnOptions | None = None) -> dict[str, Any]:
    """Train (and the null control when asked) with periodic validation; the curves and verdicts."""
    import mlflow

    from orchestrator.training.train import run_training

    opts = opts or LearnOptions()
    if opts.val_every < 1:
        raise ValueError(f"bench.val_every must be >= 1, got {opts.val_every}")
    if opts.null_control not in NULL_CONTROLS:
        raise ValueError(f"bench.null_control must be one of {NULL_CONTROLS}, got {opts.null_control!r}")
    arms = [TRAIN_ARM] + ([f"null_{opts.null_control}"] if opts.null_control != "none" else [])
    out: dict[str, Any] = {"val_every": opts.val_every, "null_bar": opts.null_bar, "arms": {}}
    for arm in arms:
        summary = run_training(arm_config(cfg, arm, opts))
        final = summary["val_change"]
        out["arms"][arm] = {"curve": summary["val_curve"], "final": final, "steps": summary["steps"],
                            "samples_per_s": summary["samples_per_s"], "wall_s": summary["wall_s"],
                            "mlflow": summary["mlflow"], "beyond_bar": beyond(final, opts.null_bar)}
    os.makedirs(cfg.run_dir, exist_ok=True)
    png = curve_png({a: v["curve"] for a, v in out["arms"].items()}, os.path.join(cfg.run_dir, "learn.png"),
                    title=f"{os.path.basename(cfg.data.manifest)}: lr {cfg.grpo.lr:g}, seed {cfg.seed}")
    out["png"] = png
    for arm in out["arms"].values():
        mlflow.MlflowClient(arm["mlflow"]["tracking_uri"]).log_artifact(arm["mlflow"]["run_id"], png)
    if len(arms) > 1:
        out["null_passes"] = not out["arms"][arms[1]]["beyond_bar"]
    return out


def markdown(result: dict[str, Any]) -> str:
    """Per run and validation pass: each key's change from the first pass ± s.e.; the null verdict."""
    lines = [f"Validation every {result['val_every']} learner steps; change from the first pass, paired clip by "
             "clip (± s.e.).", "",
             "| run | step | " + " | ".join(KEYS) + " |", "|---|---:|" + "---:|" * len(KEYS)]
    for arm, v in result["arms"].items():
        for point in v["curve"]:
            cells = " | ".join(f"{point['change'][k]['diff']:+.4f} ± {point['change'][k]['se']:.4f}" for k in KEYS)
            lines.append(f"| {arm} | {point['step']} | {cells} |")
    for arm, v in result["arms"].items():
        moved = ", ".join(v["beyond_bar"]) or "nothing"
        lines.append(f"\n{arm}: beyond {result['null_bar']:g} s.e. at the end: {moved}; "
                     f"{v['samples_per_s']:.2f} samples/s, {v['wall_s']:.0f} s.")
    if "null_passes" in result:
        lines.append(f"\nNull control {'passes' if result['null_passes'] else 'FAILS'}: "
                     f"no teacher may move beyond {result['null_bar']:g} s.e. without the reward.")
    lines.append(f"\nPlot: {result['png']}")
    return "\n".join(lines)
