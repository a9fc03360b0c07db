"""semantic/signal: an offline stand-in for CLAP on SynthScenes.

CLAP scores how well audio matches a text. Without a hub there is no CLAP here, so this backend
does the same job for the SynthScenes world with signal processing:

- Audio side: a fixed timbre embedding of each sound event (see `timbre_embedding`), computed on
  the mean of the two ears' power spectra rather than on a mono downmix, so an inter-aural delay
  (which comb-filters a downmix: -0.06 on ground truth at 0.5 ms) cannot change the timbre: the event's
  mel band profile (level-free), spectral flatness, spectral-centroid mean and spread (sweeps
  move), active duration, level decay rate and envelope roughness. Dimensions are standardized
  with statistics of the prototype set, the 32 profile dims and the 6 statistics weighted as two
  equal groups, and the vector is normalized to unit length.
- Class prototypes: every class of `common.soundclasses` rendered with `render_event` for a few
  fixed seeds at the working sample rate, embedded, averaged. Built once per backend instance.
- Class posterior: softmax over the cosine similarities to the prototypes, with a temperature.
- Text side: the class names mentioned in the CoT (`class_names_in_text`) of the semantic
  module (`text="semantic"`) or the whole joined CoT (`text="full"`).
- Multi-event clips: the audio is cut at onsets (spectral-flux peaks) into segments; each
  segment at most `silence_db` below the loudest frame gets a posterior.
- Reward in [0, 1]: 0.5 * precision + 0.5 * recall, where precision = mean over segments of the
  posterior mass on the named classes (does every sound belong to the plan?) and recall = mean
  over named classes of their best posterior over segments (is every planned sound there?). For a
  single-event clip both equal the posterior of the named class. Silent audio gets 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from common.soundclasses import SOUND_CLASSES, class_names_in_text, render_event
from common.types import Clip, Grade, join_cot
from rewards import dsp
from rewards.base import Teacher, TeacherError, register_backend

_N_FFT, _N_MELS, _FMIN = 512, 32, 50.0
_N_STATS = 6


@dataclass
class SemanticSignalOptions:
    """Options of the semantic/signal backend."""

    sample_rate: int = 16000
    """Working sample rate in Hz: audio and prototypes are both at this rate."""
    text: str = "semantic"
    """Which CoT text names the expected classes: `semantic` (that module only) or `full` (all four)."""
    temperature: float = 0.05
    """Softmax temperature over cosine similarities; smaller gives a sharper class posterior."""
    prototype_seeds: int = 6
    """How many rendered examples per class are averaged into its prototype."""
    silence_db: float = 30.0
    """Segments whose loudest frame is more than this many dB below the clip's loudest frame are ignored."""
    silence_dbfs: float = -70.0
    """Audio whose loudest frame (RMS) is below this level in dBFS counts as silent (reward 0)."""
    min_segment_s: float = 0.05
    """Segments shorter than this are merged into the previous one."""


def _frame_power(x: np.ndarray, hop: int) -> np.ndarray:
    """STFT power [bins, frames] of mono `[N]` audio, or the mean of the channels' powers for `[C, N]`."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return dsp.stft_magnitude(x, _N_FFT, hop) ** 2
    return np.mean([dsp.stft_magnitude(ch, _N_FFT, hop) ** 2 for ch in x], axis=0)


def timbre_embedding(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Raw timbre features of one event (mono `[N]` or channels `[C, N]`, whose powers are averaged):
    32 mel-profile dims (dB, peak at 0) + 6 statistics.

    Statistics: log10 spectral flatness, mean and spread of the mel centroid, log active
    duration, level slope (dB/s / 50) and roughness (mean |2nd difference| of frame level, / 3).
    Only frames within 20 dB of the loudest frame count (profile floor -40 dB). Silent input gives zeros.
    """
    hop = max(1, sample_rate // 100)
    power = _frame_power(x, hop)
    mel = dsp.mel_filterbank(sample_rate, _N_FFT, _N_MELS, _FMIN, sample_rate / 2.0) @ power
    energy = power.sum(axis=0)
    if energy.max(initial=0.0) <= 0:
        return np.zeros(_N_MELS + _N_STATS)
    active = energy > energy.max() * 1e-2
    w = energy[active] / energy[active].sum()
    profile = 10 * np.log10(mel[:, active] @ w + 1e-12)
    profile = np.maximum(profile - profile.max(), -40.0)
    p = power[:, active]
    flatness = np.exp(np.mean(np.log(p + 1e-12), axis=0)) / (p.mean(axis=0) + 1e-12)
    centroid = (np.arange(_N_MELS) @ mel[:, active]) / (mel[:, active].sum(axis=0) + 1e-12)
    c_mean = float(np.sum(w * centroid))
    c_std = float(np.sqrt(np.sum(w * (centroid - c_mean) ** 2)))
    t = np.flatnonzero(active) * hop / sample_rate
    level = 10 * np.log10(energy[active] + 1e-12)
    slope = float(np.polyfit(t, level, 1)[0]) if t.size > 2 else 0.0
    rough = float(np.mean(np.abs(np.diff(level, 2)))) if t.size > 3 else 0.0
    stats = [np.log10(np.sum(w * flatness) + 1e-6), 4 * c_mean / _N_MELS, c_std, np.log(t[-1] - t[0] + 0.01),
             slope / 50.0, rough / 3.0]
    return np.concatenate([profile, stats])


def segment_events(x: np.ndarray, sample_rate: int, silence_db: float, min_segment_s: float) -> list[np.ndarray]:
    """Audio (mono `[N]` or `[C, N]`) cut at the onsets of its mono mix; segments far below the loudest frame
    are dropped."""
    env, frame_rate = dsp.onset_envelope(dsp.to_mono(x), sample_rate)
    onsets = dsp.pick_onsets(env, frame_rate)
    bounds = [0]
    for t in onsets:
        b = max(0, int(round((t - 0.02) * sample_rate)))
        if b - bounds[-1] >= min_segment_s * sample_rate:
            bounds.append(b)
    bounds.append(x.shape[-1])
    hop = max(1, sample_rate // 100)
    loudest = _frame_power(x, hop).sum(axis=0).max(initial=0.0)
    floor = loudest * 10 ** (-silence_db / 10)
    segments = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        seg = x[..., a:b]
        if seg.size and _frame_power(seg, hop).sum(axis=0).max(initial=0.0) >= floor:
            segments.append(seg)
    return segments


@register_backend("semantic", "signal", SemanticSignalOptions)
class SemanticSignalTeacher(Teacher):
    """Class posterior of a timbre embedding against rendered prototypes, scored on the CoT's classes."""

    reward_range = (0.0, 1.0)

    def __init__(self, options: SemanticSignalOptions | None = None):
        self.options = options or SemanticSignalOptions()
        if self.options.text not in ("semantic", "full"):
            raise TeacherError(f"rewards.semantic.options.text: expected 'semantic' or 'full', got '{self.options.text}'")
        if self.options.temperature <= 0 or self.options.prototype_seeds < 1:
            raise TeacherError("rewards.semantic.options: temperature must be > 0 and prototype_seeds >= 1")
        sr = self.options.sample_rate
        raw = {
            c: np.array([timbre_embedding(render_event(c, sr, np.random.default_rng(10_000 + i)), sr)
                         for i in range(self.options.prototype_seeds)])
            for c in SOUND_CLASSES
        }
        stacked = np.concatenate(list(raw.values()))
        self._mean, self._std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
        self.classes: tuple[str, ...] = SOUND_CLASSES
        self.prototypes = np.stack([self.normalize(raw[c].mean(axis=0)) for c in SOUND_CLASSES])
        """Unit-length prototype per class, [n_classes, dim], rows in `classes` order."""

    def normalize(self, features: np.ndarray) -> np.ndarray:
        """Standardized, group-balanced, unit-length embedding from raw `timbre_embedding` features."""
        z = (features - self._mean) / self._std
        z = np.concatenate([z[:_N_MELS] / np.sqrt(_N_MELS), z[_N_MELS:] / np.sqrt(_N_STATS)])
        return z / max(np.linalg.norm(z), 1e-12)

    def posterior(self, x: np.ndarray) -> np.ndarray:
        """Class posterior `[n_classes]` of one event (mono `[N]` or `[C, N]`) at the working rate."""
        sims = self.prototypes @ self.normalize(timbre_embedding(x, self.options.sample_rate))
        logits = sims / self.options.temperature
        p = np.exp(logits - logits.max())
        return p / p.sum()

    def profile_class(self, x: np.ndarray) -> str:
        """The nearest class prototype on the mel band profile alone (no envelope statistics, no
        segmentation) of one whole clip (mono `[N]` or `[C, N]`) at the working rate: the timbre the
        clip has whatever its envelope looks like."""
        z = self.normalize(timbre_embedding(x, self.options.sample_rate))[:_N_MELS]
        return self.classes[int(np.argmax(self.prototypes[:, :_N_MELS] @ z))]

    def expected_classes(self, clip: Clip) -> list[str]:
        """Class names the clip's CoT asks for; TeacherError when it names none."""
        text = clip.cot.get("semantic", "") if self.options.text == "semantic" else join_cot(clip.cot)
        names = class_names_in_text(text)
        if not names:
            raise TeacherError(
                f"{self.describe()}: the {self.options.text} CoT text of clip '{clip.clip_id}' names no known "
                f"sound class ({', '.join(SOUND_CLASSES)}): {text!r}"
            )
        return names

    def grade_one(self, audio: np.ndarray, sample_rate: int, clip: Clip) -> Grade:
        """Grade of one generated waveform (any channel count) against its clip's CoT."""
        names = self.expected_classes(clip)
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim not in (1, 2):
            raise TeacherError(f"{self.describe()}: clip '{clip.clip_id}': expected audio [N] or [C, N], got {x.shape}")
        x = dsp.resample(x, sample_rate, self.options.sample_rate)
        hop = max(1, self.options.sample_rate // 100)
        if x.size == 0 or dsp.amplitude_to_db(
                max(dsp.frame_rms(ch, 2 * hop, hop).max() for ch in np.atleast_2d(x))) < self.options.silence_dbfs:
            return Grade(0.0, {"segments": 0.0, "precision": 0.0, "recall": 0.0, "silent": 1.0})
        segments = segment_events(x, self.options.sample_rate, self.options.silence_db, self.options.min_segment_s)
        post = np.stack([self.posterior(s) for s in segments])  # [S, C]
        named = np.array([self.classes.index(n) for n in names])
        precision = float(post[:, named].sum(axis=1).mean())
        recall = float(post[:, named].max(axis=0).mean())
        reward = float(np.clip(0.5 * precision + 0.5 * recall, 0.0, 1.0))
        top = self.classes[int(post.sum(axis=0).argmax())]
        return Grade(reward, {"segments": float(len(segments)), "precision": precision, "recall": recall,
                              "silent": 0.0, "top_class_index": float(self.classes.index(top))})

    def grade(self, audio: Sequence[np.ndarray], sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        if len(audio) != len(clips):
            raise TeacherError(f"{self.describe()}: {len(audio)} waveforms for {len(clips)} clips")
        return [self.grade_one(a, sample_rate, c) for a, c in zip(audio, clips)]
