"""Test helpers for policy.kind=prismaudio: a reduced configuration of the same architecture,
reference-style cached-feature files and checkpoints written the way the reference writes them."""
from __future__ import annotations

import dataclasses
import json
import os
from collections import OrderedDict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from policies.config import PolicyConfig
from policies.prismaudio.config import OobleckShape, PrismAudioConfig

LAYOUT = "/work/shared/checkpoint-layouts/prismaudio.layout.json"
"""Names and shapes of the released prismaudio.ckpt in state_dict order (built from the reference with random weights)."""

REDUCED = {
    "embed_dim": 128, "depth": 2, "num_heads": 2, "io_channels": 8, "video_dim": 128, "text_dim": 128,
    "sync_dim": 128, "video_frames": 4, "sync_frames": 24, "text_tokens": 16,
}
"""A small PrismAudio: heads of 64 (the rotary part needs 32), 21 latent frames (~1 s at 44.1 kHz)."""
REDUCED_VAE = {"channels": 4, "multipliers": [1, 2, 2, 2, 2], "strides": [2, 4, 4, 8, 8], "latent_channels": 8}
"""A small Oobleck VAE with the released hop (2048 samples a frame)."""


def reduced_overrides() -> list[str]:
    """The reduced configuration as `key=value` overrides of a preset."""
    out = ["policy.kind=prismaudio", "policy.sample_rate=44100", "policy.duration_s=0.975"]
    out += [f"policy.prismaudio.{k}={v}" for k, v in REDUCED.items()]
    out += [f"policy.prismaudio.vae.{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in REDUCED_VAE.items()]
    return out


def reduced_config(**prismaudio) -> PolicyConfig:
    """PolicyConfig of the reduced model (fields of PrismAudioConfig may be overridden)."""
    pa_cfg = PrismAudioConfig(**{**REDUCED, **prismaudio}, vae=OobleckShape(**REDUCED_VAE))
    return PolicyConfig(kind="prismaudio", sample_rate=44100, duration_s=0.975, prismaudio=pa_cfg)


def random_features(pa_cfg: PrismAudioConfig, text_rows: int, seed: int) -> dict[str, np.ndarray]:
    """Random cached features of one clip in the reference's shapes for `pa_cfg`."""
    rng = np.random.default_rng(seed)
    return {
        "video_features": rng.standard_normal((pa_cfg.video_frames, pa_cfg.video_dim)).astype(np.float32),
        "text_features": rng.standard_normal((text_rows, pa_cfg.text_dim)).astype(np.float32),
        "sync_features": rng.standard_normal((pa_cfg.sync_frames, pa_cfg.sync_dim)).astype(np.float32),
    }


def write_reference_npz(path: str, clip_id: str, features: dict[str, np.ndarray], cot: str) -> None:
    """A `.npz` written as the reference's prismaudio_data_process.py does (np.savez; `latent` None in
    inference mode is an object array that only pickle could read)."""
    np.savez(path, id=clip_id, audio_path=f"audio/{clip_id}.wav", video_path=f"video/{clip_id}.mp4",
             caption_cot=cot, latent=None, global_video_features=features["video_features"].mean(0),
             global_text_features=features["text_features"].mean(0), **features)


def add_feature_column(manifest: str, pa_cfg: PrismAudioConfig, out: str | None = None) -> str:
    """Write a reference-style .npz per clip under <manifest dir>/features and a copy of the manifest
    with a `features_path` column; returns the new manifest's path."""
    root = os.path.dirname(os.path.abspath(manifest))
    os.makedirs(os.path.join(root, "features"), exist_ok=True)
    table = pq.read_table(manifest)
    paths = []
    for i, clip_id in enumerate(table.column("clip_id").to_pylist()):
        rel = f"features/{clip_id}.npz"
        feats = random_features(pa_cfg, text_rows=3 + i % (pa_cfg.text_tokens - 3), seed=i)
        write_reference_npz(os.path.join(root, rel), clip_id, feats, cot=f"Semantic: clip {clip_id}")
        paths.append(rel)
    out = out or os.path.join(root, "manifest_features.parquet")
    pq.write_table(table.append_column("features_path", pa.array(paths, pa.string())), out)
    return out


def save_reference_checkpoint(model: torch.nn.Module, path: str) -> str:
    """The model's flat state_dict saved as the reference saves prismaudio.ckpt (torch.save of an
    OrderedDict of float32 tensors, no prefix, buffers included)."""
    torch.save(OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items()), path)
    return path


def replace_prismaudio(cfg: PolicyConfig, **changes) -> PolicyConfig:
    """cfg with policy.prismaudio fields changed."""
    return dataclasses.replace(cfg, prismaudio=dataclasses.replace(cfg.prismaudio, **changes))
