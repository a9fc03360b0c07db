"""`prismrl data features`: cached PrismAudio features for every clip of a manifest.

For each clip (in manifest order, a tqdm bar): the clip's video is decoded through the storage layer
(local or s3://) and its `sync_features` computed with PrismRL's Synchformer
(`orchestrator.data.sync_features`); `text_features` with a local T5-Gemma when `t5gemma` is given
(`orchestrator.data.text_features`); `video_features` (VideoPrism, JAX) are never computed here. They,
and the text features without T5-Gemma, are merged from existing files: `merge_from=DIR` (the
reference extractor's `DIR/<clip_id>.npz`) or else the file the manifest's `features_path` already
names. Every numeric entry of that file is kept (`latent`, global embeddings...); newly computed
features replace theirs. The result goes to `out_dir/<clip_id>.npz` (the reference's layout) or
`.safetensors` (strings in the header's metadata). A rerun reuses the sync features of an existing
output file of the right shape (`recompute=true` to redo them), so a first pass can compute the sync
features and a second one merge the reference's files.

The manifest's `features_path` column (added when absent) then points at each clip's file, only for
clips whose file holds every feature the policy needs (`features.REQUIRED`); the others keep their
old cell and are listed. A clip that cannot be processed raises `BadClipError` naming it and the
file, or is skipped and listed under `data.on_bad_clip=skip`.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from common.types import COT_MODULES, join_cot
from orchestrator.config.schema import PrismConfig
from orchestrator.data import storage
from orchestrator.data.config import DataConfig
from orchestrator.data.features import FEATURES_COLUMN, REQUIRED, FeatureFileError, read_entries
from orchestrator.data.manifest import to_parquet_bytes
from orchestrator.data.reader import BadClipError, ClipReader, decode_video
from orchestrator.data.sync_features import clip_sync_features, sync_rows
from rewards.models.precision import PRECISIONS, autocast_context

log = logging.getLogger(__name__)

FORMATS = ("npz", "safetensors")
SYNC_WIDTH = 768
"""Width of Synchformer's visual features (a prismaudio policy's `sync_dim` when the config has one)."""


@dataclass
class FeatureJobOptions:
    """Options of `prismrl data features` (short keys on its command line)."""

    synchformer: str = ""
    """Local path to `synchformer_state_dict.pth` (required)."""
    out_dir: str = "features"
    """Where the per-clip files go: relative to the manifest's directory, absolute, or s3://."""
    format: str = "npz"
    """`npz` (the reference's layout) or `safetensors`."""
    merge_from: str = ""
    """Directory (local or s3://) of the reference extractor's `<clip_id>.npz` files whose entries are
    kept; empty: the file the manifest's `features_path` names, when it names one."""
    t5gemma: str = ""
    """Local T5-Gemma checkpoint directory (transformers); empty: text features come from merged files."""
    device: str = "cpu"
    """Torch device for Synchformer and T5-Gemma (`cpu`, `cuda`, `cuda:1`...)."""
    precision: str = "float32"
    """Synchformer precision: `float32` (as the reference) or `bfloat16` / `float16` autocast."""
    video_batch: int = 4
    """Synchformer segments per forward pass."""
    seconds: float = 0.0
    """Span of each clip the features cover, from its start; 0: `policy.duration_s`."""
    out_manifest: str = ""
    """Where the manifest with the `features_path` column goes; empty: the input manifest is rewritten.
    In another directory, its media and feature paths are written as absolute paths or URLs."""
    split: str = ""
    """Only clips of this split (`train`, `val`, `test`); empty: every clip."""
    recompute: bool = False
    """Recompute sync features even where an existing output file already has them."""

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"format: '{self.format}' is not one of {FORMATS}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: '{self.precision}' is not one of {PRECISIONS}")
        if self.video_batch < 1 or self.seconds < 0:
            raise ValueError(f"need video_batch >= 1 and seconds >= 0, got {self.video_batch} and {self.seconds}")


@dataclass
class FeatureJobResult:
    """What a run of the job did."""

    manifest: str
    """Path of the manifest written."""
    rows: int
    """Rows of `sync_features` per clip."""
    written: list[str] = field(default_factory=list)
    """Clip ids whose feature file was written."""
    reused_sync: list[str] = field(default_factory=list)
    """Clip ids whose sync features came from an existing output file."""
    incomplete: dict[str, list[str]] = field(default_factory=dict)
    """clip_id -> required features its file still lacks (its `features_path` cell is left as it was)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """clip_id -> reason, for clips skipped under `data.on_bad_clip=skip`."""


def synchformer_encoder(path: str, device: str, precision: str, batch: int) -> Callable:
    """The video encoder of the Synchformer in `path` (strictly loaded), segments -> `[n, 8, 768]`."""
    import torch

    from rewards.models.synchformer import load_synchformer

    model = load_synchformer(path, device=device)
    dev = torch.device(device)

    def encode(segments):
        with autocast_context(precision, dev.type):
            return model.video_features(segments.to(dev), chunk=batch)

    return encode


def encode_feature_file(entries: dict[str, Any], fmt: str) -> bytes:
    """A feature file's bytes: numeric arrays as tensors, strings as `np.str_` (npz) or header
    metadata (safetensors). Nothing that would need pickle is written."""
    arrays = {k: np.ascontiguousarray(v) for k, v in entries.items() if not isinstance(v, str)}
    storable = "fiub" if fmt == "safetensors" else "fiubUS"
    for key, value in arrays.items():
        if value.dtype.kind not in storable:
            raise ValueError(f"key '{key}': dtype {value.dtype} cannot be stored in a .{fmt} file without pickle")
    strings = {k: v for k, v in entries.items() if isinstance(v, str)}
    if fmt == "safetensors":
        from safetensors.numpy import save

        return save(arrays, metadata=strings or None)
    buf = io.BytesIO()
    np.savez(buf, **{k: np.str_(v) for k, v in strings.items()}, **arrays)
    return buf.getvalue()


def _safe_name(clip_id: str) -> bool:
    return bool(clip_id) and "/" not in clip_id and "\\" not in clip_id and not clip_id.startswith(".")


class _Job:
    """One run over a manifest (state shared by the per-clip steps)."""

    def __init__(self, cfg: PrismConfig, opts: FeatureJobOptions, encode: Callable | None,
                 text_encoder: Callable[[str], np.ndarray] | None):
        self.cfg, self.opts = cfg, opts
        self.s3 = cfg.data.s3
        self.reader = ClipReader(DataConfig(manifest=cfg.data.manifest, on_bad_clip=cfg.data.on_bad_clip,
                                            s3=cfg.data.s3, cache_decoded=False))
        self.seconds = opts.seconds or cfg.policy.duration_s
        self.rows = sync_rows(self.seconds)
        if self.rows == 0:
            raise ValueError(f"seconds={self.seconds}: shorter than one Synchformer segment (0.64 s)")
        prismaudio = cfg.policy.kind == "prismaudio"
        self.width = cfg.policy.prismaudio.sync_dim if prismaudio else SYNC_WIDTH
        if prismaudio and self.rows != cfg.policy.prismaudio.sync_frames:
            raise ValueError(
                f"{self.seconds} s of video give {self.rows} sync rows, policy.prismaudio.sync_frames is "
                f"{cfg.policy.prismaudio.sync_frames} (set seconds= or policy.duration_s to the clips' length)"
            )
        if encode is None:
            if not opts.synchformer:
                raise ValueError("synchformer=PATH is required (local synchformer_state_dict.pth)")
            encode = synchformer_encoder(opts.synchformer, opts.device, opts.precision, opts.video_batch)
        self.encode = encode
        if text_encoder is None and opts.t5gemma:
            from orchestrator.data.text_features import T5GemmaText

            text_encoder = T5GemmaText(opts.t5gemma, opts.device)
        self.text_encoder = text_encoder
        self.out_root = storage.join(self.reader.root, opts.out_dir)

    def _entries(self, clip_id: str, url: str, required: bool) -> dict[str, Any]:
        """Entries of a feature file; {} when it is missing and not `required`."""
        try:
            data = storage.read_bytes(url, self.s3)
        except FileNotFoundError:
            if required:
                raise BadClipError(clip_id, url, "feature file to merge is missing") from None
            return {}
        try:
            return read_entries(data, url)
        except FeatureFileError as e:
            raise BadClipError(clip_id, url, f"feature file: {e}") from None

    def _merge_source(self, clip_id: str, row: dict[str, Any], out_url: str) -> str | None:
        if self.opts.merge_from:
            return storage.join(storage.join(self.reader.root, self.opts.merge_from), f"{clip_id}.npz")
        current = row.get(FEATURES_COLUMN)
        if current:
            url = storage.join(self.reader.root, current)
            return None if url == out_url else url
        return None

    def _sync(self, clip_id: str, row: dict[str, Any]) -> np.ndarray:
        video_url = storage.join(self.reader.root, row["video_path"])
        try:
            frames, _ = decode_video(storage.read_bytes(video_url, self.s3))
        except FileNotFoundError:
            raise BadClipError(clip_id, video_url, "media file is missing") from None
        except Exception as e:  # noqa: BLE001 - any decoder failure means a corrupt file
            raise BadClipError(clip_id, video_url, f"video cannot be decoded ({type(e).__name__}: {e})") from None
        try:
            feats = clip_sync_features(frames, float(row["fps"]), self.seconds, self.encode, self.opts.video_batch)
        except ValueError as e:
            raise BadClipError(clip_id, video_url, f"sync features: {e}") from None
        if feats.shape != (self.rows, self.width):
            raise BadClipError(clip_id, video_url, f"sync features have shape {list(feats.shape)}, expected "
                                                   f"[{self.rows}, {self.width}]")
        return feats

    def clip(self, clip_id: str, result: FeatureJobResult) -> str | None:
        """Write one clip's file; its manifest cell when the file is complete, else None."""
        ext = "npz" if self.opts.format == "npz" else "safetensors"
        if not _safe_name(clip_id):
            raise BadClipError(clip_id, self.out_root, "clip id cannot be used as a file name")
        rel = f"{self.opts.out_dir.rstrip('/')}/{clip_id}.{ext}"
        out_url = storage.join(self.out_root, f"{clip_id}.{ext}")
        row = self.reader.row(clip_id)
        source = self._merge_source(clip_id, row, out_url)
        entries = self._entries(clip_id, source, required=True) if source else {}
        previous = self._entries(clip_id, out_url, required=False)
        for key in ("video_features", "text_features", "caption_cot"):
            if key not in entries and key in previous:
                entries[key] = previous[key]
        sync = previous.get("sync_features")
        if not self.opts.recompute and sync is not None and np.shape(sync) == (self.rows, self.width):
            entries["sync_features"] = np.asarray(sync, dtype=np.float32)
            result.reused_sync.append(clip_id)
        else:
            entries["sync_features"] = self._sync(clip_id, row)
        cot = entries.get("caption_cot") or join_cot({m: row[f"cot_{m}"] for m in COT_MODULES})
        if self.text_encoder is not None:
            entries["text_features"] = np.asarray(self.text_encoder(cot), dtype=np.float32)
        entries.update(id=clip_id, caption_cot=cot, audio_path=storage.join(self.reader.root, row["audio_path"]),
                       video_path=storage.join(self.reader.root, row["video_path"]))
        storage.write_bytes(out_url, encode_feature_file(entries, self.opts.format), self.s3)
        result.written.append(clip_id)
        missing = [k for k in REQUIRED if k not in entries]
        if missing:
            result.incomplete[clip_id] = missing
            return None
        absolute = "://" in self.opts.out_dir or os.path.isabs(self.opts.out_dir)
        return out_url if absolute else rel


def run_feature_job(
    cfg: PrismConfig,
    opts: FeatureJobOptions,
    encode: Callable | None = None,
    text_encoder: Callable[[str], np.ndarray] | None = None,
    progress: bool | None = None,
) -> FeatureJobResult:
    """Compute and merge every selected clip's features, write the files and the manifest.

    encode / text_encoder: the video and text encoders (default: the Synchformer in
    `opts.synchformer`, and T5-Gemma in `opts.t5gemma` when given).
    """
    from tqdm.auto import tqdm

    job = _Job(cfg, opts, encode, text_encoder)
    reader = job.reader
    out_manifest = opts.out_manifest or reader.path
    result = FeatureJobResult(manifest=out_manifest, rows=job.rows)
    cells = dict(zip(reader.manifest.column("clip_id").to_pylist(),
                     reader.manifest.column(FEATURES_COLUMN).to_pylist()
                     if FEATURES_COLUMN in reader.manifest.schema.names else [None] * len(reader)))
    ids = reader.clip_ids(opts.split or None)
    show = cfg.tracking.progress if progress is None else progress
    for clip_id in tqdm(ids, desc="features", unit="clip", disable=not show):
        try:
            cell = job.clip(clip_id, result)
        except BadClipError as e:
            if cfg.data.on_bad_clip != "skip":
                raise
            log.warning("skipping clip: %s", e)
            result.skipped[clip_id] = str(e)
            continue
        if cell is not None:
            cells[clip_id] = cell
    column = pa.array([cells[c] for c in reader.manifest.column("clip_id").to_pylist()], pa.string())
    table = reader.manifest
    if FEATURES_COLUMN in table.schema.names:
        table = table.set_column(table.schema.get_field_index(FEATURES_COLUMN), FEATURES_COLUMN, column)
    else:
        table = table.append_column(FEATURES_COLUMN, column)
    if storage.parent(out_manifest) != reader.root:  # relative cells would point elsewhere: make them absolute
        for name in ("video_path", "audio_path", FEATURES_COLUMN):
            cells_of = [None if c is None else storage.join(reader.root, c) for c in table.column(name).to_pylist()]
            table = table.set_column(table.schema.get_field_index(name), name, pa.array(cells_of, pa.string()))
    storage.write_bytes(out_manifest, to_parquet_bytes(table), cfg.data.s3)
    return result


def option_fields() -> dict[str, str]:
    """Short command-line keys of the job and their type names."""
    return {f.name: str(f.type) for f in dataclasses.fields(FeatureJobOptions)}


def parse_options(pairs: list[str]) -> FeatureJobOptions:
    """`key=value` strings (keys of `FeatureJobOptions`) as options; ValueError naming a bad key or value."""
    fields = option_fields()
    values: dict[str, Any] = {}
    for pair in pairs:
        key, raw = pair.split("=", 1)
        kind = fields.get(key)
        if kind is None:
            raise ValueError(f"unknown option '{key}'; options: {', '.join(fields)}")
        try:
            if kind == "bool":
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                values[key] = raw.lower() in ("true", "1", "yes")
            else:
                values[key] = {"int": int, "float": float}.get(kind, str)(raw)
        except ValueError:
            raise ValueError(f"option {key}={raw!r}: expected {kind}") from None
    return FeatureJobOptions(**values)
