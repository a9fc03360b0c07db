"""The four CoT modules of a scene, written the way an annotator would describe it.

semantic: which classes sound (class descriptions from common.soundclasses);
temporal: how many events and when; aesthetic: background noise, brightness, loudness;
spatial: where each source is and how it moves. Silent distractors are never named by class,
so every class name in the text is a sound that is really there.
"""
from __future__ import annotations

import numpy as np

from common.soundclasses import CATALOG
from orchestrator.data.synth.scene import Scene

_NUMBERS = {1: "One", 2: "Two", 3: "Three", 4: "Four", 5: "Five", 6: "Six"}
SIDE_DEG = 15.0
"""Sources within +-SIDE_DEG degrees of azimuth are described as in the centre."""


def _join(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sources_in_order(scene: Scene) -> list[int]:
    """Object indices of the sounding objects, by time of their first event."""
    order: list[int] = []
    for e in scene.events:
        if e.object_index not in order:
            order.append(e.object_index)
    return order


def semantic_text(scene: Scene) -> str:
    """'A bell rings (a bright ringing bell tone ...) and a drum is struck (...).'"""
    parts = []
    for i in _sources_in_order(scene):
        c = CATALOG[scene.objects[i].sound_class]
        parts.append(f"a {c.name} {c.verb} ({c.description})")
    text = _join(parts)
    text = text[0].upper() + text[1:] + "."
    n_silent = len(scene.distractors)
    if n_silent:
        text += f" {_NUMBERS[n_silent]} other object{'s' if n_silent > 1 else ''} on screen make{'s' if n_silent == 1 else ''} no sound."
    return text


def temporal_text(scene: Scene) -> str:
    """'Three events: the bell at 0.40 s, the drum at 1.12 s and 1.60 s.'"""
    n = len(scene.events)
    parts = []
    for i in _sources_in_order(scene):
        times = [f"{e.time_s:.2f} s" for e in scene.events if e.object_index == i]
        parts.append(f"the {scene.objects[i].sound_class} at {_join(times)}")
    return f"{_NUMBERS.get(n, str(n))} event{'s' if n > 1 else ''}: {_join(parts)}."


def aesthetic_text(scene: Scene, audio: np.ndarray, sample_rate: int) -> str:
    """Background (clean / faint hiss / noisy), brightness from the spectral centroid, loudness from RMS."""
    if scene.noise_db < -52:
        background = "A clean recording with a silent background"
    elif scene.noise_db < -44:
        background = "A fairly clean recording with a faint hiss in the background"
    else:
        background = "A noisy recording with an audible hiss in the background"
    mono = audio.mean(axis=0).astype(np.float64)
    power = np.abs(np.fft.rfft(mono)) ** 2
    centroid = float((np.fft.rfftfreq(mono.size, 1.0 / sample_rate) * power).sum() / max(power.sum(), 1e-12))
    tone = "bright" if centroid > 2000 else ("warm" if centroid > 800 else "dark")
    rms_db = 10 * np.log10(max(float(np.mean(mono**2)), 1e-12))
    level = "loud" if rms_db > -18 else ("moderately loud" if rms_db > -26 else "soft")
    families = {CATALOG[o.sound_class].family for o in scene.sounding}
    character = {
        "percussive": "sharp percussive hits",
        "tonal": "clear sustained tones",
        "noisy": "broadband textures",
        "sweep": "sweeping pitch",
    }
    feel = _join([character[f] for f in ("percussive", "tonal", "sweep", "noisy") if f in families])
    return f"{background}; the sound is {tone} and {level}, with {feel}."


def _side(azimuth_deg: float) -> str:
    if azimuth_deg < -SIDE_DEG:
        return "the left"
    if azimuth_deg > SIDE_DEG:
        return "the right"
    return "the centre"


def spatial_text(scene: Scene) -> str:
    """'The bell is on the left; the drum moves from the centre to the right.'"""
    parts = []
    for i in _sources_in_order(scene):
        obj = scene.objects[i]
        start, end = _side(float(obj.azimuth_track[0])), _side(float(obj.azimuth_track[-1]))
        if not obj.moves:
            where = "is in the centre" if start == "the centre" else f"is on {start}"
        elif start == end:
            where = f"moves a little but stays {'in' if start == 'the centre' else 'on'} {start}"
        else:
            where = f"moves from {start} to {end}"
        parts.append(f"the {obj.sound_class} {where}")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."


def annotate(scene: Scene, audio: np.ndarray, sample_rate: int) -> dict[str, str]:
    """The four CoT modules (keys common.types.COT_MODULES, in that order) of a rendered scene."""
    return {
        "semantic": semantic_text(scene),
        "temporal": temporal_text(scene),
        "aesthetic": aesthetic_text(scene, audio, sample_rate),
        "spatial": spatial_text(scene),
    }
