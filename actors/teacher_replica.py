"""One replica of a reward pool: a Ray actor that holds one Teacher and grades batches.

The controller sends object refs, not arrays: the replica fetches the waveforms and clips from
the object store itself, so audio never passes through the controller. Ray's own restarts and
task retries are off (`max_restarts=0`): the pool decides when a replica is replaced and which
batch is retried, so that every sample is graded exactly once.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Sequence

import ray

from common.types import Grade
from rewards.base import Teacher, TeacherError


def limit_torch_threads(n: int) -> None:
    """Set torch's intra-op threads to `n` if torch is imported (a replica owns a CPU fraction)."""
    torch = sys.modules.get("torch")
    if torch is not None and n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


@ray.remote(max_restarts=0, max_task_retries=0)
class TeacherReplica:
    """A Teacher inside a Ray actor; one batch at a time."""

    def __init__(self, teacher_factory: Callable[[], Teacher], index: int, torch_threads: int = 1):
        """teacher_factory: picklable zero-arg callable building the Teacher (e.g. a functools.partial
        of `rewards.base.build_teacher`); index: the replica's stable slot in its pool."""
        limit_torch_threads(torch_threads)
        self.index = index
        self.teacher = teacher_factory()
        if not isinstance(self.teacher, Teacher):
            raise TypeError(f"teacher_factory {teacher_factory!r} returned {type(self.teacher).__name__}, not a Teacher")
        limit_torch_threads(torch_threads)  # the factory may have imported torch

    def ready(self) -> dict[str, Any]:
        """Which teacher this replica holds, once its constructor has finished."""
        return {"index": self.index, "teacher": self.teacher.describe(), "pid": os.getpid(),
                "reward_range": [float(v) for v in self.teacher.reward_range]}

    def grade(self, batch_id: str, audio_refs: Sequence[Any], clip_refs: Sequence[Any], sample_rate: int) -> list[Grade]:
        """Grade one batch: fetch the waveforms and clips by ref, return one Grade per waveform.

        A Teacher failure is raised as TeacherError naming the teacher/backend, batch and clip ids.
        """
        audio = ray.get(list(audio_refs))
        clips = ray.get(list(clip_refs))
        clip_ids = [getattr(c, "clip_id", "?") for c in clips]
        try:
            grades = self.teacher.grade(audio, sample_rate, clips)
        except Exception as exc:
            raise TeacherError(
                f"{self.teacher.describe()} failed on batch {batch_id} (clips {clip_ids}): {type(exc).__name__}: {exc}"
            ) from exc
        if len(grades) != len(audio):
            raise TeacherError(
                f"{self.teacher.describe()} returned {len(grades)} grades for {len(audio)} waveforms "
                f"in batch {batch_id} (clips {clip_ids})"
            )
        return list(grades)
