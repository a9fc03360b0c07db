"""CoT planners: silent video in, the four PrismAudio CoT modules out.

`build_planner(cfg)` gives the backend `planner.backend` names: `synth` (a small frame CNN trained on
SynthScenes, policies.planner.synth) or `mllm` (a local transformers causal LM, policies.planner.mllm).
"""
from __future__ import annotations

from policies.planner.base import Planner, Video, complete_plan, resolve_device
from policies.planner.config import PlannerConfig

BACKENDS = ("synth", "mllm")
"""Planner backends `build_planner` knows."""


def build_planner(cfg: PlannerConfig) -> Planner:
    """The planner `cfg.backend` names, loaded from its local checkpoint / model directory."""
    if cfg.backend == "synth":
        from policies.planner.synth import load_synth_planner

        if not cfg.checkpoint:
            raise ValueError("planner.checkpoint: the synth planner needs a checkpoint directory "
                             "(train one with `prismrl train-planner`)")
        return load_synth_planner(cfg.checkpoint, resolve_device(cfg.device))
    if cfg.backend == "mllm":
        from policies.planner.mllm import MllmPlanner

        return MllmPlanner(cfg)
    raise ValueError(f"planner.backend: unknown '{cfg.backend}'; available: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "Planner", "PlannerConfig", "Video", "build_planner", "complete_plan"]
