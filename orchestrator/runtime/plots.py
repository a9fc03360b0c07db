"""PNG figures logged to MLflow: spectrograms and reward curves (matplotlib, headless)."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def spectrogram_png(audio: np.ndarray, sample_rate: int, path: str, title: str = "") -> str:
    """Left and right log-magnitude spectrograms of a stereo waveform [2, N], one above the other."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    fig, axes = plt.subplots(len(audio), 1, figsize=(7, 2.2 * len(audio)), sharex=True)
    axes = np.atleast_1d(axes)
    nfft = 512 if sample_rate >= 16000 else 256
    for ax, channel, name in zip(axes, audio, ("left", "right")):
        ax.specgram(channel + 1e-7, NFFT=nfft, Fs=sample_rate, noverlap=nfft // 2, cmap="magma")
        ax.set_ylabel(f"{name} Hz")
    axes[-1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def reward_curves_png(history: Sequence[Mapping[str, float]], path: str, keys: Sequence[str], title: str = "") -> str:
    """One line per metric key over training steps (`step` in each history row)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [row.get("step", i) for i, row in enumerate(history)]
    for key in keys:
        values = [row.get(key, np.nan) for row in history]
        if not np.all(np.isnan(values)):
            ax.plot(steps, values, label=key, marker="." if len(steps) < 60 else None)
    ax.set_xlabel("learner step")
    ax.set_ylabel("mean reward")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
