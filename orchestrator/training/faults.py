"""The run's fault budget (`train.max_failures`): each fault survived in the job is recorded
(kind, message, recovery seconds, step resumed from) and the first one past the budget stops the run."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


class RunFailed(RuntimeError):
    """A fault the run may not survive: more than `train.max_failures` of them."""


@dataclass
class FaultBudget:
    """Counts the faults a run has survived; `record` raises RunFailed once there are too many."""

    max_failures: int
    """train.max_failures: faults survived; one more stops the run (0 = the first stops it)."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """One dict per fault: kind (`learner`, `checkpoint` or `lost_objects`), message, time, and once recovered,
    `recovery_s` and `resumed_from_step`."""

    def record(self, kind: str, message: str) -> dict[str, Any]:
        """Note a fault; raise RunFailed (with `message`, which names the rank or checkpoint and the
        cause) when it is one more than the budget. Returns the event, to complete after recovery."""
        event = {"kind": kind, "message": message, "time": time.time()}
        self.events.append(event)
        if len(self.events) > self.max_failures:
            raise RunFailed(f"{message} -- stopping: fault {len(self.events)} of a budget of "
                            f"train.max_failures={self.max_failures}")
        return event
