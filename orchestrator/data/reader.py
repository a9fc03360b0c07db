"""ClipReader: the manifest and decoded clips (frames, stereo audio, CoT, metadata), local or s3://.

With the optional `features_path` column, each clip also gets its cached generator features
(`Clip.features`, see `orchestrator.data.features`); a bad feature file is a bad clip.

Every problem with a clip (missing or corrupt media, a sample rate or frame count that differs
from the manifest, mono audio) raises BadClipError naming the clip id and the file. With
`data.on_bad_clip=skip` the clip is also logged as a warning and counted in `reader.skipped`,
and `load_split`/`load_many` leave it out instead of raising. A manifest with a wrong schema raises ManifestError naming its path and column.
"""
from __future__ import annotations

import io
import json
import logging
from typing import Any, Iterable

import av
import numpy as np
import pyarrow as pa
import soundfile as sf

from common.types import COT_MODULES, Clip
from orchestrator.data import storage
from orchestrator.data.config import DataConfig
from orchestrator.data.features import FEATURES_COLUMN, FeatureFileError, parse_features
from orchestrator.data.manifest import ManifestError, from_parquet_bytes, validate_rows, validate_schema

log = logging.getLogger(__name__)


class BadClipError(ValueError):
    """A clip whose media cannot be used; `clip_id` and `path` name it."""

    def __init__(self, clip_id: str, path: str, reason: str):
        super().__init__(f"clip '{clip_id}' ({path}): {reason}")
        self.clip_id, self.path, self.reason = clip_id, path, reason


def decode_video(data: bytes) -> tuple[np.ndarray, float]:
    """(frames uint8 [T, H, W, 3] RGB, fps) of an encoded video."""
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        raise ValueError("the video has no frames")
    return np.stack(frames), fps


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """(audio float32 [C, N], sample rate) of an encoded wav/flac/ogg file."""
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return np.ascontiguousarray(samples.T), int(rate)


class ClipReader:
    """Reads a manifest and decodes its clips on demand (cached when `cache_decoded`)."""

    def __init__(self, data_cfg: DataConfig):
        self.cfg = data_cfg
        self.path = data_cfg.manifest
        self.root = storage.parent(self.path)
        try:
            raw = storage.read_bytes(self.path, data_cfg.s3)
        except FileNotFoundError:
            raise ManifestError(
                f"manifest {self.path} does not exist (run `prismrl data synth` or set data.manifest)"
            ) from None
        self.manifest: pa.Table = from_parquet_bytes(raw, self.path)
        validate_schema(self.manifest, self.path)
        validate_rows(self.manifest, self.path)
        ids = self.manifest.column("clip_id").to_pylist()
        self._row_of = {clip_id: i for i, clip_id in enumerate(ids)}
        self._split_of = dict(zip(ids, self.manifest.column("split").to_pylist()))
        self._cache: dict[str, Clip] = {}
        self.skipped: dict[str, str] = {}
        """clip_id -> reason, for every clip left out under on_bad_clip=skip."""

    def __len__(self) -> int:
        return self.manifest.num_rows

    def clip_ids(self, split: str | None = None) -> list[str]:
        """Clip ids of a split (all when None) in manifest order, without clips already skipped."""
        return [c for c, s in self._split_of.items() if (split is None or s == split) and c not in self.skipped]

    def row(self, clip_id: str) -> dict[str, Any]:
        """The manifest row of a clip as a dict (no media decoded)."""
        if clip_id not in self._row_of:
            raise KeyError(f"clip '{clip_id}' is not in manifest {self.path}")
        return self.manifest.slice(self._row_of[clip_id], 1).to_pylist()[0]

    def load(self, clip_id: str) -> Clip:
        """The decoded clip; a bad clip raises BadClipError. Under on_bad_clip=skip the clip is also
        logged as a warning, recorded in `skipped` and left out of `clip_ids`; `load_many` and
        `load_split` then pass over it."""
        if clip_id in self._cache:
            return self._cache[clip_id]
        try:
            clip = self._decode(self.row(clip_id))
        except BadClipError as e:
            if self.cfg.on_bad_clip == "skip" and clip_id not in self.skipped:
                self.skipped[clip_id] = str(e)
                log.warning("skipping bad clip: %s", e)
            raise
        if self.cfg.cache_decoded:
            self._cache[clip_id] = clip
        return clip

    def _load_or_skip(self, clip_id: str) -> Clip | None:
        try:
            return self.load(clip_id)
        except BadClipError:
            if self.cfg.on_bad_clip != "skip":
                raise
            return None

    def load_many(self, clip_ids: Iterable[str]) -> list[Clip]:
        """Decoded clips in the given order, bad ones left out under on_bad_clip=skip."""
        return [c for c in (self._load_or_skip(i) for i in clip_ids) if c is not None]

    def load_split(self, split: str, limit: int | None = None) -> list[Clip]:
        """Up to `limit` decoded clips of a split (all when None), in manifest order."""
        out: list[Clip] = []
        for clip_id in self.clip_ids(split):
            if limit is not None and len(out) >= limit:
                break
            clip = self._load_or_skip(clip_id)
            if clip is not None:
                out.append(clip)
        return out

    # -----------------------------------------------------------------------------------

    def _read(self, clip_id: str, url: str) -> bytes:
        try:
            return storage.read_bytes(url, self.cfg.s3)
        except FileNotFoundError:
            raise BadClipError(clip_id, url, "media file is missing") from None
        except OSError as e:
            raise BadClipError(clip_id, url, f"media file cannot be read: {e}") from None

    def _decode(self, row: dict[str, Any]) -> Clip:
        clip_id = row["clip_id"]
        video_url = storage.join(self.root, row["video_path"])
        audio_url = storage.join(self.root, row["audio_path"])
        try:
            frames, fps = decode_video(self._read(clip_id, video_url))
        except BadClipError:
            raise
        except Exception as e:  # noqa: BLE001 - any decoder failure means a corrupt file
            raise BadClipError(clip_id, video_url, f"video cannot be decoded ({type(e).__name__}: {e})") from None
        expected = (row["num_frames"], row["height"], row["width"], 3)
        if frames.shape != expected:
            raise BadClipError(clip_id, video_url, f"video has frames {frames.shape}, manifest says {expected}")
        try:
            audio, rate = decode_audio(self._read(clip_id, audio_url))
        except BadClipError:
            raise
        except Exception as e:  # noqa: BLE001
            raise BadClipError(clip_id, audio_url, f"audio cannot be decoded ({type(e).__name__}: {e})") from None
        if rate != row["sample_rate"]:
            raise BadClipError(clip_id, audio_url, f"audio is {rate} Hz, manifest says {row['sample_rate']} Hz")
        if audio.shape[0] != 2:
            raise BadClipError(clip_id, audio_url, f"audio has {audio.shape[0]} channel(s), stereo expected")
        features = self._features(clip_id, row)
        meta = json.loads(row["meta_json"])
        meta.update(classes=row["classes"], event_times=row["event_times"], event_classes=row["event_classes"])
        return Clip(
            clip_id=clip_id,
            split=row["split"],
            frames=frames,
            fps=float(row["fps"]),
            audio=audio,
            sample_rate=int(rate),
            cot={m: row[f"cot_{m}"] for m in COT_MODULES},
            meta=meta,
            video_path=video_url,
            audio_path=audio_url,
            features=features,
        )

    def _features(self, clip_id: str, row: dict[str, Any]) -> dict[str, Any]:
        """The clip's cached generator features (optional `features_path` column; empty when unset)."""
        rel = row.get(FEATURES_COLUMN)
        if not rel:
            return {}
        url = storage.join(self.root, rel)
        try:
            return parse_features(self._read(clip_id, url), url)
        except FeatureFileError as e:
            raise BadClipError(clip_id, url, f"feature file: {e}") from None
