"""The paper's two ablation tables (`prismrl bench ablation [CONFIG] [steps=N] [pretrained=PATH]`).

1. Teachers: from one pretrained policy, Fast-GRPO with each teacher alone (its weight 1, the others
   0) and with all four (rewards.weights as configured), grpo.steps=steps each; every resulting EMA
   policy (<run>/policy_ema) is evaluated with `prismrl eval`'s metrics on eval.split, next to the
   pretrained policy itself.
2. CoT: the all-four policy evaluated with no plan, a random plan (another clip's), a monolithic plan
   (the four modules as one undivided text) and the decomposed plan (the dataset's four modules).
Writes <run_dir>/ablation.json and <run_dir>/ablation.md (rows = variants, columns = the paper's
metrics). `run_ablations` is the function a benchmark driver calls.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import sys
from typing import Any

from common.types import TEACHERS
from orchestrator.config.argv import command_config, split_own
from orchestrator.config.schema import PrismConfig
from orchestrator.evaluation.evaluate import HEADLINE, load_eval_clips, run_eval

log = logging.getLogger("prismrl.ablation")

COT_VARIANTS = (("none", "No CoT"), ("random", "Random CoT"), ("monolithic", "Monolithic CoT"),
                ("dataset", "Decomposed CoT (four modules)"))
"""eval.plans value and row label of the CoT ablation."""


def variant_config(cfg: PrismConfig, name: str, only: str | None, pretrained: str, steps: int) -> PrismConfig:
    """cfg for the RL run of one teacher variant: `only` a teacher name (others weigh 0) or None (all)."""
    run = copy.deepcopy(cfg)
    run.run_dir = os.path.join(cfg.run_dir, f"rl-{name}")
    run.policy.checkpoint = pretrained
    run.grpo.steps = steps
    run.train.checkpoint_every = 0
    run.train.resume = "none"
    if only is not None:
        for t in TEACHERS:
            setattr(run.rewards.weights, t, 1.0 if t == only else 0.0)
    return run


def evaluate_checkpoint(cfg: PrismConfig, checkpoint: str, plans: str, clips, name: str) -> dict[str, float]:
    """eval metrics of one checkpoint with one kind of plan (no MLflow run of its own)."""
    ev = copy.deepcopy(cfg)
    ev.run_dir = os.path.join(cfg.run_dir, f"eval-{name}")
    ev.eval.checkpoint, ev.eval.baseline, ev.eval.plans = checkpoint, None, plans
    return run_eval(ev, clips=clips, track=False)["metrics"]["checkpoint"]


def run_ablations(cfg: PrismConfig, pretrained: str, steps: int) -> dict[str, Any]:
    """Both tables (see the module docstring); returns {'teachers': {row: metrics}, 'cot': {row: metrics}}."""
    from orchestrator.training.train import run_training

    clips = load_eval_clips(cfg)
    teachers = {"Pretrained (no RL)": evaluate_checkpoint(cfg, pretrained, "dataset", clips, "pretrained")}
    variants = [(t, t) for t in TEACHERS] + [("all", None)]
    ema = {}
    for name, only in variants:
        log.info("ablation: RL with %s", name)
        summary = run_training(variant_config(cfg, name, only, pretrained, steps))
        ema[name] = summary["policy_ema"]
        label = f"{name} only" if only else "all four teachers"
        teachers[label] = evaluate_checkpoint(cfg, ema[name], "dataset", clips, name)
    cot = {label: evaluate_checkpoint(cfg, ema["all"], plans, clips, f"all-{plans}") for plans, label in COT_VARIANTS}
    return {"steps": steps, "pretrained": pretrained, "split": cfg.eval.split, "clips": len(clips),
            "teachers": teachers, "cot": cot}


def table(rows: dict[str, dict[str, float]], title: str) -> str:
    """A markdown table: one row per variant, the paper's metric columns."""
    head = "| " + title + " | " + " | ".join(h for _, h in HEADLINE) + " |"
    lines = [head, "|---" * (len(HEADLINE) + 1) + "|"]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{m.get(k, float('nan')):.4f}" for k, _ in HEADLINE) + " |")
    return "\n".join(lines)


def write_report(result: dict[str, Any], run_dir: str) -> str:
    """ablation.json and ablation.md in run_dir; returns the markdown."""
    md = (f"# Ablations ({result['steps']} RL steps each, {result['clips']} `{result['split']}` clips)\n\n"
          f"## Teachers\n\n{table(result['teachers'], 'RL reward')}\n\n## CoT\n\n{table(result['cot'], 'Plan')}\n")
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "ablation.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(run_dir, "ablation.md"), "w") as f:
        f.write(md)
    return md


def main(argv: list[str]) -> int:
    """Entry point of `prismrl bench ablation [CONFIG] [steps=N] [pretrained=PATH] [key=value ...]`."""
    argv, extra = split_own(argv, ("steps", "pretrained"))
    cfg = command_config(argv, "ablation", __doc__)
    if cfg is None:
        return 0
    pretrained = extra.get("pretrained") or cfg.policy.checkpoint
    if not pretrained:
        print("prismrl bench ablation: needs pretrained=PATH or policy.checkpoint", file=sys.stderr)
        return 2
    result = run_ablations(cfg, pretrained, int(extra.get("steps", cfg.grpo.steps)))
    print(write_report(result, cfg.run_dir))
    return 0
