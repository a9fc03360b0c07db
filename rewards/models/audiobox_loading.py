"""Audiobox Aesthetics (pip `audiobox-aesthetics`) from a local checkpoint, and its windowed inference.

Two on-disk formats are read, both without the hub and without `audiobox_aesthetics.infer` (which
imports torchaudio):
- the released `checkpoint.pt` (a file): `{"state_dict": {"model.<key>": ...}, "model_cfg": {...},
  "target_transform": {axis: {"mean", "std"}}}`, read with `torch.load(weights_only=True)`;
- a Hugging Face model directory (`config.json` + `model.safetensors`, as in facebook/audiobox-aesthetics),
  read with the model class's own `from_pretrained(<local dir>)`.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from rewards.base import TeacherError
from rewards.models.audio_prep import fixed_windows, weighted_window_mean
from rewards.models.checkpoint_files import load_strict, load_weights_only, strip_prefix, unwrap_state_dict

AXES: tuple[str, ...] = ("CE", "CU", "PC", "PQ")
"""Content enjoyment, content usefulness, production complexity, production quality (1-10 scale)."""
SAMPLE_RATE = 16_000
"""Input rate of the model."""
WINDOW_S = 10.0
"""Window length and hop in seconds; the last window is zero-padded (and masked) to full length."""
MODEL_CFG_KEYS: tuple[str, ...] = ("proj_num_layer", "proj_ln", "proj_act_fn", "proj_dropout", "nth_layer",
                                   "use_weighted_layer_sum", "precision", "normalize_embed", "output_dim")
"""Constructor arguments of AesMultiOutput stored under the checkpoint's `model_cfg`."""


def load_audiobox(path: str, device: torch.device, owner: str):
    """An `AesMultiOutput` in eval mode on `device`, from a checkpoint file or a local HF directory.

    The model runs in float32: AesMultiOutput's `precision` setting never turns autocast on in
    audiobox-aesthetics 0.0.4 (it compares `str(torch.bfloat16)` with "bf16"), so it is not exposed.
    """
    try:
        from audiobox_aesthetics.model.aes import AesMultiOutput
    except Exception as err:
        raise TeacherError(f"{owner}: cannot import audiobox_aesthetics.model.aes ({type(err).__name__}: {err}); "
                           "pip install audiobox-aesthetics==0.0.4") from err
    if os.path.isdir(path):
        model = _from_hf_dir(AesMultiOutput, path, owner)
    else:
        model = _from_checkpoint_file(AesMultiOutput, path, owner)
    check_target_transform(model.target_transform, path, owner)
    return model.to(device).eval()


def _from_hf_dir(cls, path: str, owner: str):
    for name in ("config.json", "model.safetensors"):
        if not os.path.isfile(os.path.join(path, name)):
            raise TeacherError(f"{owner}: checkpoint directory '{path}' has no {name} (expected a Hugging Face "
                               "model directory like facebook/audiobox-aesthetics)")
    try:
        return cls.from_pretrained(path, local_files_only=True)
    except Exception as err:
        raise TeacherError(f"{owner}: cannot load the model directory '{path}': {type(err).__name__}: {err}") from err


def _from_checkpoint_file(cls, path: str, owner: str):
    ckpt = load_weights_only(path, owner)
    missing = [k for k in ("state_dict", "model_cfg", "target_transform") if k not in ckpt]
    if missing:
        raise TeacherError(f"{owner}: checkpoint '{path}' lacks {missing} (has {sorted(ckpt)}); expected Audiobox "
                           "Aesthetics' checkpoint.pt layout")
    cfg = {k: ckpt["model_cfg"][k] for k in MODEL_CFG_KEYS if k in ckpt["model_cfg"]}
    model = cls(**cfg, target_transform=ckpt["target_transform"])
    state = strip_prefix(unwrap_state_dict(ckpt, path, owner), "model.")
    load_strict(model, state, path, owner)
    return model


def check_target_transform(tt, path: str, owner: str) -> None:
    """Raise unless every axis has a finite `mean` and a positive `std` (the de-normalisation of the outputs)."""
    for axis in AXES:
        stats = (tt or {}).get(axis)
        ok = (isinstance(stats, dict) and np.isfinite(stats.get("mean", np.nan))
              and np.isfinite(stats.get("std", np.nan)) and stats["std"] > 0)
        if not ok:
            raise TeacherError(f"{owner}: checkpoint '{path}': target_transform['{axis}'] must hold a finite mean "
                               f"and a positive std, got {stats!r}")


@torch.no_grad()
def predict_axes(model, waves: Sequence[np.ndarray], batch_windows: int) -> dict[str, np.ndarray]:
    """Per axis, one score per waveform (1-10 scale): 10 s windows, averaged weighted by their valid length.

    waves: mono float32 waveforms at SAMPLE_RATE, each non-empty.
    """
    win = int(WINDOW_S * SAMPLE_RATE)
    parts = [fixed_windows(np.asarray(w, dtype=np.float32), win, win) for w in waves]
    wins = np.concatenate([p[0] for p in parts])
    lengths = np.concatenate([p[1] for p in parts])
    owners = np.concatenate([np.full(len(p[1]), i) for i, p in enumerate(parts)])
    device = next(model.parameters()).device
    raw = {a: [] for a in AXES}
    for s in range(0, len(wins), batch_windows):
        wav = torch.from_numpy(wins[s : s + batch_windows]).unsqueeze(1).to(device)
        mask = (torch.arange(win)[None, :] < torch.from_numpy(lengths[s : s + batch_windows])[:, None]).unsqueeze(1)
        preds = model({"wav": wav, "mask": mask.to(device)})
        for a in AXES:
            raw[a].append(preds[a].float().cpu().numpy())
    out = {}
    for a in AXES:
        stats = model.target_transform[a]
        scores = np.concatenate(raw[a]) * stats["std"] + stats["mean"]
        out[a] = weighted_window_mean(scores, lengths, owners, len(waves))
    return out
