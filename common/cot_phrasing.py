"""How the four CoT modules are phrased, from plain facts (no scene objects): shared by the
SynthScenes annotator (orchestrator/data/synth/annotate.py) and the `synth` planner
(policies/planner), so a planner writes plans in exactly the annotation style.

semantic: which classes sound (class descriptions from common.soundclasses), plus how many
silent objects are on screen; temporal: how many events and when; aesthetic: background,
brightness, loudness and the families of the sounds; spatial: where each source is and how it moves.
"""
from __future__ import annotations

from typing import Sequence

from common.soundclasses import CATALOG

NUMBERS = {1: "One", 2: "Two", 3: "Three", 4: "Four", 5: "Five", 6: "Six"}
"""Number words used at the start of a sentence."""
SIDE_DEG = 15.0
"""Sources within +-SIDE_DEG degrees of azimuth are described as in the centre."""
BACKGROUNDS = {
    "clean": "A clean recording with a silent background",
    "faint": "A fairly clean recording with a faint hiss in the background",
    "noisy": "A noisy recording with an audible hiss in the background",
}
"""Background phrase per noise level name."""
FAMILY_PHRASES = {
    "percussive": "sharp percussive hits",
    "tonal": "clear sustained tones",
    "noisy": "broadband textures",
    "sweep": "sweeping pitch",
}
"""How each sound family is described in the aesthetic module."""
FAMILY_ORDER = ("percussive", "tonal", "sweep", "noisy")
"""Order in which families are listed."""


def join_words(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def semantic_phrase(classes: Sequence[str], silent_objects: int) -> str:
    """'A bell rings (a bright ringing bell tone ...) and a drum is struck (...).' for the sounding
    classes in order of their first event, plus a sentence on the silent objects."""
    parts = [f"a {CATALOG[c].name} {CATALOG[c].verb} ({CATALOG[c].description})" for c in classes]
    text = join_words(parts)
    text = text[0].upper() + text[1:] + "."
    if silent_objects:
        s = silent_objects
        text += f" {NUMBERS[s]} other object{'s' if s > 1 else ''} on screen make{'s' if s == 1 else ''} no sound."
    return text


def temporal_phrase(events: Sequence[tuple[str, Sequence[float]]]) -> str:
    """'Three events: the bell at 0.40 s, the drum at 1.12 s and 1.60 s.' from (class, onset times)
    pairs in order of each class's first event."""
    n = sum(len(times) for _, times in events)
    parts = [f"the {c} at {join_words([f'{t:.2f} s' for t in times])}" for c, times in events]
    return f"{NUMBERS.get(n, str(n))} event{'s' if n > 1 else ''}: {join_words(parts)}."


def background_level(noise_db: float) -> str:
    """`clean`, `faint` or `noisy` for a background noise level in dBFS."""
    return "clean" if noise_db < -52 else ("faint" if noise_db < -44 else "noisy")


def tone_word(centroid_hz: float) -> str:
    """`bright`, `warm` or `dark` from a spectral centroid in Hz."""
    return "bright" if centroid_hz > 2000 else ("warm" if centroid_hz > 800 else "dark")


def level_word(rms_db: float) -> str:
    """`loud`, `moderately loud` or `soft` from an RMS level in dBFS."""
    return "loud" if rms_db > -18 else ("moderately loud" if rms_db > -26 else "soft")


def aesthetic_phrase(background: str, tone: str, level: str, families: set[str] | Sequence[str]) -> str:
    """'A clean recording ...; the sound is bright and loud, with sharp percussive hits.'"""
    feel = join_words([FAMILY_PHRASES[f] for f in FAMILY_ORDER if f in set(families)])
    return f"{BACKGROUNDS[background]}; the sound is {tone} and {level}, with {feel}."


def side_phrase(azimuth_deg: float) -> str:
    """'the left', 'the right' or 'the centre' for an azimuth in degrees (positive = right)."""
    if azimuth_deg < -SIDE_DEG:
        return "the left"
    if azimuth_deg > SIDE_DEG:
        return "the right"
    return "the centre"


def spatial_phrase(sources: Sequence[tuple[str, float, float, bool]]) -> str:
    """'The bell is on the left; the drum moves from the centre to the right.' from
    (class, start azimuth, end azimuth, moves) per source in order of first event."""
    parts = []
    for name, az_start, az_end, moves in sources:
        start, end = side_phrase(float(az_start)), side_phrase(float(az_end))
        if not moves:
            where = "is in the centre" if start == "the centre" else f"is on {start}"
        elif start == end:
            where = f"moves a little but stays {'in' if start == 'the centre' else 'on'} {start}"
        else:
            where = f"moves from {start} to {end}"
        parts.append(f"the {name} {where}")
    text = "; ".join(parts)
    return text[0].upper() + text[1:] + "."
