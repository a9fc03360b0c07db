"""The SynthScenes / PrismRL manifest: one Parquet row per clip, media paths relative to it.

`SCHEMA` is the contract between the writer (synth/writer.py, or any converter of a real
data set) and `ClipReader`. Extra columns are allowed and ignored; the ones below must be
present with these types (string columns may also be large_string, list columns large_list,
integer columns any integer width, double columns any float width).
"""
from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Allowed values of the `split` column."""

COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "clip_id": (pa.string(), "unique id of the clip within the manifest"),
    "split": (pa.string(), "train, val or test"),
    "video_path": (pa.string(), "silent mp4, relative to the manifest's directory (or an absolute path / URL)"),
    "audio_path": (pa.string(), "ground-truth stereo wav/flac, relative like video_path"),
    "duration_s": (pa.float64(), "audio length in seconds"),
    "sample_rate": (pa.int32(), "audio sample rate in Hz (the file must match)"),
    "fps": (pa.float64(), "video frame rate"),
    "width": (pa.int32(), "video width in pixels"),
    "height": (pa.int32(), "video height in pixels"),
    "num_frames": (pa.int32(), "video frames (the file must match)"),
    "cot_semantic": (pa.string(), "CoT module: which sounds are heard"),
    "cot_temporal": (pa.string(), "CoT module: how many events and when"),
    "cot_aesthetic": (pa.string(), "CoT module: character of the sound"),
    "cot_spatial": (pa.string(), "CoT module: where the sources are and how they move"),
    "classes": (pa.list_(pa.string()), "sound classes that sound in the clip, by first event"),
    "event_times": (pa.list_(pa.float64()), "onset of every sound event in seconds, ascending"),
    "event_classes": (pa.list_(pa.string()), "sound class of every event (parallel to event_times)"),
    "num_events": (pa.int32(), "len(event_times)"),
    "meta_json": (pa.string(), "JSON object with the rest of the scene metadata (see the README)"),
}
"""Required columns: name -> (type, meaning). Optional: `features_path` (string), the clip's cached
generator features (`orchestrator.data.features`; policy.kind=prismaudio needs it)."""

SCHEMA = pa.schema([pa.field(name, t, nullable=False) for name, (t, _) in COLUMNS.items()])
"""The schema the writer produces."""

ROW_GROUP_SIZE = 4096
"""Rows per Parquet row group (fixed, so equal input gives equal bytes)."""


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the manifest path and the column or row at fault."""


def _compatible(expected: pa.DataType, found: pa.DataType) -> bool:
    if pa.types.is_string(expected):
        return pa.types.is_string(found) or pa.types.is_large_string(found)
    if pa.types.is_integer(expected):
        return pa.types.is_integer(found)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(found)
    if pa.types.is_list(expected):
        return (pa.types.is_list(found) or pa.types.is_large_list(found)) and _compatible(
            expected.value_type, found.value_type
        )
    return expected.equals(found)


def validate_schema(table: pa.Table, path: str) -> None:
    """Raise ManifestError naming `path` and every missing or wrongly typed column."""
    problems = []
    for name, (expected, _) in COLUMNS.items():
        if name not in table.schema.names:
            problems.append(f"missing column '{name}' ({expected})")
        elif not _compatible(expected, table.schema.field(name).type):
            problems.append(f"column '{name}' has type {table.schema.field(name).type}, expected {expected}")
    if problems:
        raise ManifestError(f"manifest {path}: " + "; ".join(problems))


def validate_rows(table: pa.Table, path: str) -> None:
    """Raise ManifestError on duplicate clip ids, an unknown split or null cells, naming the clip id."""
    ids = table.column("clip_id").to_pylist()
    seen: set[str] = set()
    for clip_id, split in zip(ids, table.column("split").to_pylist()):
        if clip_id is None:
            raise ManifestError(f"manifest {path}: a row has no clip_id")
        if clip_id in seen:
            raise ManifestError(f"manifest {path}: clip_id '{clip_id}' appears more than once")
        seen.add(clip_id)
        if split not in SPLITS:
            raise ManifestError(f"manifest {path}: clip '{clip_id}' has split {split!r}; allowed: {', '.join(SPLITS)}")
    for name in COLUMNS:
        if table.column(name).null_count:
            row = table.column(name).is_null().to_pylist().index(True)
            raise ManifestError(f"manifest {path}: clip '{ids[row]}' has no value in column '{name}'")


def build_table(rows: list[dict[str, Any]]) -> pa.Table:
    """A manifest table from row dicts (keys = COLUMNS; `meta` dict becomes meta_json), sorted by clip_id."""
    rows = sorted(rows, key=lambda r: r["clip_id"])
    data = {name: [] for name in COLUMNS}
    for r in rows:
        for name in COLUMNS:
            if name == "meta_json":
                data[name].append(json.dumps(r["meta"], sort_keys=True, separators=(",", ":")))
            elif name.startswith("cot_"):
                data[name].append(r["cot"][name[4:]])
            else:
                data[name].append(r[name])
    return pa.table(data, schema=SCHEMA)


def to_parquet_bytes(table: pa.Table) -> bytes:
    """Parquet bytes with fixed settings (row groups, compression, statistics) and no timestamps."""
    buf = io.BytesIO()
    pq.write_table(
        table,
        buf,
        row_group_size=ROW_GROUP_SIZE,
        compression="zstd",
        compression_level=3,
        use_dictionary=True,
        write_statistics=True,
        version="2.6",
    )
    return buf.getvalue()


def from_parquet_bytes(data: bytes, path: str) -> pa.Table:
    """Table from Parquet bytes; ManifestError naming `path` when they are not Parquet."""
    try:
        return pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as e:
        raise ManifestError(f"manifest {path}: not a readable Parquet file ({e})") from None
