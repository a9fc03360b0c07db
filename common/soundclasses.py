"""The SynthScenes sound classes: names, families, annotator descriptions and a renderer.

Each class has a distinct spectrum and envelope so that a spectral classifier (the semantic
"signal" teacher) can tell them apart from prototypes made with `render_event`. Every event
starts with a sharp attack at sample 0, so onsets are measurable to a few milliseconds.
Pure numpy: usable by the data generator, the teachers and notebooks alike.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

ATTACK_S = 0.002
"""Linear attack of every event, in seconds (sharp, so the onset sits at sample 0)."""


@dataclass(frozen=True)
class SoundClass:
    """One kind of sound-making object in SynthScenes."""

    name: str
    """Class name, a single lower-case word; the word annotators use in CoT text."""
    family: str
    """`tonal`, `noisy`, `percussive` or `sweep`."""
    description: str
    """How an annotator describes its sound, e.g. "a bright ringing bell tone"."""
    verb: str
    """What the object does when it sounds, for sentences like "A bell rings"."""
    duration_s: float
    """Typical event length in seconds (varied by +-15% per event unless given)."""


_CLASSES: tuple[SoundClass, ...] = (
    SoundClass("bell", "tonal", "a bright ringing bell tone with a long decay", "rings", 0.7),
    SoundClass("flute", "tonal", "a soft, pure whistle-like flute note", "plays", 0.45),
    SoundClass("buzz", "tonal", "a harsh low buzzing drone", "buzzes", 0.4),
    SoundClass("rain", "noisy", "a crisp high patter of falling rain", "patters", 0.5),
    SoundClass("wind", "noisy", "a dull low rush of wind", "blows", 0.55),
    SoundClass("drum", "percussive", "a deep thumping drum hit", "is struck", 0.3),
    SoundClass("knock", "percussive", "a short hollow wooden knock", "knocks", 0.12),
    SoundClass("clap", "percussive", "a sharp snapping hand clap", "claps", 0.08),
    SoundClass("siren", "sweep", "a wailing siren that rises and falls", "wails", 0.6),
    SoundClass("chirp", "sweep", "a quick rising electronic chirp", "chirps", 0.15),
)

CATALOG: dict[str, SoundClass] = {c.name: c for c in _CLASSES}
"""Every sound class by name."""

SOUND_CLASSES: tuple[str, ...] = tuple(CATALOG)
"""Class names in catalog order."""

_NAME_PATTERN = re.compile(r"\b(" + "|".join(SOUND_CLASSES) + r")(?:s|es)?\b", re.IGNORECASE)


def class_names_in_text(text: str) -> list[str]:
    """Class names mentioned in `text` (singular or plural, any case), each once, in order of first mention."""
    found: list[str] = []
    for match in _NAME_PATTERN.finditer(text):
        name = match.group(1).lower()
        if name not in found:
            found.append(name)
    return found


# ---------------------------------------------------------------------------------------
# Rendering helpers (plain functions on numpy arrays).


def _time(n: int, sample_rate: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sample_rate


def _band_noise(n: int, sample_rate: int, lo_hz: float, hi_hz: float, rng: np.random.Generator) -> np.ndarray:
    """White noise restricted to [lo_hz, hi_hz] by zeroing FFT bins outside the band."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spec[(freqs < lo_hz) | (freqs > min(hi_hz, 0.48 * sample_rate))] = 0.0
    return np.fft.irfft(spec, n)


def _partials(t: np.ndarray, f0: float, ratios_amps: list[tuple[float, float, float]], nyquist: float) -> np.ndarray:
    """Sum of sines at f0*ratio with amplitude amp and their own exponential decay rate (1/s)."""
    out = np.zeros_like(t)
    for ratio, amp, decay in ratios_amps:
        f = f0 * ratio
        if f < 0.9 * nyquist:
            out += amp * np.sin(2 * np.pi * f * t) * np.exp(-decay * t)
    return out


def _sweep(t: np.ndarray, freq: np.ndarray, sample_rate: int) -> np.ndarray:
    """Sine whose instantaneous frequency follows `freq` (Hz per sample)."""
    return np.sin(2 * np.pi * np.cumsum(freq) / sample_rate)


def _render_bell(n, sr, rng, t):
    f0 = 1050.0 * rng.uniform(0.97, 1.03)
    return _partials(t, f0, [(1.0, 1.0, 4.0), (2.76, 0.5, 6.0), (5.40, 0.25, 9.0), (8.93, 0.1, 14.0)], sr / 2)


def _render_flute(n, sr, rng, t):
    f0 = 620.0 * rng.uniform(0.97, 1.03)
    vibrato = 1.0 + 0.006 * np.sin(2 * np.pi * 5.5 * t)
    tone = _sweep(t, f0 * vibrato, sr) + 0.2 * _sweep(t, 2 * f0 * vibrato, sr) + 0.05 * _sweep(t, 3 * f0 * vibrato, sr)
    return tone * np.exp(-1.5 * t) + 0.02 * _band_noise(n, sr, f0, 4 * f0, rng)


def _render_buzz(n, sr, rng, t):
    f0 = 140.0 * rng.uniform(0.97, 1.03)
    k = np.arange(1, int(0.45 * sr / f0) + 1)
    saw = (np.sin(2 * np.pi * f0 * np.outer(k, t)) / k[:, None]).sum(axis=0)
    return saw * np.exp(-1.0 * t)


def _render_rain(n, sr, rng, t):
    bed = _band_noise(n, sr, 2500.0, 6500.0, rng)
    drops = (rng.random(n) < 400.0 / sr) * rng.uniform(0.5, 1.0, n)
    drops[0] = 1.0
    crackle = np.convolve(drops, np.exp(-np.arange(int(0.002 * sr) + 1) / (0.0005 * sr)), mode="same")
    burst = 0.5 + 0.5 * np.exp(-t / 0.04)  # the first drops land together: a clear onset
    return (bed / (np.abs(bed).max() + 1e-9) + 0.3 * crackle) * burst * np.exp(-1.2 * t)


def _render_wind(n, sr, rng, t):
    bed = _band_noise(n, sr, 150.0, 600.0, rng)
    swell = 1.0 + 0.3 * np.sin(2 * np.pi * 2.0 * t + rng.uniform(0, 2 * np.pi))
    gust = 0.4 + 0.6 * np.exp(-t / 0.06)  # a gust front: a clear onset
    return bed * swell * gust * np.exp(-1.5 * t)


def _render_drum(n, sr, rng, t):
    f_start, f_end = 110.0 * rng.uniform(0.95, 1.05), 55.0
    freq = f_end + (f_start - f_end) * np.exp(-t / 0.03)
    body = _sweep(t, freq, sr) * np.exp(-t / 0.09)
    click = _band_noise(n, sr, 1000.0, 4000.0, rng) * np.exp(-t / 0.004)
    return body + 0.3 * click / (np.abs(click).max() + 1e-9)


def _render_knock(n, sr, rng, t):
    f0 = 420.0 * rng.uniform(0.95, 1.05)
    body = _partials(t, f0, [(1.0, 1.0, 45.0), (2.2, 0.6, 60.0), (3.9, 0.25, 80.0)], sr / 2)
    tap = _band_noise(n, sr, 600.0, 2000.0, rng) * np.exp(-t / 0.003)
    return body + 0.4 * tap / (np.abs(tap).max() + 1e-9)


def _render_clap(n, sr, rng, t):
    burst = _band_noise(n, sr, 900.0, 3200.0, rng)
    # a hand clap is a few reflections of the same burst within ~15 ms
    env = np.exp(-t / 0.012)
    for delay_s in (0.006, 0.013):
        d = int(delay_s * sr)
        env[d:] += 0.6 * np.exp(-t[: n - d] / 0.008)
    return burst * env


def _render_siren(n, sr, rng, t):
    centre = 900.0 * rng.uniform(0.97, 1.03)
    freq = centre + 250.0 * np.sin(2 * np.pi * t / max(t[-1], 1e-3) - np.pi / 2)
    return (_sweep(t, freq, sr) + 0.3 * _sweep(t, 3 * freq, sr)) * np.exp(-0.5 * t)


def _render_chirp(n, sr, rng, t):
    f_lo = 1800.0 * rng.uniform(0.97, 1.03)
    f_hi = min(5200.0, 0.45 * sr)
    freq = f_lo * (f_hi / f_lo) ** (t / max(t[-1], 1e-3))
    return _sweep(t, freq, sr) * np.exp(-3.0 * t)


_RENDERERS = {
    "bell": _render_bell,
    "flute": _render_flute,
    "buzz": _render_buzz,
    "rain": _render_rain,
    "wind": _render_wind,
    "drum": _render_drum,
    "knock": _render_knock,
    "clap": _render_clap,
    "siren": _render_siren,
    "chirp": _render_chirp,
}


def render_event(
    name: str, sample_rate: int, rng: np.random.Generator, duration_s: float | None = None
) -> np.ndarray:
    """One mono float32 event of class `name`, onset at sample 0, peak drawn from [0.5, 0.9].

    `duration_s` None = the class's typical length varied by +-15% (drawn from `rng`).
    The event has a 2 ms attack and a 10 ms fade at its end, so it never clicks off.
    """
    if name not in CATALOG:
        raise ValueError(f"unknown sound class '{name}'; known: {', '.join(SOUND_CLASSES)}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if duration_s is None:
        duration_s = CATALOG[name].duration_s * rng.uniform(0.85, 1.15)
    n = max(int(round(duration_s * sample_rate)), 8)
    t = _time(n, sample_rate)
    x = _RENDERERS[name](n, sample_rate, rng, t)
    attack = max(int(ATTACK_S * sample_rate), 1)
    fade = min(max(int(0.01 * sample_rate), 1), n // 2)
    x[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False) + 1.0 / attack
    x[n - fade :] *= np.linspace(1.0, 0.0, fade)
    peak = np.abs(x).max()
    if peak <= 0 or not np.isfinite(peak):
        raise ValueError(f"sound class '{name}' rendered silence at {sample_rate} Hz")
    return (x * (rng.uniform(0.5, 0.9) / peak)).astype(np.float32)
