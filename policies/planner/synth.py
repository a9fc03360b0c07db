"""The `synth` planner: FrameEventNet reads the frames, a deterministic writer turns what it saw into
the four modules in the SynthScenes annotation style (common.cot_phrasing).

Reading the network's maps (`read_video`): a class is on screen when its presence map peaks above
0.5 in most frames; its x per frame is the presence-weighted mean of the columns around the peak,
and a straight line fitted to x over the frames gives where it starts and ends (SynthScenes objects
stand still or move at constant speed). An impact is a cell whose onset probability is above 0.5
and a local maximum; it belongs to the class most present around that cell in the previous frame
(hits of one class closer than MERGE_FRAMES are merged). Sounding classes are those with impacts;
on-screen classes without impacts are the silent objects. What the video cannot show
(the background hiss, the loudness) is written as the middle category ("fairly clean", "moderately
loud"); the brightness comes from the mean spectral centroid of the sounding classes' sounds.

Checkpoint: a directory with planner.json (backend, classes, frame_size, channels) and
model.safetensors.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from common.cot_phrasing import aesthetic_phrase, semantic_phrase, spatial_phrase, temporal_phrase, tone_word
from common.soundclasses import CATALOG, SOUND_CLASSES, render_event
from policies.planner.base import Planner, Video, check_video
from policies.planner.synth_net import FrameEventNet, frame_pairs, resize_frames

PLANNER_JSON = "planner.json"
WEIGHTS = "model.safetensors"
AZIMUTH_PER_WIDTH_DEG = 120.0
"""SynthScenes geometry: azimuth (degrees, positive = right) = AZIMUTH_PER_WIDTH_DEG * (x - 0.5)."""
MOVE_THRESHOLD = 0.05
"""An object whose x changes by more than this fraction of the width over the clip moves."""
MERGE_FRAMES = 2
"""Onset peaks of one class closer than this many frames count as one event."""


@dataclass
class SeenSource:
    """One sounding object as the planner read it."""

    name: str
    """Sound class."""
    onsets_s: list[float]
    """Onset times in seconds, ascending."""
    x_start: float
    """Horizontal centre at the first frame (fraction of the width)."""
    x_end: float
    """Horizontal centre at the last frame."""


@dataclass
class SeenVideo:
    """Everything the planner read from one video."""

    sources: list[SeenSource] = field(default_factory=list)
    """Sounding objects in order of their first onset."""
    silent_objects: int = 0
    """Objects on screen that never make a sound."""


@lru_cache(maxsize=None)
def class_centroid_hz(name: str, sample_rate: int = 16000) -> float:
    """Spectral centroid of a rendered example of a class (fixed seed)."""
    x = render_event(name, sample_rate, np.random.default_rng(0)).astype(np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    return float((np.fft.rfftfreq(x.size, 1.0 / sample_rate) * power).sum() / max(power.sum(), 1e-12))


def write_plan(seen: SeenVideo) -> dict[str, str]:
    """The four modules, in annotation style, of what was seen (at least one source)."""
    names = [s.name for s in seen.sources]
    azimuth = lambda x: AZIMUTH_PER_WIDTH_DEG * (x - 0.5)  # noqa: E731
    tone = tone_word(float(np.mean([class_centroid_hz(n) for n in names])))
    return {
        "semantic": semantic_phrase(names, seen.silent_objects),
        "temporal": temporal_phrase([(s.name, s.onsets_s) for s in seen.sources]),
        "aesthetic": aesthetic_phrase("faint", tone, "moderately loud", {CATALOG[n].family for n in names}),
        "spatial": spatial_phrase([(s.name, azimuth(s.x_start), azimuth(s.x_end), abs(s.x_end - s.x_start) > MOVE_THRESHOLD)
                                   for s in seen.sources]),
    }


def _merge(hits: list[tuple[int, float]]) -> list[int]:
    """Frames of (frame, probability) hits, strongest first, closer ones than MERGE_FRAMES merged."""
    kept: list[int] = []
    for t, _ in sorted(hits, key=lambda h: -h[1]):
        if all(abs(t - k) > MERGE_FRAMES for k in kept):
            kept.append(t)
    return sorted(kept)


def onset_hits(presence: np.ndarray, onset: np.ndarray, threshold: float = 0.5) -> dict[int, list[tuple[int, float]]]:
    """class index -> [(frame, probability)] of impacts: cells whose onset probability is above threshold
    and the largest of their 3x3 neighbourhood, each given to the class most present around that cell
    in the previous frame (where the object still shows its colour)."""
    t_len, k_len, g, _ = presence.shape
    hits: dict[int, list[tuple[int, float]]] = {}
    for t in range(t_len):
        o = onset[t]
        for h, w in zip(*np.nonzero(o > threshold)):
            window = o[max(h - 1, 0) : h + 2, max(w - 1, 0) : w + 2]
            if o[h, w] < window.max():
                continue
            ref = presence[t - 1] if t > 0 else presence[t]
            near = ref[:, max(h - 1, 0) : h + 2, max(w - 1, 0) : w + 2].reshape(k_len, -1).max(axis=1)
            hits.setdefault(int(near.argmax()), []).append((t, float(o[h, w])))
    return hits


def _x_per_frame(presence: np.ndarray) -> np.ndarray:
    """[T] x (fraction of width) from presence probabilities [T, columns]: weighted mean of the peak
    column and its neighbours."""
    t_len, columns = presence.shape
    centres = (np.arange(columns) + 0.5) / columns
    peak = presence.argmax(axis=1)
    xs = np.empty(t_len)
    for t in range(t_len):
        lo, hi = max(peak[t] - 1, 0), min(peak[t] + 2, columns)
        w = presence[t, lo:hi]
        xs[t] = float((w * centres[lo:hi]).sum() / max(w.sum(), 1e-9))
    return xs


def read_video(presence: np.ndarray, onset: np.ndarray, fps: float, classes: Sequence[str]) -> SeenVideo:
    """What a video shows, from the network's probabilities: presence [T, K, G, G], onset [T, G, G]."""
    t_len = presence.shape[0]
    columns = presence.max(axis=2)  # [T, K, G]: where along x each class is
    visible = columns.max(axis=2) > 0.5  # [T, K]
    on_screen = visible.mean(axis=0) > 0.5
    hits = onset_hits(presence, onset)
    if not hits:  # nothing crossed the threshold: the most likely single impact
        t, h, w = np.unravel_index(int(onset.argmax()), onset.shape)
        ref = presence[t - 1] if t > 0 else presence[t]
        hits = {int(ref[:, h, w].argmax()): [(int(t), float(onset[t, h, w]))]}
    sources = []
    for k, found in hits.items():
        seen_at = np.flatnonzero(visible[:, k])
        if seen_at.size == 0:
            seen_at = np.arange(t_len)
        xs = _x_per_frame(columns[seen_at, k])
        if seen_at.size >= 2:
            slope, icpt = np.polyfit(seen_at.astype(np.float64), xs, 1)
            x0, x1 = float(icpt), float(icpt + slope * (t_len - 1))
        else:
            x0 = x1 = float(xs[0])
        frames = _merge(found)
        sources.append(SeenSource(classes[k], [f / fps for f in frames], float(np.clip(x0, 0, 1)), float(np.clip(x1, 0, 1))))
    sources.sort(key=lambda s: s.onsets_s[0])
    sounding = {s.name for s in sources}
    silent = sum(1 for k, name in enumerate(classes) if on_screen[k] and name not in sounding)
    return SeenVideo(sources, min(silent, 6))


class SynthPlanner(Planner):
    """FrameEventNet + the annotation-style writer (`planner.backend=synth`)."""

    name = "synth"

    def __init__(self, net: FrameEventNet, classes: Sequence[str], device: str | torch.device = "cpu"):
        if len(classes) != net.num_classes:
            raise ValueError(f"synth planner: {len(classes)} class names for a network of {net.num_classes} classes")
        unknown = [c for c in classes if c not in CATALOG]
        if unknown:
            raise ValueError(f"synth planner: unknown sound classes {unknown}; known: {', '.join(SOUND_CLASSES)}")
        self.net, self.classes, self.device = net.to(device).eval(), list(classes), torch.device(device)

    @torch.no_grad()
    def probabilities(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(presence [T, K, G, G], onset [T, G, G]) probabilities of one video's frames."""
        x = frame_pairs(resize_frames(frames, self.net.frame_size)).to(self.device)
        presence, onset = self.net.probabilities(x)
        return presence.cpu().numpy(), onset.cpu().numpy()

    def read(self, frames: np.ndarray, fps: float) -> SeenVideo:
        """What the planner sees in one video."""
        presence, onset = self.probabilities(frames)
        return read_video(presence, onset, fps, self.classes)

    def plan_batch(self, videos: Sequence[Video]) -> list[dict[str, str]]:
        plans = []
        for i, (frames, fps) in enumerate(videos):
            check_video(frames, fps, f"video {i}")
            plans.append(write_plan(self.read(np.asarray(frames), float(fps))))
        return plans


def save_synth_planner(net: FrameEventNet, classes: Sequence[str], directory: str, extra: dict | None = None) -> str:
    """Write a synth planner checkpoint (weights first, planner.json last: its presence marks it complete)."""
    os.makedirs(directory, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}, os.path.join(directory, WEIGHTS))
    meta = {"backend": "synth", "classes": list(classes), "frame_size": net.frame_size,
            "channels": net.body[0].out_channels, **(extra or {})}
    tmp = os.path.join(directory, PLANNER_JSON + ".tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(tmp, os.path.join(directory, PLANNER_JSON))
    return directory


def load_synth_planner(directory: str, device: str | torch.device = "cpu") -> SynthPlanner:
    """The synth planner saved in `directory`; FileNotFoundError / ValueError name the directory."""
    meta_path, weights = os.path.join(directory, PLANNER_JSON), os.path.join(directory, WEIGHTS)
    if not os.path.isfile(meta_path) or not os.path.isfile(weights):
        raise FileNotFoundError(
            f"planner.checkpoint: {directory} is not a synth planner checkpoint (needs {PLANNER_JSON} and {WEIGHTS}; "
            f"train one with `prismrl train-planner`)")
    with open(meta_path) as f:
        meta = json.load(f)
    if meta.get("backend") != "synth":
        raise ValueError(f"planner.checkpoint: {directory} holds a '{meta.get('backend')}' planner, not 'synth'")
    net = FrameEventNet(len(meta["classes"]), int(meta["frame_size"]), int(meta["channels"]))
    try:
        net.load_state_dict(load_file(weights))
    except RuntimeError as e:
        raise ValueError(f"planner.checkpoint: weights in {directory} do not fit planner.json: {e}") from None
    return SynthPlanner(net, meta["classes"], device)
