"""The facts a CoT plan states (classes, event times, sides), read back from annotation-style text,
and per-module accuracy of a plan against a ground-truth plan.

Both plans are text in the phrasing of common.cot_phrasing, so a ground-truth CoT from SynthScenes
and a planner's output are compared fact by fact, not string by string:
- semantic: the set of sounding classes (and the number of silent objects on screen);
- temporal: the number of events, and every (class, onset) matched within a tolerance;
- spatial: the side (left / centre / right) at the start and the end of each source;
- aesthetic: the families of the sounds (percussive, tonal, sweep, noisy).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from common.cot_phrasing import FAMILY_PHRASES, NUMBERS
from common.soundclasses import SOUND_CLASSES, class_names_in_text

_CLASS = "(" + "|".join(SOUND_CLASSES) + ")"
_WORD_NUMBER = {w.lower(): n for n, w in NUMBERS.items()}
_EVENT_COUNT = re.compile(r"^\s*(\w+) events?:", re.IGNORECASE)
_CLASS_TIMES = re.compile(r"\bthe " + _CLASS + r" at ((?:\d+(?:\.\d+)? s(?:, | and )?)+)", re.IGNORECASE)
_TIME = re.compile(r"(\d+(?:\.\d+)?) s")
_SILENT = re.compile(r"\b(\w+) other objects? on screen", re.IGNORECASE)
_SPATIAL = re.compile(
    r"\bthe " + _CLASS + r" (?:is on the (left|right)|is in the (centre)|moves a little but stays (?:on|in) the "
    r"(left|right|centre)|moves from the (left|right|centre) to the (left|right|centre))",
    re.IGNORECASE,
)


@dataclass
class CotFacts:
    """What a plan says, as data."""

    classes: list[str] = field(default_factory=list)
    """Sounding classes named in the semantic module, in order of mention."""
    silent_objects: int = 0
    """Silent objects on screen according to the semantic module."""
    event_count: int | None = None
    """Number of events the temporal module announces (None when it announces none)."""
    events: list[tuple[str, float]] = field(default_factory=list)
    """(class, onset s) of every event listed in the temporal module."""
    sides: dict[str, tuple[str, str]] = field(default_factory=dict)
    """class -> (side at the start, side at the end): `left`, `centre` or `right`."""
    families: set[str] = field(default_factory=set)
    """Sound families the aesthetic module names."""


def _number(word: str) -> int | None:
    word = word.lower()
    if word in _WORD_NUMBER:
        return _WORD_NUMBER[word]
    return int(word) if word.isdigit() else None


def parse_facts(cot: dict[str, str]) -> CotFacts:
    """Facts of a four-module plan (missing modules state nothing)."""
    semantic, temporal = cot.get("semantic", "") or "", cot.get("temporal", "") or ""
    aesthetic, spatial = cot.get("aesthetic", "") or "", cot.get("spatial", "") or ""
    facts = CotFacts(classes=class_names_in_text(semantic))
    silent = _SILENT.search(semantic)
    facts.silent_objects = (_number(silent.group(1)) or 0) if silent else 0
    count = _EVENT_COUNT.search(temporal)
    facts.event_count = _number(count.group(1)) if count else None
    for m in _CLASS_TIMES.finditer(temporal):
        facts.events += [(m.group(1).lower(), float(t)) for t in _TIME.findall(m.group(2))]
    for m in _SPATIAL.finditer(spatial):
        name = m.group(1).lower()
        if m.group(2) or m.group(3) or m.group(4):
            side = (m.group(2) or m.group(3) or m.group(4)).lower()
            facts.sides[name] = (side, side)
        else:
            facts.sides[name] = (m.group(5).lower(), m.group(6).lower())
    facts.families = {f for f, phrase in FAMILY_PHRASES.items() if phrase in aesthetic}
    return facts


def matched_events(pred: list[tuple[str, float]], truth: list[tuple[str, float]], tol_s: float) -> int:
    """How many true events a predicted event of the same class lies within tol_s of (one to one, greedy
    by distance)."""
    pairs = sorted(
        (abs(tp - tt), i, j)
        for i, (cp, tp) in enumerate(pred)
        for j, (ct, tt) in enumerate(truth)
        if cp == ct and abs(tp - tt) <= tol_s + 1e-9
    )
    used_p, used_t = set(), set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_t)


def plan_accuracy(pred: dict[str, str], truth: dict[str, str], tol_s: float = 0.1) -> dict[str, float]:
    """Per-module accuracy of a plan against the ground-truth plan of the same clip (each in [0, 1]).

    semantic/class_set: the sounding class sets are equal; semantic/silent_count: same number of silent
    objects; temporal/event_count: same number of events; temporal/event_times: share of true events
    matched by a predicted event of the same class within tol_s (and no extra predicted events:
    divided by max(#pred, #true)); spatial/side: share of true sources with the right start and end
    side; aesthetic/families: the family sets are equal.
    """
    p, t = parse_facts(pred), parse_facts(truth)
    n_events = max(len(p.events), len(t.events))
    sides_ok = sum(1 for c, s in t.sides.items() if p.sides.get(c) == s)
    return {
        "semantic/class_set": float(set(p.classes) == set(t.classes)),
        "semantic/silent_count": float(p.silent_objects == t.silent_objects),
        "temporal/event_count": float(p.event_count == t.event_count),
        "temporal/event_times": matched_events(p.events, t.events, tol_s) / n_events if n_events else 1.0,
        "spatial/side": sides_ok / len(t.sides) if t.sides else float(not p.sides),
        "aesthetic/families": float(p.families == t.families),
    }


def mean_accuracy(scores: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each `plan_accuracy` entry over clips."""
    if not scores:
        return {}
    return {k: sum(s[k] for s in scores) / len(scores) for k in scores[0]}
