"""`prismrl demo [CONFIG] [key=value ...]`: the laptop job, end to end on the CPU, no downloads.

1. SynthScenes demo set and its separate validation set (each generated once; reused when its manifest exists),
2. supervised pretraining of the small policy (reused when the checkpoint exists),
3. RL (`train.algorithm`: Fast-GRPO, or DiffusionNFT) on a local Ray with all four reward pools (signal
   backends) and 2 DeepSpeed ranks,
4. a summary: validation rewards before and after (ODE sampling, EMA weights), wall time, samples/s.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable

from orchestrator.config.argv import command_config
from orchestrator.config.schema import PrismConfig

log = logging.getLogger("prismrl.demo")


def ensure_demo_data(cfg: PrismConfig, progress: bool = True, say: Callable[[str], None] = print) -> list[str]:
    """Generate the training set at `data.manifest` (from `data.synth`) and, when `train.val_manifest`
    is set, the validation set there (from `data.val_synth`), each only when its local manifest is
    missing. Each set's line goes to `say` before its work starts; returns the lines."""
    from orchestrator.data.synth import write_synthscenes

    sets = [(cfg.data.manifest, cfg.data.synth, "data.synth", "SynthScenes")]
    if cfg.train.val_manifest:
        if cfg.data.val_synth.seed == cfg.data.synth.seed:
            raise ValueError(f"data.val_synth.seed = {cfg.data.val_synth.seed} is data.synth.seed: the validation "
                             f"set would repeat the training clips; give it another seed")
        sets.append((cfg.train.val_manifest, cfg.data.val_synth, "data.val_synth", "the validation set"))
    lines = []
    for manifest, synth, synth_key, what in sets:
        if manifest.startswith("s3://") or os.path.exists(manifest):
            lines.append(f"[1/3] reusing {what} at {manifest}")
            say(lines[-1])
            continue
        lines.append(f"[1/3] generating {what} ({synth.n} clips, seed {synth.seed}) into {os.path.dirname(manifest)}")
        say(lines[-1])
        write_synthscenes(os.path.dirname(manifest), synth, cfg.data.s3, progress=progress, config_key=synth_key)
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point of `prismrl demo` (and `make demo`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = command_config(argv, "demo", __doc__)
    if cfg is None:
        return 0
    t0 = time.perf_counter()
    ensure_demo_data(cfg, progress=cfg.tracking.progress)
    ckpt = cfg.policy.checkpoint
    if ckpt and not os.path.exists(ckpt):
        from orchestrator.training.pretrain import run_pretrain

        print(f"[2/3] pretraining the policy into {ckpt} (budget {cfg.pretrain.time_budget_s:.0f} s)")
        run_pretrain(cfg)
    else:
        print(f"[2/3] reusing the pretrained policy at {ckpt}")
    algorithm = "DiffusionNFT" if cfg.train.algorithm == "nft" else "Fast-GRPO"
    print(f"[3/3] {algorithm} on Ray: {cfg.grpo.steps} steps of {cfg.grpo.prompts_per_step} prompts x "
          f"{cfg.grpo.group_size} samples, {cfg.learner.num_ranks} DeepSpeed ZeRO-{cfg.learner.zero_stage} ranks")
    from orchestrator.training.train import run_training

    summary = run_training(cfg)
    before, after = summary["val_before"], summary["val_after"]
    print("\nvalidation (ODE, EMA weights), mean reward per teacher:")
    print(f"  {'':8s} " + " ".join(f"{k:>10s}" for k in before))
    print(f"  {'before':8s} " + " ".join(f"{v:10.4f}" for v in before.values()))
    print(f"  {'after':8s} " + " ".join(f"{v:10.4f}" for v in after.values()))
    change = summary["val_change"]
    print(f"  {'change':8s} " + " ".join(f"{change[k]['diff']:+10.4f}" for k in before))
    print(f"  {'± s.e.':8s} " + " ".join(f"{change[k]['se']:10.4f}" for k in before))
    print(f"  (after - before on each val clip, same noise; s.e. over the {change['total']['clips']} clips)")
    print(f"\ntrain steps {summary['steps']}, samples/s {summary['samples_per_s']:.2f}, "
          f"demo wall time {time.perf_counter() - t0:.0f} s")
    print(f"summary: {os.path.join(cfg.run_dir, 'summary.json')}")
    print(f"MLflow:  mlflow ui --backend-store-uri {summary['mlflow']['tracking_uri']}")
    return 0
