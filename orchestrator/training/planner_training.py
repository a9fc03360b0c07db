"""`prismrl train-planner [CONFIG] [key=value ...]`: train the `synth` CoT planner on SynthScenes.

Targets come from the manifest's scene metadata (objects with class and x at the first and last
frame, event frames and classes): per frame and class, a Gaussian bump at the object's x and a 1 at
the onset frame (policies.planner.synth_net.frame_targets). AdamW on random frames of the train
split for planner.train_steps steps or planner.train_time_budget_s seconds; then the val split is
planned and graded against its ground-truth CoT (policies.planner.facts.plan_accuracy).

Writes the planner to planner.checkpoint if set, else <run_dir>/planner, and
<run_dir>/planner_summary.json. Use it with `planner.checkpoint=DIR` in generate / eval.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Sequence

import numpy as np
import torch

from common.soundclasses import SOUND_CLASSES
from common.types import Clip
from orchestrator.config.argv import command_config
from orchestrator.config.schema import PrismConfig
from policies.planner.config import PlannerConfig
from policies.planner.facts import mean_accuracy, plan_accuracy
from policies.planner.synth import SynthPlanner, save_synth_planner
from policies.planner.synth_net import FrameEventNet, frame_pairs, frame_targets, planner_loss, resize_frames

log = logging.getLogger("prismrl.plan_training")


def scene_tracks(clip: Clip, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(centre (x, y) per frame [T, K, 2] as fractions of width and height, NaN where class k is not on
    screen; onset [T, K] bool) from a SynthScenes clip's metadata (objects sit in lane rows:
    y = (lane + 0.5) / max(#objects, 2)); KeyError naming the clip when the metadata lacks them."""
    t_len, k_len = clip.frames.shape[0], len(classes)
    try:
        objects, event_frames, event_classes = clip.meta["objects"], clip.meta["event_frames"], clip.meta["event_classes"]
    except KeyError as e:
        raise KeyError(f"clip '{clip.clip_id}': metadata has no {e} (the synth planner trains on SynthScenes)") from None
    x = np.full((t_len, k_len, 2), np.nan)
    lanes = max(len(objects), 2)
    for obj in objects:
        k = classes.index(obj["class"])
        x[:, k, 0] = np.linspace(obj["x_start"], obj["x_end"], t_len)
        x[:, k, 1] = (obj["lane"] + 0.5) / lanes
    onset = np.zeros((t_len, k_len), dtype=bool)
    for frame, name in zip(event_frames, event_classes):
        if frame < t_len:
            onset[frame, classes.index(name)] = True
    return x, onset


class FrameSet:
    """Network inputs and targets of every frame of a clip list (inputs kept in float16)."""

    def __init__(self, clips: Sequence[Clip], classes: Sequence[str], frame_size: int):
        inputs, presence, onset = [], [], []
        for clip in clips:
            inputs.append(frame_pairs(resize_frames(clip.frames, frame_size)).half())
            p, o = frame_targets(*scene_tracks(clip, classes), frame_size // 4)
            presence.append(torch.from_numpy(p))
            onset.append(torch.from_numpy(o))
        self.inputs, self.presence, self.onset = torch.cat(inputs), torch.cat(presence), torch.cat(onset)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.inputs[idx].float(), self.presence[idx], self.onset[idx]


def evaluate_planner(planner: SynthPlanner, clips: Sequence[Clip], tol_s: float = 0.1) -> dict[str, float]:
    """Mean per-module plan accuracy of the planner on clips, against their CoT."""
    plans = planner.plan_batch([(c.frames, c.fps) for c in clips])
    return mean_accuracy([plan_accuracy(p, c.cot, tol_s) for p, c in zip(plans, clips)])


def train_synth_planner(cfg: PlannerConfig, train: Sequence[Clip], val: Sequence[Clip], out_dir: str,
                        seed: int = 0, progress: bool = False) -> dict:
    """Train FrameEventNet on the train clips, save it to out_dir, grade it on val; returns a summary."""
    if not train:
        raise ValueError("train-planner: the train split has no clips")
    classes = list(SOUND_CLASSES)
    torch.manual_seed(seed)
    data = FrameSet(train, classes, cfg.frame_size)
    net = FrameEventNet(len(classes), cfg.frame_size, cfg.channels)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.train_lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    start, step, losses = time.perf_counter(), 0, []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.train_steps, desc="train-planner", unit="step")
    net.train()
    while step < cfg.train_steps:
        if cfg.train_time_budget_s and time.perf_counter() - start >= cfg.train_time_budget_s:
            break
        for g in opt.param_groups:  # cosine decay to 10%
            g["lr"] = cfg.train_lr * (0.1 + 0.45 * (1 + np.cos(np.pi * step / max(cfg.train_steps, 1))))
        idx = torch.randint(len(data), (min(cfg.train_batch_frames, len(data)),), generator=gen)
        loss = planner_loss(net, *data.batch(idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    if bar is not None:
        bar.close()
    train_s = time.perf_counter() - start
    net.eval()
    save_synth_planner(net, classes, out_dir, extra={"train_steps": step, "train_frames": len(data)})
    planner = SynthPlanner(net, classes)
    summary = {
        "checkpoint": out_dir,
        "steps": step,
        "train_s": round(train_s, 2),
        "train_clips": len(train),
        "train_frames": len(data),
        "loss_first": losses[0] if losses else None,
        "loss_last": float(np.mean(losses[-20:])) if losses else None,
        "val_clips": len(val),
        "val_accuracy": evaluate_planner(planner, val) if val else {},
    }
    log.info("synth planner: %s", json.dumps(summary))
    return summary


def output_dir(cfg: PrismConfig) -> str:
    """Where the trained planner goes."""
    return cfg.planner.checkpoint or os.path.join(cfg.run_dir, "planner")


def main(argv: list[str]) -> int:
    """Entry point of `prismrl train-planner [CONFIG] [key=value ...]`."""
    from orchestrator.training.pretrain import load_clips

    cfg = command_config(argv, "train-planner", __doc__)
    if cfg is None:
        return 0
    torch.set_num_threads(max(1, cfg.pretrain.torch_threads))
    train, val = load_clips(cfg)
    os.makedirs(cfg.run_dir, exist_ok=True)
    summary = train_synth_planner(cfg.planner, train, val, output_dir(cfg), cfg.seed, cfg.tracking.progress)
    with open(os.path.join(cfg.run_dir, "planner_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    print(f"use it with: planner.checkpoint={summary['checkpoint']}")
    return 0
