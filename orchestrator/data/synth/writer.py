"""Generate a SynthScenes data set: media files plus manifest.parquet, locally or on S3.

Clip i of seed s is drawn from its own generator (SeedSequence [s, i]), so it is the same
whatever n is, and the whole set (manifest and media bytes) is the same for the same config.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from orchestrator.data import storage
from orchestrator.data.config import S3Config, SynthConfig
from orchestrator.data.manifest import build_table, to_parquet_bytes
from orchestrator.data.synth.annotate import annotate
from orchestrator.data.synth.audio import render_scene_audio, right_lag_s
from orchestrator.data.synth.scene import sample_scene
from orchestrator.data.synth.video import encode_mp4, render_scene_frames

MANIFEST_NAME = "manifest.parquet"
"""File name of the manifest inside the output directory."""
MEDIA_DIR = "media"
"""Sub-directory of the media files."""


@dataclass
class GeneratedClip:
    """One rendered clip: its manifest row and its encoded media."""

    row: dict[str, Any]
    """Manifest row (see orchestrator.data.manifest.COLUMNS; `cot` and `meta` as dicts)."""
    video: bytes
    """mp4 bytes."""
    audio: bytes
    """wav or flac bytes."""


def check_synth_config(cfg: SynthConfig, config_key: str = "data.synth") -> None:
    """ValueError naming the `config_key`.* key when a generation parameter is out of range."""
    checks = [
        ("n", cfg.n >= 1, "must be >= 1"),
        ("sample_rate", cfg.sample_rate >= 8000, "must be >= 8000 Hz"),
        ("min_duration_s", 0.5 <= cfg.min_duration_s <= cfg.max_duration_s, "must be in [0.5, max_duration_s]"),
        ("max_duration_s", cfg.max_duration_s <= 8.0, "must be <= 8"),
        ("fps", 4.0 <= cfg.fps <= 60.0, "must be in [4, 60]"),
        ("size", cfg.size >= 16 and cfg.size % 2 == 0, "must be an even number >= 16"),
        ("val_fraction", 0.0 <= cfg.val_fraction <= 1.0, "must be in [0, 1]"),
        ("test_fraction", 0.0 <= cfg.test_fraction <= 1.0, "must be in [0, 1]"),
        ("test_fraction", cfg.val_fraction + cfg.test_fraction <= 1.0, "plus val_fraction must be <= 1"),
        ("audio_format", cfg.audio_format in ("wav", "flac"), "must be wav or flac"),
    ]
    for key, ok, rule in checks:
        if not ok:
            raise ValueError(f"{config_key}.{key} = {getattr(cfg, key)!r} {rule}")


def assign_splits(n: int, seed: int, val_fraction: float, test_fraction: float) -> list[str]:
    """Split of each clip index: a seeded permutation, round(n*test) test, round(n*val) val, rest train."""
    order = np.random.default_rng([seed, 0x5B117]).permutation(n)
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    splits = ["train"] * n
    for rank, index in enumerate(order):
        if rank < n_test:
            splits[int(index)] = "test"
        elif rank < n_test + n_val:
            splits[int(index)] = "val"
    return splits


def clip_id_for(seed: int, index: int) -> str:
    """Stable clip id, e.g. ss0-000042."""
    return f"ss{seed}-{index:06d}"


def encode_audio(audio: np.ndarray, sample_rate: int, audio_format: str) -> bytes:
    """16-bit PCM wav or flac bytes of float [2, N] audio (no time-dependent chunks)."""
    buf = io.BytesIO()
    sf.write(buf, audio.T, sample_rate, format=audio_format.upper(), subtype="PCM_16")
    return buf.getvalue()


def generate_clip(cfg: SynthConfig, index: int, split: str) -> GeneratedClip:
    """Render clip `index` of the data set described by `cfg`."""
    rng = np.random.default_rng([cfg.seed, index])
    duration = float(np.round(rng.uniform(cfg.min_duration_s, cfg.max_duration_s), 3))
    scene = sample_scene(rng, duration, cfg.fps)
    audio = render_scene_audio(scene, cfg.sample_rate, rng)
    frames = render_scene_frames(scene, cfg.size)
    clip_id = clip_id_for(cfg.seed, index)
    ext = "wav" if cfg.audio_format == "wav" else "flac"
    event_az = [float(scene.objects[e.object_index].azimuth_track[e.frame]) for e in scene.events]
    meta = {
        "azimuth": {o.sound_class: [round(float(a), 4) for a in o.azimuth_track] for o in scene.sounding},
        "event_azimuths": [round(a, 4) for a in event_az],
        "event_right_lag_s": [right_lag_s(a) for a in event_az],
        "event_frames": [e.frame for e in scene.events],
        "objects": [
            {
                "class": o.sound_class,
                "sounding": o.sounding,
                "lane": o.lane,
                "x_start": round(float(o.x_track[0]), 4),
                "x_end": round(float(o.x_track[-1]), 4),
                "moves": o.moves,
            }
            for o in scene.objects
        ],
        "distractor_count": len(scene.distractors),
        "distractor_classes": [o.sound_class for o in scene.distractors],
        "noise_db": round(scene.noise_db, 3),
        "gain_db": round(scene.gain_db, 3),
        "background_rgb": list(scene.background_rgb),
        "generator": {"name": "synthscenes", "seed": cfg.seed, "index": index},
    }
    row = {
        "clip_id": clip_id,
        "split": split,
        "video_path": f"{MEDIA_DIR}/{clip_id}.mp4",
        "audio_path": f"{MEDIA_DIR}/{clip_id}.{ext}",
        "duration_s": duration,
        "sample_rate": cfg.sample_rate,
        "fps": float(cfg.fps),
        "width": cfg.size,
        "height": cfg.size,
        "num_frames": scene.num_frames,
        "cot": annotate(scene, audio, cfg.sample_rate),
        "classes": [scene.objects[i].sound_class for i in dict.fromkeys(e.object_index for e in scene.events)],
        "event_times": [e.time_s for e in scene.events],
        "event_classes": list(scene.event_classes),
        "num_events": len(scene.events),
        "meta": meta,
    }
    return GeneratedClip(row, encode_mp4(frames, cfg.fps), encode_audio(audio, cfg.sample_rate, cfg.audio_format))


def write_synthscenes(
    out_dir_or_s3_url: str, cfg: SynthConfig, s3: S3Config | None = None, progress: bool = True,
    config_key: str = "data.synth",
) -> str:
    """Write cfg.n clips under `<out>/media/` and `<out>/manifest.parquet`; returns the manifest path/URL.
    A bad parameter is a ValueError naming it as `config_key`.<field>."""
    check_synth_config(cfg, config_key)
    out = out_dir_or_s3_url.rstrip("/")
    splits = assign_splits(cfg.n, cfg.seed, cfg.val_fraction, cfg.test_fraction)
    rows = []
    for index in tqdm(range(cfg.n), desc="synthscenes", unit="clip", disable=not progress):
        clip = generate_clip(cfg, index, splits[index])
        storage.write_bytes(storage.join(out, clip.row["video_path"]), clip.video, s3)
        storage.write_bytes(storage.join(out, clip.row["audio_path"]), clip.audio, s3)
        rows.append(clip.row)
    manifest = storage.join(out, MANIFEST_NAME)
    storage.write_bytes(manifest, to_parquet_bytes(build_table(rows)), s3)
    return manifest
