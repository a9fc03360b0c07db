"""A deterministic test teacher: reward = mean |audio|, with configurable delay, stall and failure.

Importable as `helpers.fake_teachers` when tests/ is on sys.path (pytest puts it there; Ray workers
get it through runtime_env PYTHONPATH), so reward-pool tests need no real backend.
"""
from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from common.types import Clip, Grade
from rewards.base import Teacher


def expected_reward(audio: np.ndarray) -> float:
    """What `MeanAbsTeacher` returns for one waveform."""
    return float(np.abs(audio).mean())


class MeanAbsTeacher(Teacher):
    """Grades a waveform by its mean absolute value; records batch size, pid and timing."""

    teacher = "timing"
    backend = "mean_abs_test"

    def __init__(self, sleep_s: float = 0.0, stall_once_path: str | None = None, stall_s: float = 60.0,
                 fail_clip_ids: Sequence[str] = (), gate_path: str | None = None):
        """sleep_s: delay of every grade call. stall_once_path: the first call (across all processes)
        that creates this file stalls `stall_s` seconds. fail_clip_ids: clips that raise ValueError.
        gate_path: every call waits (up to 120 s) until this file exists."""
        self.sleep_s = sleep_s
        self.stall_once_path = stall_once_path
        self.stall_s = stall_s
        self.fail_clip_ids = set(fail_clip_ids)
        self.gate_path = gate_path

    def _claim_stall(self) -> bool:
        if not self.stall_once_path:
            return False
        try:
            os.close(os.open(self.stall_once_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def _wait_for_gate(self) -> None:
        deadline = time.monotonic() + 120.0
        while self.gate_path and not os.path.exists(self.gate_path):
            if time.monotonic() > deadline:
                raise TimeoutError(f"gate file {self.gate_path} never appeared")
            time.sleep(0.01)

    def grade(self, audio, sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        start = time.time()
        bad = [c.clip_id for c in clips if c.clip_id in self.fail_clip_ids]
        if bad:
            raise ValueError(f"cannot grade clips {bad}")
        self._wait_for_gate()
        time.sleep(self.stall_s if self._claim_stall() else self.sleep_s)
        end = time.time()
        info = {"batch_size": float(len(audio)), "pid": float(os.getpid()), "start": start, "end": end}
        return [Grade(expected_reward(a), dict(info)) for a in audio]
