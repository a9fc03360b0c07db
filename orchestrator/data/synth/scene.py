"""Sampling one SynthScenes scene: objects, their motion tracks and sound events (pure numpy).

A scene is a plain description; audio.py, video.py and annotate.py render it. Geometry:
x is the horizontal centre of an object as a fraction of the frame width (0 = left edge),
and the stereo image follows it: azimuth_deg = 120 * (x - 0.5), in [-60, 60], positive = right.
Event onsets fall on frame times (k / fps) so the visible impact and the audio onset coincide.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from common.soundclasses import SOUND_CLASSES

MAX_AZIMUTH_DEG = 60.0
"""Azimuth at the frame's left (-) and right (+) edge."""
X_RANGE = (0.1, 0.9)
"""Horizontal range of object centres (fraction of width)."""


def azimuth_from_x(x: np.ndarray | float) -> np.ndarray:
    """Azimuth in degrees (positive = right) of a horizontal position given as a fraction of the width."""
    return np.clip(2.0 * MAX_AZIMUTH_DEG * (np.asarray(x, dtype=np.float64) - 0.5), -MAX_AZIMUTH_DEG, MAX_AZIMUTH_DEG)


@dataclass
class SceneObject:
    """One object on screen; sounding objects make sound events, distractors only move."""

    sound_class: str
    """Sound class whose look (colour, shape) the object has."""
    sounding: bool
    """True for a sound source; False for a silent distractor (moves, never flashes)."""
    lane: int
    """Vertical lane index (objects never overlap vertically)."""
    x_track: np.ndarray
    """Centre x per video frame, fraction of the width, shape [num_frames]."""

    @property
    def azimuth_track(self) -> np.ndarray:
        """Azimuth in degrees per video frame."""
        return azimuth_from_x(self.x_track)

    @property
    def moves(self) -> bool:
        """Whether the object travels noticeably (> 5% of the width) during the clip."""
        return bool(abs(self.x_track[-1] - self.x_track[0]) > 0.05)


@dataclass
class SoundEvent:
    """One sound made by a sounding object."""

    object_index: int
    """Index into Scene.objects."""
    frame: int
    """Video frame of the onset; the onset time is frame / fps."""
    time_s: float
    """Onset time in seconds."""


@dataclass
class Scene:
    """Everything needed to render one clip."""

    duration_s: float
    """Audio length in seconds."""
    fps: float
    """Video frame rate."""
    num_frames: int
    """Video frames: ceil(duration_s * fps), so the video covers the audio."""
    objects: list[SceneObject]
    """Sounding objects first, then distractors."""
    events: list[SoundEvent]
    """Sound events in time order."""
    background_rgb: tuple[int, int, int]
    """Plain background colour (dark, so flashes stand out)."""
    noise_db: float
    """Background noise level, dBFS RMS per channel."""
    gain_db: float
    """Overall gain applied to the sources, in dB."""
    event_classes: list[str] = field(default_factory=list)
    """Sound class of each event (parallel to events)."""

    @property
    def sounding(self) -> list[SceneObject]:
        """The sound sources."""
        return [o for o in self.objects if o.sounding]

    @property
    def distractors(self) -> list[SceneObject]:
        """The silent objects."""
        return [o for o in self.objects if not o.sounding]


def _x_track(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """Static (60%) or linearly moving (40%) horizontal position per frame."""
    x0 = rng.uniform(*X_RANGE)
    if rng.random() < 0.6 or num_frames < 2:
        return np.full(num_frames, x0)
    x1 = rng.uniform(*X_RANGE)
    return np.linspace(x0, x1, num_frames)


def _event_frames(rng: np.random.Generator, count: int, num_frames: int, fps: float) -> list[int]:
    """Up to `count` onset frames, at least max(3 frames, 0.15 s) apart (so two impacts never touch),
    none in the first frame or the last two."""
    gap = max(3, int(np.ceil(0.15 * fps)))
    first, last = 1, max(1, num_frames - 3)
    free = list(range(first, last + 1))
    frames: list[int] = []
    while free and len(frames) < count:
        f = free[int(rng.integers(len(free)))]
        frames.append(f)
        free = [g for g in free if abs(g - f) >= gap]
    return sorted(frames)


def sample_scene(
    rng: np.random.Generator, duration_s: float, fps: float, classes: tuple[str, ...] = SOUND_CLASSES
) -> Scene:
    """A random scene: 1-3 sounding objects, 0-2 distractors, 1-4 events (each source sounds at least once)."""
    num_frames = max(4, int(np.ceil(duration_s * fps - 1e-9)))
    n_sounding = int(rng.integers(1, 4))
    n_distract = int(rng.integers(0, 3))
    picked = rng.choice(len(classes), size=n_sounding + n_distract, replace=False)
    lanes = rng.permutation(n_sounding + n_distract)
    objects = [
        SceneObject(classes[int(c)], i < n_sounding, int(lanes[i]), _x_track(rng, num_frames))
        for i, c in enumerate(picked)
    ]
    n_events = int(rng.integers(n_sounding, 5))
    frames = _event_frames(rng, n_events, num_frames, fps)
    if len(frames) < n_sounding:  # a short clip: drop the sources that got no event
        objects = objects[: len(frames)] + objects[n_sounding:]
        n_sounding = len(frames)
    owners = list(range(n_sounding)) + [int(o) for o in rng.integers(0, n_sounding, len(frames) - n_sounding)]
    owners = [owners[int(i)] for i in rng.permutation(len(owners))]
    events = [SoundEvent(o, f, f / fps) for o, f in zip(owners, frames)]
    bg = tuple(int(v) for v in rng.integers(10, 60, 3))
    return Scene(
        duration_s=float(duration_s),
        fps=float(fps),
        num_frames=num_frames,
        objects=objects,
        events=events,
        background_rgb=bg,  # type: ignore[arg-type]
        noise_db=float(rng.uniform(-60.0, -35.0)),
        gain_db=float(rng.uniform(-6.0, 0.0)),
        event_classes=[objects[e.object_index].sound_class for e in events],
    )
