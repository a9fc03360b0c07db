"""The clips a training run trains on and the clips it validates on, and the check that they are disjoint.

Training clips are `data.manifest`'s `train` split. Validation clips are `train.val_split` of
`train.val_manifest` (default: the same manifest's `val` split), the first `train.val_clips` of them.
A validation set from another manifest (another SynthScenes seed, another corpus) can be far larger
than the training manifest's val split without taking a clip from training.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from orchestrator.config.schema import PrismConfig
from orchestrator.data import storage
from orchestrator.data.reader import ClipReader


@dataclass
class ClipSets:
    """Readers and clip ids of a run's training and validation clips."""

    train_reader: ClipReader
    """Reader of `data.manifest`."""
    train_ids: list[str]
    """Its `train` split, in manifest order."""
    val_reader: ClipReader
    """Reader of the validation manifest (the same object as `train_reader` when it is `data.manifest`)."""
    val_ids: list[str]
    """The validated clips, in manifest order, at most `train.val_clips`."""


def media_urls(reader: ClipReader, clip_ids: list[str]) -> dict[str, str]:
    """Resolved video and audio URL of each clip -> its clip id (no media decoded)."""
    out: dict[str, str] = {}
    for cid in clip_ids:
        row = reader.row(cid)
        for key in ("video_path", "audio_path"):
            url = storage.join(reader.root, row[key])
            out[url if "://" in url else os.path.realpath(url)] = cid
    return out


def training_clip_sets(cfg: PrismConfig) -> ClipSets:
    """The run's clip sets. Raises ValueError naming the manifest and split when no validation clip is
    left, or naming the clips when a validation clip is also a training clip (same clip id, or the
    same video or audio file)."""
    train_reader = ClipReader(cfg.data)
    train_ids = train_reader.clip_ids("train")
    source = cfg.train.val_manifest or cfg.data.manifest
    split = cfg.train.val_split
    val_reader = (ClipReader(dataclasses.replace(cfg.data, manifest=cfg.train.val_manifest))
                  if cfg.train.val_manifest else train_reader)
    val_ids = val_reader.clip_ids(split)[: cfg.train.val_clips]
    if not val_ids:
        raise ValueError(f"{source}: the '{split}' split is empty; validation needs clips "
                         f"(train.val_manifest, train.val_split)")
    shared = sorted(set(val_ids) & set(train_ids))
    if not shared:
        train_media = media_urls(train_reader, train_ids)
        shared = sorted({f"{cid} ({url} is also training clip {train_media[url]})"
                         for url, cid in media_urls(val_reader, val_ids).items() if url in train_media})
    if shared:
        raise ValueError(f"validation clips of {source} (split '{split}') are also training clips of "
                         f"{cfg.data.manifest}: {', '.join(shared[:5])}{' ...' if len(shared) > 5 else ''} "
                         f"({len(shared)} in all); validate on clips the run does not train on")
    return ClipSets(train_reader, train_ids, val_reader, val_ids)
