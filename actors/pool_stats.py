"""Latency and throughput accounting of one reward pool: plain Python, thread-safe, cheap.

The pool's dispatcher thread records events; any thread may read a snapshot. Throughput counts
only busy time (while at least one sample is pending), so idle gaps between training steps do
not dilute it. Latency percentiles come from a bounded window of the most recent samples.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable, Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, linearly interpolated; NaN when empty."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must lie in [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class PoolStats:
    """Counters and recent latencies of one pool."""

    def __init__(self, latency_window: int = 2048, clock: Callable[[], float] = time.monotonic):
        """latency_window: how many recent per-sample latencies the percentiles are taken over."""
        self._lock = threading.Lock()
        self._clock = clock
        self._latencies: deque[float] = deque(maxlen=latency_window)
        self._pending = 0
        self._busy_since: float | None = None
        self._busy_total = 0.0
        self.completed = 0
        self.failed = 0
        self.restarts = 0
        self.retries = 0
        self.ignored_results = 0

    def submitted(self, n: int) -> None:
        """`n` samples entered the pool."""
        with self._lock:
            if self._pending == 0 and n > 0:
                self._busy_since = self._clock()
            self._pending += n

    def graded(self, latencies_s: Iterable[float]) -> None:
        """Samples left the pool with a grade; one latency (grade time - submit time) each."""
        lat = list(latencies_s)
        with self._lock:
            self._latencies.extend(lat)
            self.completed += len(lat)
            self._leave(len(lat))

    def dropped(self, n: int) -> None:
        """`n` samples left the pool with an error instead of a grade."""
        with self._lock:
            self.failed += n
            self._leave(n)

    def _leave(self, n: int) -> None:
        self._pending -= n
        if self._pending == 0 and self._busy_since is not None:
            self._busy_total += self._clock() - self._busy_since
            self._busy_since = None

    def count(self, *, restarts: int = 0, retries: int = 0, ignored_results: int = 0) -> None:
        """Add to the fault counters."""
        with self._lock:
            self.restarts += restarts
            self.retries += retries
            self.ignored_results += ignored_results

    def snapshot(self) -> dict[str, float]:
        """Completed/failed counts, samples per busy second, latency p50/p95, fault counters."""
        with self._lock:
            busy = self._busy_total + (self._clock() - self._busy_since if self._busy_since is not None else 0.0)
            lat = list(self._latencies)
            return {
                "pending": self._pending,
                "completed": self.completed,
                "failed": self.failed,
                "samples_per_s": self.completed / busy if busy > 0 else 0.0,
                "latency_p50_s": percentile(lat, 50.0),
                "latency_p95_s": percentile(lat, 95.0),
                "restarts": self.restarts,
                "retries": self.retries,
                "ignored_results": self.ignored_results,
            }
