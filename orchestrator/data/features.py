"""Cached generator features per clip: the manifest's optional `features_path` column.

A cell points (relative to the manifest, or absolute, or s3://) at one file per clip, read through
the same storage layer as the media:
- `.npz` as PrismAudio's `data_utils/prismaudio_data_process.py` writes it: `text_features`
  [L, 1024] (T5-Gemma on the CoT), `video_features` [36, 1024] (VideoPrism), `sync_features`
  [216, 768] (Synchformer), and `id`, `caption_cot`, `audio_path`, `video_path`, `latent`, global
  embeddings. It is opened with allow_pickle=False: an entry that needs pickle (the reference
  writes `None` as an object array, e.g. `latent` in inference mode) is left out, never unpickled.
- `.safetensors` with the same tensor names (strings cannot be stored there).
Every feature in `REQUIRED` must be present, 2-D, non-empty and numeric; a problem raises
`BadClipError` naming the clip, the file and the key. The policy checks the exact shapes it needs
(PrismAudio: widths 1024, 1024, 768 and 36 video, 216 sync rows for 9 s) and names the clip too.
"""
from __future__ import annotations

import io
import zipfile
from typing import Any

import numpy as np

FEATURES_COLUMN = "features_path"
"""Optional manifest column: path of the clip's cached-feature file."""

REQUIRED: tuple[str, ...] = ("video_features", "text_features", "sync_features")
"""Features every file must hold (PrismAudio's)."""

STRINGS = ("id", "caption_cot", "audio_path", "video_path")
"""Text entries kept as Python strings when present."""


class FeatureFileError(ValueError):
    """A feature file that cannot be used; `key` names the entry at fault ('' for the whole file)."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{'key ' + repr(key) + ': ' if key else ''}{reason}")
        self.key = key


def _read_npz(data: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise FeatureFileError("", f"not a readable .npz file ({e})") from None
    with npz:
        for key in npz.files:
            try:
                value = npz[key]
            except ValueError:  # an object array (None, dict...): would need pickle
                continue
            out[key] = str(value) if key in STRINGS and value.dtype.kind in "US" else value
    return out


def _read_safetensors(data: bytes) -> dict[str, Any]:
    from safetensors.numpy import load

    try:
        return dict(load(data))
    except Exception as e:  # noqa: BLE001 - any parse failure means a corrupt file
        raise FeatureFileError("", f"not a readable .safetensors file ({type(e).__name__}: {e})") from None


def read_entries(data: bytes, url: str) -> dict[str, Any]:
    """Every readable entry of a feature file (by extension of `url`), nothing checked."""
    if url.endswith(".safetensors"):
        return _read_safetensors(data)
    if url.endswith(".npz"):
        return _read_npz(data)
    raise FeatureFileError("", "unknown feature file type (expected .npz or .safetensors)")


def parse_features(data: bytes, url: str) -> dict[str, Any]:
    """The entries of a feature file (by extension of `url`), with `REQUIRED` checked for presence,
    rank and numeric type; those come back as float32."""
    out = read_entries(data, url)
    for key in REQUIRED:
        if key not in out:
            raise FeatureFileError(key, f"missing (the file has {sorted(out)})")
        arr = np.asarray(out[key])
        if arr.dtype.kind not in "fiu":
            raise FeatureFileError(key, f"has dtype {arr.dtype}, expected numbers")
        if arr.ndim != 2 or 0 in arr.shape:
            raise FeatureFileError(key, f"has shape {list(arr.shape)}, expected [rows, width]")
        out[key] = arr.astype(np.float32, copy=False)
    return out
