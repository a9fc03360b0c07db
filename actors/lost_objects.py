"""Objects a step depends on that the cluster lost: the node that held them died (preempted, removed,
its raylet killed), or their owner did. Ray rebuilds a lost object from its lineage only when it
is the output of a task that may be retried; a rollout worker's outputs (waveforms, window
records) come from a non-restartable actor, so they are gone with their node, and so is every
task output built from them (experience). Such a step is produced again by the controller (same
seeds, same clips): `InputsLost` tells it to, wherever the loss surfaced (a reward replica, a
learner rank's fetch of its experience)."""
from __future__ import annotations

from ray.exceptions import GetTimeoutError, NodeDiedError, ObjectLostError

LOST = (ObjectLostError, NodeDiedError, GetTimeoutError)
"""Errors of `ray.get` that mean the object is gone or cannot be fetched: ObjectLostError and its
kinds (OwnerDiedError, ObjectReconstructionFailedError, ObjectFetchTimedOutError, ...; also a
RayTaskError whose input could not be reconstructed, which Ray makes an instance of its cause),
a task whose node died, and a fetch past its timeout."""


class InputsLost(RuntimeError):
    """Objects of a step were lost; the message names where it was seen and the cause. The step's
    rollouts, grades and experience must be produced again."""


def is_lost(error: BaseException) -> bool:
    """Whether `error` (as raised by ray.get, possibly a RayTaskError) means lost objects."""
    return isinstance(error, LOST) or isinstance(getattr(error, "cause", None), LOST)


def first_line(error: BaseException) -> str:
    """`Type: first line of the message` of an error (Ray's messages run over many lines)."""
    text = str(error).strip().splitlines()
    lost = [line for line in text if "Failed to retrieve object" in line or "lost" in line.lower()]
    return f"{type(error).__name__}: {(lost or text or [''])[0].strip()[:300]}"
