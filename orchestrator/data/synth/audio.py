"""Stereo audio of a scene: events placed at their onsets, spatialised by ITD and ILD (pure numpy).

Spatial model: a source at azimuth az (degrees, positive = right) reaches the far ear
|0.7 ms * sin(az)| later (a fractional delay, applied as an FFT phase shift) and
ILD_MAX_DB * |sin(az)| quieter (split evenly: near ear +half, far ear -half).
Each event is spatialised at its object's azimuth at its onset frame.
"""
from __future__ import annotations

import numpy as np

from common.soundclasses import render_event
from orchestrator.data.synth.scene import Scene

ITD_MAX_S = 0.7e-3
"""Interaural delay at 90 degrees, in seconds."""
ILD_MAX_DB = 6.0
"""Interaural level difference at 90 degrees, in dB."""


def right_lag_s(azimuth_deg: float) -> float:
    """How much later the right channel hears a source than the left, in seconds.

    Positive for a source on the left (same sign convention as rewards.dsp.gcc_phat_itd).
    """
    return float(-ITD_MAX_S * np.sin(np.deg2rad(azimuth_deg)))


def ear_gains(azimuth_deg: float) -> tuple[float, float]:
    """(left, right) linear gains: the ear nearer the source is louder by ILD_MAX_DB*|sin(az)| dB."""
    half_db = 0.5 * ILD_MAX_DB * float(np.sin(np.deg2rad(azimuth_deg)))
    return 10.0 ** (-half_db / 20.0), 10.0 ** (half_db / 20.0)


def fractional_delay(x: np.ndarray, delay_samples: float) -> np.ndarray:
    """`x` delayed by a (sub-sample) number of samples via an FFT phase shift; same length, zero-padded
    internally so nothing wraps around."""
    if delay_samples == 0:
        return x.copy()
    pad = int(np.ceil(abs(delay_samples))) + 16
    n = x.size + 2 * pad
    spec = np.fft.rfft(np.concatenate([np.zeros(pad), x, np.zeros(pad)]))
    spec *= np.exp(-2j * np.pi * np.fft.rfftfreq(n) * delay_samples)
    return np.fft.irfft(spec, n)[pad : pad + x.size]


def spatialise(mono: np.ndarray, azimuth_deg: float, sample_rate: int) -> np.ndarray:
    """[2, len(mono) + margin] stereo image of a mono event; the near ear keeps the onset at sample 0."""
    lag = right_lag_s(azimuth_deg) * sample_rate  # samples; > 0: delay right, < 0: delay left
    margin = int(np.ceil(abs(lag))) + 1
    padded = np.concatenate([mono.astype(np.float64), np.zeros(margin)])
    g_left, g_right = ear_gains(azimuth_deg)
    left = fractional_delay(padded, max(-lag, 0.0)) * g_left
    right = fractional_delay(padded, max(lag, 0.0)) * g_right
    return np.stack([left, right])


def render_scene_audio(scene: Scene, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Ground-truth stereo float32 [2, N] of a scene, N = round(duration_s * sample_rate), peak <= 0.95."""
    n = int(round(scene.duration_s * sample_rate))
    mix = np.zeros((2, n))
    object_gain = {i: 10.0 ** (rng.uniform(-4.0, 0.0) / 20.0) for i, o in enumerate(scene.objects) if o.sounding}
    for event in scene.events:
        obj = scene.objects[event.object_index]
        azimuth = float(obj.azimuth_track[event.frame])
        stereo = spatialise(render_event(obj.sound_class, sample_rate, rng), azimuth, sample_rate)
        start = int(round(event.time_s * sample_rate))
        length = min(stereo.shape[1], n - start)
        if length > 0:
            mix[:, start : start + length] += object_gain[event.object_index] * stereo[:, :length]
    mix *= 10.0 ** (scene.gain_db / 20.0)
    peak = np.abs(mix).max()
    if peak > 0.95:
        mix *= 0.95 / peak
    mix += 10.0 ** (scene.noise_db / 20.0) * rng.standard_normal((2, n))
    return np.clip(mix, -1.0, 1.0).astype(np.float32)
