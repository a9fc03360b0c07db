"""`prismrl pretrain [CONFIG] [key=value ...]`: supervised flow-matching pretraining of the policy.

Loss: MSE between the predicted velocity and noise - x0 at t ~ logit-normal (sigmoid of a
standard normal), x_t = (1 - t) x0 + t * noise, the codec's per-frame parameter channels weighted by
pretrain.param_loss_weight; conditions dropped with policy.cond_dropout
(for classifier-free guidance). AdamW with linear warm-up and cosine decay (cfg.pretrain).
Audio is randomly cropped (or zero-padded) to policy.duration_s with the matching frames, and
mirrored left-right with probability 1/2 (pretrain.mirror).
Before the first step the latent codec is fitted to the training audio (projection and
per-channel statistics, saved with the weights).

Writes the checkpoint to policy.checkpoint if set, else <run_dir>/checkpoint, every val_every
steps and at the end (incl. optimizer state and step); rerun with the same output to resume.
Stops at pretrain.steps or after pretrain.time_budget_s. Metrics: <run_dir>/metrics.jsonl
(one line per logged step) and <run_dir>/pretrain_summary.json.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from typing import Optional, Sequence

import numpy as np
import torch

from common.types import Clip
from orchestrator.config.argv import command_config
from orchestrator.config.schema import PrismConfig
from policies.checkpoint import load_policy, load_trainer_state, save_policy
from policies.crop import random_crop
from policies.mirror import mirror_clip
from policies.build import build_policy

log = logging.getLogger("prismrl.pretrain")

CODEC_FIT_CLIPS = 64
"""Training clips the latent codec is fitted on."""
VAL_T = (0.1, 0.3, 0.5, 0.7, 0.9)
"""Timesteps of the validation loss (fixed, so values are comparable across steps)."""


def lr_at(step: int, base_lr: float, warmup: int, total: int) -> float:
    """Linear warm-up to base_lr over `warmup` steps, then cosine decay to 10% at `total`."""
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def output_dir(cfg: PrismConfig) -> str:
    """Where the pretrained checkpoint goes."""
    return cfg.policy.checkpoint or os.path.join(cfg.run_dir, "checkpoint")


class _Batcher:
    """Cropped clips -> (prepared conditions, latents) for a policy.

    A clip exactly `duration_s` long always crops to itself, so its latent (and its mirror's) is
    encoded once and kept: the codec is fixed once fitted, and encoding is a third of a demo step."""

    def __init__(self, policy, clips: Sequence[Clip], duration_s: float, mirror: bool = False):
        for c in clips:
            if c.sample_rate != policy.sample_rate:
                raise ValueError(f"clip '{c.clip_id}' is {c.sample_rate} Hz; policy.sample_rate is {policy.sample_rate}")
        self.policy, self.clips, self.duration, self.mirror = policy, list(clips), duration_s, mirror
        self.latents: dict[tuple[int, bool], torch.Tensor] = {}

    def batch(self, idx: Sequence[int], rng: np.random.Generator) -> tuple[dict, torch.Tensor]:
        crops = [random_crop(self.clips[i], self.duration, rng) for i in idx]
        flips = [False] * len(crops)
        if self.mirror:
            flips = [bool(f) for f in rng.random(len(crops)) < 0.5]
            crops = [mirror_clip(c) if flip else c for c, flip in zip(crops, flips)]
        prepared = self.policy.prepare(crops)
        keys = [(int(i), f) if abs(self.clips[i].duration - self.duration) <= 1e-9 else None
                for i, f in zip(idx, flips)]
        return prepared, self._encode(crops, keys)

    def _encode(self, crops: Sequence[Clip], keys: Sequence[Optional[tuple[int, bool]]]) -> torch.Tensor:
        """Latents [B, F, C] of the crops, from `latents` where their key is kept there."""
        missing = [j for j, k in enumerate(keys) if k is None or k not in self.latents]
        fresh: dict[int, torch.Tensor] = {}
        if missing:
            audio = torch.from_numpy(np.stack([crops[j].audio for j in missing]))
            with torch.no_grad():
                for j, z in zip(missing, self.policy.encode_audio(audio)):
                    fresh[j] = z
                    if keys[j] is not None:
                        self.latents[keys[j]] = z
        return torch.stack([fresh[j] if j in fresh else self.latents[k] for j, k in enumerate(keys)])


def channel_weights(policy, param_weight: float, band_weight: Optional[float] = None) -> Optional[torch.Tensor]:
    """Per-latent-channel loss weights [C] (mean 1): the codec's per-frame parameter channels get
    `param_weight` times a source channel's, divided by the square of the channel's spread in latent
    units (`param_spreads`: a gate channel of +-2.5 would otherwise weigh 6x an ITD); the band-energy
    channels the codec names in `band_params` get `band_weight` instead (None: `param_weight`).
    None when every weight is 1 or the codec has no parameter channels."""
    codec = getattr(policy, "codec", None)
    params = getattr(codec, "param_channels", None)
    bands = set(getattr(codec, "band_params", ()))
    band_weight = param_weight if band_weight is None else band_weight
    if params is None or (param_weight == 1.0 and (not bands or band_weight == 1.0)):
        return None
    w = torch.ones(policy.latent_shape()[-1])
    spreads = torch.tensor(getattr(codec, "param_spreads", (1.0,) * len(w[params])), dtype=w.dtype)
    names = getattr(codec, "param_names", ())
    chosen = torch.tensor([float(band_weight if n in bands else param_weight) for n in names], dtype=w.dtype)
    w[params] = chosen / spreads.pow(2)
    return w / w.mean()


def flow_matching_loss(policy, prepared: dict, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                       drop: Optional[torch.Tensor] = None, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """MSE(v_pred(x_t, t), noise - x0) with conditions dropped where `drop` is True; `weights` [C]
    (mean 1) weight the latent channels."""
    cond = policy.encode_conditions(prepared)
    if drop is not None and bool(drop.any()):
        cond = policy.drop_conditions(cond, drop)
    tt = t.reshape(-1, *([1] * (x0.dim() - 1)))
    x_t = (1 - tt) * x0 + tt * noise
    err = (policy.velocity(x_t, t, cond) - (noise - x0)).pow(2)
    return (err * weights.to(err.dtype)).mean() if weights is not None else err.mean()


@torch.no_grad()
def validation_loss(policy, batcher: _Batcher, seed: int, batch_size: int,
                    weights: Optional[torch.Tensor] = None) -> float:
    """Mean conditional flow-matching loss over the validation clips at the fixed VAL_T timesteps."""
    was_training = policy.training
    policy.eval()
    rng = np.random.default_rng([seed, 7])
    gen = torch.Generator().manual_seed(seed + 7)
    total, count = 0.0, 0
    for s in range(0, len(batcher.clips), batch_size):
        idx = list(range(s, min(s + batch_size, len(batcher.clips))))
        prepared, x0 = batcher.batch(idx, rng)
        for tv in VAL_T:
            noise = torch.randn(x0.shape, generator=gen)
            t = torch.full((x0.shape[0],), tv)
            total += float(flow_matching_loss(policy, prepared, x0, t, noise, weights=weights)) * len(idx)
            count += len(idx)
    policy.train(was_training)
    return total / max(count, 1)


def pretrain_policy(cfg: PrismConfig, train: Sequence[Clip], val: Sequence[Clip]) -> dict:
    """Train on the given clips (resuming from the output checkpoint if it has trainer state)."""
    pc = cfg.pretrain
    if not train:
        raise ValueError("pretrain: no training clips")
    torch.set_num_threads(max(1, pc.torch_threads))
    out = output_dir(cfg)
    os.makedirs(cfg.run_dir, exist_ok=True)
    policy_cfg = dataclasses.replace(cfg.policy, checkpoint=None)
    state = load_trainer_state(out)
    torch.manual_seed(cfg.seed)
    if state is not None:
        policy = load_policy(out, expect=policy_cfg)
        step = int(state["step"])
        log.info("resuming pretraining from %s at step %d", out, step)
    else:
        policy = build_policy(policy_cfg)
        step = 0
        fit = [random_crop(c, policy_cfg.duration_s, np.random.default_rng([cfg.seed, 1, i]))
               for i, c in enumerate(train[:CODEC_FIT_CLIPS])]
        if pc.mirror:
            fit += [mirror_clip(c) for c in fit]
        kept = policy.codec.fit_stats(torch.from_numpy(np.stack([c.audio for c in fit])))
        log.info("latent codec fitted on %d clips: keeps %.1f%% of the audio energy", len(fit), 100 * kept)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=pc.lr, weight_decay=pc.weight_decay)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
    weights = channel_weights(policy, pc.param_loss_weight, pc.band_loss_weight)
    train_b = _Batcher(policy, train, policy_cfg.duration_s, mirror=pc.mirror)
    val_b = _Batcher(policy, list(val) or list(train[: pc.batch_size]), policy_cfg.duration_s)
    metrics_path = os.path.join(cfg.run_dir, "metrics.jsonl")
    history: list[dict] = []

    def checkpoint(at: int) -> None:
        save_policy(policy, policy_cfg, out, trainer_state={"step": at, "optimizer": opt.state_dict()})

    def record(entry: dict) -> None:
        history.append(entry)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    start_time, start_step = time.time(), step
    first_val = validation_loss(policy, val_b, cfg.seed, pc.batch_size, weights) if step == 0 else None
    if first_val is not None:
        record({"step": 0, "val_loss": first_val})
    bar = None
    if cfg.tracking.progress:
        from tqdm import tqdm

        bar = tqdm(total=pc.steps, initial=step, desc="pretrain", unit="step")
    policy.train()
    stopped_by = "steps"
    loss_ema = None
    while step < pc.steps:
        if pc.time_budget_s and time.time() - start_time >= pc.time_budget_s:
            stopped_by = "time_budget"
            break
        rng = np.random.default_rng([cfg.seed, 2, step])
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = rng.integers(0, len(train), size=pc.batch_size)
        prepared, x0 = train_b.batch(idx, rng)
        t = torch.sigmoid(torch.randn(x0.shape[0], generator=gen))
        noise = torch.randn(x0.shape, generator=gen)
        drop = torch.rand(x0.shape[0], generator=gen) < policy_cfg.cond_dropout
        for g in opt.param_groups:
            g["lr"] = lr_at(step, pc.lr, pc.warmup, pc.steps)
        loss = flow_matching_loss(policy, prepared, x0, t, noise, drop, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0))
        opt.step()
        step += 1
        loss_value = float(loss.detach())
        loss_ema = loss_value if loss_ema is None else 0.9 * loss_ema + 0.1 * loss_value
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss_ema:.4f}")
        entry = {"step": step, "loss": loss_value, "lr": opt.param_groups[0]["lr"], "grad_norm": grad_norm}
        if pc.val_every and step % pc.val_every == 0 and step < pc.steps:
            entry["val_loss"] = validation_loss(policy, val_b, cfg.seed, pc.batch_size, weights)
            checkpoint(step)
            log.info("pretrain step %d: loss %.4f, val_loss %.4f", step, loss_ema, entry["val_loss"])
        record(entry)
    if bar is not None:
        bar.close()
    final_val = validation_loss(policy, val_b, cfg.seed, pc.batch_size, weights)
    checkpoint(step)
    train_losses = [h["loss"] for h in history if "loss" in h]
    summary = {
        "steps": step,
        "steps_this_run": step - start_step,
        "stopped_by": stopped_by,
        "seconds": round(time.time() - start_time, 2),
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss_last": float(np.mean(train_losses[-10:])) if train_losses else None,
        "val_loss_initial": first_val,
        "val_loss": final_val,
        "checkpoint": out,
        "train_clips": len(train),
        "val_clips": len(val_b.clips),
    }
    record({"step": step, "val_loss": final_val})
    with open(os.path.join(cfg.run_dir, "pretrain_summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    log.info("pretrain done: %s", json.dumps(summary))
    return summary


def load_clips(cfg: PrismConfig) -> tuple[list[Clip], list[Clip]]:
    """(train, val) clips of cfg.data; a missing local SynthScenes manifest is generated first."""
    from orchestrator.data import storage
    from orchestrator.data.reader import ClipReader

    if not storage.exists(cfg.data.manifest, cfg.data.s3):
        from orchestrator.data.synth import write_synthscenes

        log.info("manifest %s missing: generating SynthScenes", cfg.data.manifest)
        write_synthscenes(storage.parent(cfg.data.manifest), cfg.data.synth, cfg.data.s3, progress=cfg.tracking.progress)
    reader = ClipReader(cfg.data)
    return reader.load_split("train"), reader.load_split("val")


def run_pretrain(cfg: PrismConfig) -> dict:
    """Pretrain the policy of `cfg` on its data set; returns the final metrics."""
    train, val = load_clips(cfg)
    return pretrain_policy(cfg, train, val)


def main(argv: list[str]) -> int:
    """Entry point of `prismrl pretrain [CONFIG] [key=value ...]`."""
    cfg = command_config(argv, "pretrain", __doc__)
    if cfg is None:
        return 0
    summary = run_pretrain(cfg)
    print(json.dumps(summary, indent=2))
    return 0
