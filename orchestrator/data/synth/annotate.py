"""The four CoT modules of a scene, written the way an annotator would describe it.

semantic: which classes sound (class descriptions from common.soundclasses);
temporal: how many events and when; aesthetic: background noise, brightness, loudness;
spatial: where each source is and how it moves. Silent distractors are never named by class,
so every class name in the text is a sound that is really there. The phrasing itself lives in
common.cot_phrasing, shared with the `synth` planner.
"""
from __future__ import annotations

import numpy as np

from common.cot_phrasing import (
    SIDE_DEG,  # noqa: F401  (re-exported: part of this module's documented interface)
    aesthetic_phrase,
    background_level,
    level_word,
    semantic_phrase,
    spatial_phrase,
    temporal_phrase,
    tone_word,
)
from common.soundclasses import CATALOG
from orchestrator.data.synth.scene import Scene


def _sources_in_order(scene: Scene) -> list[int]:
    """Object indices of the sounding objects, by time of their first event."""
    order: list[int] = []
    for e in scene.events:
        if e.object_index not in order:
            order.append(e.object_index)
    return order


def semantic_text(scene: Scene) -> str:
    """'A bell rings (a bright ringing bell tone ...) and a drum is struck (...).'"""
    classes = [scene.objects[i].sound_class for i in _sources_in_order(scene)]
    return semantic_phrase(classes, len(scene.distractors))


def temporal_text(scene: Scene) -> str:
    """'Three events: the bell at 0.40 s, the drum at 1.12 s and 1.60 s.'"""
    return temporal_phrase([
        (scene.objects[i].sound_class, [e.time_s for e in scene.events if e.object_index == i])
        for i in _sources_in_order(scene)
    ])


def aesthetic_text(scene: Scene, audio: np.ndarray, sample_rate: int) -> str:
    """Background (clean / faint hiss / noisy), brightness from the spectral centroid, loudness from RMS."""
    mono = audio.mean(axis=0).astype(np.float64)
    power = np.abs(np.fft.rfft(mono)) ** 2
    centroid = float((np.fft.rfftfreq(mono.size, 1.0 / sample_rate) * power).sum() / max(power.sum(), 1e-12))
    rms_db = 10 * np.log10(max(float(np.mean(mono**2)), 1e-12))
    families = {CATALOG[o.sound_class].family for o in scene.sounding}
    return aesthetic_phrase(background_level(scene.noise_db), tone_word(centroid), level_word(rms_db), families)


def spatial_text(scene: Scene) -> str:
    """'The bell is on the left; the drum moves from the centre to the right.'"""
    sources = []
    for i in _sources_in_order(scene):
        obj = scene.objects[i]
        sources.append((obj.sound_class, float(obj.azimuth_track[0]), float(obj.azimuth_track[-1]), obj.moves))
    return spatial_phrase(sources)


def annotate(scene: Scene, audio: np.ndarray, sample_rate: int) -> dict[str, str]:
    """The four CoT modules (keys common.types.COT_MODULES, in that order) of a rendered scene."""
    return {
        "semantic": semantic_text(scene),
        "temporal": temporal_text(scene),
        "aesthetic": aesthetic_text(scene, audio, sample_rate),
        "spatial": spatial_text(scene),
    }
