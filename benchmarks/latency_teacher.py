"""A benchmark-only teacher whose cost is a fixed wait per call: a stand-in for a remote GPU model.

Not a production backend (it is not in the `rewards` registry): the pool benchmark builds it from a
factory. The wait does not use a CPU, so a pool of it should scale with replicas even on 2 cores.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from common.types import Clip, Grade
from rewards.base import Teacher


class FixedLatencyTeacher(Teacher):
    """Waits `latency_s` per grade call, then grades each waveform by its RMS level."""

    teacher = "benchmark"
    backend = "fixed_latency"
    reward_range = (0.0, 1.0)

    def __init__(self, latency_s: float = 0.05):
        """latency_s: seconds every call waits, whatever the batch size (a model's round trip)."""
        if latency_s < 0:
            raise ValueError(f"{self.describe()}: latency_s must be >= 0, got {latency_s}")
        self.latency_s = latency_s

    def grade(self, audio: Sequence[np.ndarray], sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        time.sleep(self.latency_s)
        return [Grade(float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))) for a in audio]
