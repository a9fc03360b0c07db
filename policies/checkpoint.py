"""Policy checkpoints: a directory with model.safetensors (weights and codec statistics),
policy.json (the PolicyConfig) and, for resumable training, trainer_state.pt.

Local writes are atomic: everything goes to a temporary sibling directory that is renamed into
place, so a reader sees the old checkpoint or the new one, never half of one. `s3://` (or any
fsspec URL) is written through a local temporary directory and uploaded with policy.json last
(its presence marks a complete checkpoint). A frozen transformers text encoder is not saved:
loading rebuilds it from policy.text_encoder.path.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any, Optional

import torch
from safetensors.torch import load_file, save_file

from policies.base import Policy
from policies.config import PolicyConfig, TextEncoderConfig
from policies.registry import policy_class

WEIGHTS = "model.safetensors"
CONFIG = "policy.json"
TRAINER_STATE = "trainer_state.pt"

ARCHITECTURE_FIELDS = (
    "kind", "sample_rate", "patch", "codec", "latent_channels", "width", "depth", "heads", "video_size", "video_motion",
    "sync_stream",
)
"""PolicyConfig fields that must agree between a checkpoint and the config that loads it."""
LEGACY_CODEC = "stereo_band"
"""The codec of checkpoints whose policy.json predates `policy.codec`."""
LEGACY_SYNC_STREAM = False
"""`policy.sync_stream` of checkpoints whose policy.json predates the field."""
LEGACY_VIDEO_MOTION = False
"""`policy.video_motion` of checkpoints whose policy.json predates the field."""
TEXT_ARCHITECTURE_FIELDS = ("kind", "max_tokens_per_module", "vocab_size")
PRISMAUDIO_ARCHITECTURE_FIELDS = ("embed_dim", "depth", "num_heads", "io_channels", "video_dim", "text_dim",
                                  "sync_dim", "video_frames", "sync_frames", "vae")
"""policy.prismaudio fields that must agree between a checkpoint and the config that loads it."""


def _is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def config_from_dict(data: dict[str, Any]) -> PolicyConfig:
    """PolicyConfig from its JSON dict (unknown keys raise, naming them)."""
    data = dict(data)
    data.setdefault("codec", LEGACY_CODEC)
    data.setdefault("sync_stream", LEGACY_SYNC_STREAM)
    data.setdefault("video_motion", LEGACY_VIDEO_MOTION)
    text = TextEncoderConfig(**data.pop("text_encoder", {}))
    prismaudio = _prismaudio_config(data.pop("prismaudio", {}))
    known = {f.name for f in dataclasses.fields(PolicyConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{CONFIG}: unknown policy config key(s) {unknown}")
    return PolicyConfig(**data, text_encoder=text, prismaudio=prismaudio)


def _prismaudio_config(data: dict[str, Any]):
    """PrismAudioConfig from its JSON dict (policy.json files written before it existed have none)."""
    from policies.prismaudio.config import OobleckShape, PrismAudioConfig

    data = dict(data)
    vae = OobleckShape(**data.pop("vae", {}))
    return PrismAudioConfig(**data, vae=vae)


def _write_local(policy: Policy, cfg: PolicyConfig, out: str, trainer_state: Optional[dict]) -> None:
    state = policy.trainable_state_dict() if hasattr(policy, "trainable_state_dict") else policy.state_dict()
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, os.path.join(out, WEIGHTS))
    if trainer_state is not None:
        torch.save(trainer_state, os.path.join(out, TRAINER_STATE))
    with open(os.path.join(out, CONFIG), "w") as f:
        json.dump(dataclasses.asdict(cfg), f, indent=2)


def save_policy(policy: Policy, cfg: PolicyConfig, directory: str, trainer_state: Optional[dict] = None) -> str:
    """Write a checkpoint of `policy` (built from `cfg`) to `directory` (local or s3://); returns it.

    trainer_state: optional dict of tensors and plain values (optimizer state, step, ...), saved
    with torch.save and read back with weights_only=True.
    """
    if _is_remote(directory):
        import fsspec

        fs, root = fsspec.core.url_to_fs(directory)
        with tempfile.TemporaryDirectory() as tmp:
            _write_local(policy, cfg, tmp, trainer_state)
            fs.makedirs(root, exist_ok=True)
            names = [n for n in (WEIGHTS, TRAINER_STATE) if os.path.exists(os.path.join(tmp, n))]
            for name in names + [CONFIG]:
                fs.put_file(os.path.join(tmp, name), f"{root.rstrip('/')}/{name}")
        return directory
    directory = directory[len("file://"):] if directory.startswith("file://") else directory
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.tmp-", dir=parent)
    try:
        _write_local(policy, cfg, tmp, trainer_state)
        old = None
        if os.path.exists(directory):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(directory)}.old-", dir=parent)
            os.rmdir(old)
            os.rename(directory, old)
        os.rename(tmp, directory)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _local_copy(directory: str, tmp: str) -> str:
    """A local directory holding the checkpoint files (downloads remote ones into tmp)."""
    if not _is_remote(directory):
        local = directory[len("file://"):] if directory.startswith("file://") else directory
        if not os.path.isfile(os.path.join(local, CONFIG)):
            raise FileNotFoundError(f"policy checkpoint '{directory}': no {CONFIG} (not a complete checkpoint)")
        return local
    import fsspec

    fs, root = fsspec.core.url_to_fs(directory)
    if not fs.exists(f"{root.rstrip('/')}/{CONFIG}"):
        raise FileNotFoundError(f"policy checkpoint '{directory}': no {CONFIG} (not a complete checkpoint)")
    for name in (CONFIG, WEIGHTS, TRAINER_STATE):
        if fs.exists(f"{root.rstrip('/')}/{name}"):
            fs.get_file(f"{root.rstrip('/')}/{name}", os.path.join(tmp, name))
    return tmp


def _merge_expected(saved: PolicyConfig, expect: PolicyConfig, directory: str) -> PolicyConfig:
    diffs = [f"{k}: checkpoint {getattr(saved, k)!r} vs config {getattr(expect, k)!r}"
             for k in ARCHITECTURE_FIELDS if getattr(saved, k) != getattr(expect, k)]
    diffs += [f"text_encoder.{k}: checkpoint {getattr(saved.text_encoder, k)!r} vs config "
              f"{getattr(expect.text_encoder, k)!r}"
              for k in TEXT_ARCHITECTURE_FIELDS if getattr(saved.text_encoder, k) != getattr(expect.text_encoder, k)]
    if saved.kind == "prismaudio":
        diffs += [f"prismaudio.{k}: checkpoint {getattr(saved.prismaudio, k)!r} vs config {getattr(expect.prismaudio, k)!r}"
                  for k in PRISMAUDIO_ARCHITECTURE_FIELDS if getattr(saved.prismaudio, k) != getattr(expect.prismaudio, k)]
    if diffs:
        raise ValueError(f"policy checkpoint '{directory}' does not match policy config: " + "; ".join(diffs))
    return dataclasses.replace(expect, checkpoint=directory)


def load_policy(directory: str, expect: Optional[PolicyConfig] = None) -> Policy:
    """The policy saved in `directory` (local or s3://), on the CPU.

    expect: the config asking for it; its architecture must match the checkpoint's and its
    run-time fields (duration, video fps, dropout, text encoder path) are used.
    """
    with tempfile.TemporaryDirectory() as tmp:
        local = _local_copy(directory, tmp)
        with open(os.path.join(local, CONFIG)) as f:
            saved = config_from_dict(json.load(f))
        cfg = _merge_expected(saved, expect, directory) if expect is not None else dataclasses.replace(saved, checkpoint=directory)
        weights = os.path.join(local, WEIGHTS)
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"policy checkpoint '{directory}': missing {WEIGHTS}")
        state = load_file(weights)
    if cfg.kind == "prismaudio":  # the checkpoint holds every weight: skip reading the released files first
        cfg = dataclasses.replace(cfg, prismaudio=dataclasses.replace(cfg.prismaudio, weights=None, vae_weights=None))
    policy = policy_class(cfg.kind)(cfg)
    result = policy.load_state_dict(state, strict=False)
    frozen = tuple("text." + p for p in policy.text.frozen_prefixes()) if hasattr(policy, "text") else ()
    missing = [k for k in result.missing_keys if not (frozen and k.startswith(frozen))]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"policy checkpoint '{directory}': weights do not fit the model "
            f"(missing {missing[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
    return policy


def load_trainer_state(directory: str) -> Optional[dict]:
    """trainer_state.pt of a checkpoint (None when it has none); loaded with weights_only=True."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = _local_copy(directory, tmp)
        except FileNotFoundError:
            return None
        path = os.path.join(local, TRAINER_STATE)
        if not os.path.isfile(path):
            return None
        return torch.load(path, map_location="cpu", weights_only=True)


def policy_config_of(directory: str) -> PolicyConfig:
    """The PolicyConfig stored in a checkpoint directory."""
    with tempfile.TemporaryDirectory() as tmp:
        local = _local_copy(directory, tmp)
        with open(os.path.join(local, CONFIG)) as f:
            return config_from_dict(json.load(f))
