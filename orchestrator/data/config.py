"""Typed configuration of the data set: where the manifest is and what to do with bad clips."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class S3Config:
    """How to reach an S3 (or S3-compatible) store; empty fields fall back to AWS_* variables."""

    endpoint_url: Optional[str] = None
    """S3 endpoint, e.g. http://127.0.0.1:5000 for a local server; None = AWS default."""
    key: Optional[str] = None
    """Access key id; None = AWS_ACCESS_KEY_ID."""
    secret: Optional[str] = None
    """Secret access key; None = AWS_SECRET_ACCESS_KEY."""
    region: Optional[str] = None
    """Region name; None = AWS_DEFAULT_REGION or the endpoint's default."""


@dataclass
class SynthConfig:
    """SynthScenes generation parameters (`prismrl data synth`)."""

    n: int = 512
    """Number of clips."""
    seed: int = 0
    """Seed; the same seed gives a byte-identical manifest and media."""
    sample_rate: int = 16000
    """Audio sample rate in Hz."""
    min_duration_s: float = 2.0
    """Shortest clip in seconds."""
    max_duration_s: float = 2.0
    """Longest clip in seconds (at most 8)."""
    fps: float = 25.0
    """Video frame rate."""
    size: int = 64
    """Video frame width and height in pixels."""
    val_fraction: float = 0.1
    """Share of clips in the validation split (1 = a validation-only set)."""
    test_fraction: float = 0.1
    """Share of clips in the test split; the rest (after val and test) is the train split."""
    audio_format: str = "wav"
    """`wav` or `flac`."""


@dataclass
class DataConfig:
    """The data set a run reads."""

    manifest: str = "runs/data/synthscenes/manifest.parquet"
    """Path or s3:// URL of manifest.parquet."""
    on_bad_clip: str = "error"
    """`error`: stop naming clip id and path; `skip`: skip it, log and count it."""
    s3: S3Config = field(default_factory=S3Config)
    """S3 access for s3:// paths."""
    synth: SynthConfig = field(default_factory=SynthConfig)
    """Used when the manifest is missing and must be generated (demo) or by `prismrl data synth`."""
    val_synth: SynthConfig = field(default_factory=lambda: SynthConfig(n=152, seed=2, val_fraction=1.0, test_fraction=0.0))
    """`prismrl demo` generates the validation set at `train.val_manifest` with these parameters when
    that manifest is set and missing. Its seed must differ from `synth.seed` (other clips); its media
    parameters (rate, duration, fps, size) should match `synth`'s."""
    cache_decoded: bool = True
    """Keep decoded clips in memory once read (small data sets)."""
