"""ClipReader: decoded clips, and a clear error (or a counted skip) for every kind of bad input."""
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from common.types import COT_MODULES
from orchestrator.data.config import DataConfig, SynthConfig
from orchestrator.data.manifest import ManifestError, validate_schema
from orchestrator.data.reader import BadClipError, ClipReader
from orchestrator.data.synth import write_synthscenes

TINY = dict(n=6, min_duration_s=1.0, max_duration_s=1.0, fps=12.5, size=32, val_fraction=0.2, test_fraction=0.2)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reader") / "set"
    return Path(write_synthscenes(str(root), SynthConfig(seed=2, **TINY), progress=False))


@pytest.fixture
def manifest(pristine, tmp_path) -> Path:
    """A private copy each test may break."""
    shutil.copytree(pristine.parent, tmp_path / "set")
    return tmp_path / "set" / "manifest.parquet"


def _reader(manifest: Path, **kw) -> ClipReader:
    return ClipReader(DataConfig(manifest=str(manifest), **kw))


def test_load_decodes_frames_audio_cot_and_meta(pristine):
    reader = _reader(pristine)
    ids = reader.clip_ids()
    assert len(ids) == 6 and sorted(ids) == ids
    assert sorted(reader.clip_ids("train") + reader.clip_ids("val") + reader.clip_ids("test")) == ids
    clip = reader.load(ids[0])
    row = reader.row(ids[0])
    assert clip.frames.dtype == np.uint8 and clip.frames.shape == (row["num_frames"], 32, 32, 3)
    assert clip.audio.dtype == np.float32 and clip.audio.shape == (2, 16000) and clip.sample_rate == 16000
    assert np.abs(clip.audio).max() <= 1.0 and clip.fps == 12.5 and clip.split == row["split"]
    assert set(clip.cot) == set(COT_MODULES) and all(clip.cot.values())
    assert clip.meta["classes"] == row["classes"] and clip.meta["event_times"] == row["event_times"]
    assert set(clip.meta["azimuth"]) == set(row["classes"]) and "event_classes" in clip.meta
    assert clip.video_path.endswith(".mp4") and Path(clip.audio_path).exists()
    assert reader.load(ids[0]) is clip  # cached
    assert _reader(pristine, cache_decoded=False).load(ids[0]) is not _reader(pristine).load(ids[0])
    assert len(reader.load_split("train", limit=1)) == 1
    with pytest.raises(KeyError, match="nope"):
        reader.load("nope")


def _first(manifest: Path) -> dict:
    return pq.read_table(manifest).slice(0, 1).to_pylist()[0]


def _break_and_expect(manifest: Path, path_key: str, breaker, reason: str):
    row = _first(manifest)
    media = manifest.parent / row[path_key]
    breaker(media)
    with pytest.raises(BadClipError, match=reason) as info:
        _reader(manifest).load(row["clip_id"])
    assert row["clip_id"] in str(info.value) and str(media) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_audio_names_clip_and_path(manifest):
    _break_and_expect(manifest, "audio_path", lambda p: p.unlink(), "missing")


def test_corrupt_video_names_clip_and_path(manifest):
    _break_and_expect(manifest, "video_path", lambda p: p.write_bytes(b"not a video at all" * 10), "decoded")


def test_corrupt_audio_names_clip_and_path(manifest):
    _break_and_expect(manifest, "audio_path", lambda p: p.write_bytes(b"RIFF" + b"\0" * 40), "decoded")


def test_wrong_sample_rate_names_clip_and_path(manifest):
    def resample_header(p):
        audio, sr = sf.read(str(p))
        sf.write(str(p), audio, 8000, subtype="PCM_16")

    _break_and_expect(manifest, "audio_path", resample_header, "8000 Hz, manifest says 16000 Hz")


def test_mono_audio_names_clip_and_path(manifest):
    def to_mono(p):
        audio, sr = sf.read(str(p))
        sf.write(str(p), audio.mean(axis=1), sr, subtype="PCM_16")

    _break_and_expect(manifest, "audio_path", to_mono, "1 channel")


def test_wrong_schema_names_manifest_and_column(manifest):
    table = pq.read_table(manifest)
    table = table.drop(["cot_spatial"]).set_column(
        table.schema.get_field_index("sample_rate"), "sample_rate", table.column("sample_rate").cast(pa.string())
    )
    pq.write_table(table, manifest)
    with pytest.raises(ManifestError) as info:
        _reader(manifest)
    message = str(info.value)
    assert str(manifest) in message and "cot_spatial" in message and "sample_rate" in message
    with pytest.raises(ValueError, match="clip_id"):
        validate_schema(pa.table({"x": [1]}), "m.parquet")


def test_duplicate_ids_and_missing_manifest_are_errors(manifest, tmp_path):
    table = pq.read_table(manifest)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), manifest)
    with pytest.raises(ManifestError, match="more than once"):
        _reader(manifest)
    with pytest.raises(ManifestError, match="does not exist"):
        _reader(tmp_path / "absent.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"junk")
    with pytest.raises(ManifestError, match="junk.parquet"):
        _reader(tmp_path / "junk.parquet")


def test_skip_mode_skips_logs_and_counts(manifest, caplog):
    rows = pq.read_table(manifest).to_pylist()
    bad = rows[0]
    (manifest.parent / bad["video_path"]).unlink()
    reader = _reader(manifest, on_bad_clip="skip")
    with caplog.at_level(logging.WARNING, logger="orchestrator.data.reader"):
        clips = reader.load_split(bad["split"])
    assert bad["clip_id"] not in [c.clip_id for c in clips]
    assert len(clips) == sum(r["split"] == bad["split"] for r in rows) - 1
    assert list(reader.skipped) == [bad["clip_id"]] and "missing" in reader.skipped[bad["clip_id"]]
    assert any(bad["clip_id"] in rec.getMessage() for rec in caplog.records)
    assert bad["clip_id"] not in reader.clip_ids()
    with pytest.raises(BadClipError):  # asked for by id, a bad clip is never returned as if it were fine
        reader.load(bad["clip_id"])
    assert len(reader.load_many([r["clip_id"] for r in rows])) == len(rows) - 1 and len(reader.skipped) == 1
