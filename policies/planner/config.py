"""Typed configuration of the CoT planner (video in, four CoT modules out) and its training."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class PlannerConfig:
    """Which planner writes CoT plans for `generate`, `eval plans=planner` and `data annotate`."""

    backend: str = "synth"
    """`synth`: the small frame CNN PrismRL trains on SynthScenes (`prismrl train-planner`);
    `mllm`: a transformers causal LM loaded from `mllm_path`, prompted with `prompt_template`."""
    checkpoint: Optional[str] = None
    """synth: directory of a trained planner (planner.json + model.safetensors); None = no planner."""
    mllm_path: Optional[str] = None
    """mllm: local directory of a transformers model and tokenizer (save_pretrained layout)."""
    prompt_template: str = ""
    """mllm: prompt with a `{frames}` placeholder for the per-frame visual summary; empty = the
    built-in four-module template (policies.planner.template.DEFAULT_TEMPLATE)."""
    max_new_tokens: int = 160
    """mllm: most tokens generated per plan."""
    max_frames: int = 16
    """mllm: frames described in the prompt (evenly spaced over the clip)."""
    device: str = "auto"
    """Torch device of the planner: `auto` (cuda when available), `cpu`, `cuda`, `cuda:1`..."""
    batch_size: int = 4
    """Videos planned per model call."""
    replicas: int = 1
    """`prismrl data annotate`: planner actors in the Ray pool."""
    num_cpus: float = 1.0
    """CPUs reserved per planner actor."""
    num_gpus: float = 0.0
    """GPUs reserved per planner actor (fractions allowed)."""
    train_steps: int = 1500
    """`prismrl train-planner`: optimizer steps of the synth planner."""
    train_batch_frames: int = 128
    """Frames per training step of the synth planner."""
    train_lr: float = 5e-3
    """AdamW learning rate of the synth planner."""
    train_time_budget_s: float = 100.0
    """Stop training the synth planner after this many seconds (0 = no limit)."""
    frame_size: int = 32
    """synth: frames are resized to frame_size x frame_size before the CNN (architecture field)."""
    channels: int = 32
    """synth: conv channels of the CNN (architecture field)."""
