"""A reward pool: N `TeacherReplica` actors of one teacher behind a batching, fault-tolerant handle.

The controller calls `submit` with sample ids and object refs (waveform, clip) and later `result`;
it may submit to several pools before collecting from any. A dispatcher thread per pool groups
queued samples into batches (up to `max_batch`, or whatever arrived within `max_wait_s`), sends
each batch to an idle replica (one batch per replica at a time) and collects results with
`ray.wait`. A replica that dies or overruns `call_timeout_s` is killed and replaced under the same
index, and its batch is retried up to `max_retries` times. A Teacher exception is a property of the
input, not of the replica: it is raised to the caller, not retried.

Grades are keyed by sample id: every sample is delivered exactly once; a late or duplicate result
is ignored and counted (`ignored_results`).
"""
from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import ray
from ray.exceptions import RayActorError, RayError, RayTaskError

from actors.config import PoolConfig
from actors.lost_objects import InputsLost, first_line, is_lost
from actors.placement import placement_options
from actors.pool_stats import PoolStats
from actors.teacher_replica import TeacherReplica
from common.types import Grade
from rewards.base import Teacher, TeacherError

_MAX_POLL_S = 0.5
"""Longest the dispatcher blocks before it re-checks deadlines and shutdown."""
_MIN_POLL_S = 0.005
"""Shortest wait for results while a replica idles (bounds polling when max_wait_s is ~0)."""


class RewardPoolError(RuntimeError):
    """A pool could not grade: replicas kept failing, could not start, or the pool was shut down."""


def batch_size_for(queued: int, idle_replicas: int, max_batch: int) -> int:
    """Samples per batch when `queued` samples are due and `idle_replicas` can take them.

    Full batches when there is enough work; otherwise the due samples are spread evenly over the
    idle replicas, so a small step does not wait on one replica while the others idle.
    """
    if queued <= 0 or idle_replicas <= 0:
        return 0
    return max(1, min(max_batch, math.ceil(queued / idle_replicas)))


@dataclass(eq=False)
class PoolTicket:
    """Handle of one `submit`; pass it to `RewardPool.result`."""

    pool: str
    """Name of the pool it was submitted to."""
    sample_ids: list[str]
    """The submitted sample ids, in submission order."""
    submitted_at: float
    """time.monotonic() of the submission."""
    grades: dict[str, Grade] = field(default_factory=dict)
    """Grades delivered so far, by sample id."""
    deliveries: dict[str, int] = field(default_factory=dict)
    """How many grades were delivered per sample id (exactly 1 each once the ticket is done)."""
    error: BaseException | None = None
    """Why the ticket failed, if it did."""
    done: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set when every sample is graded or the ticket failed."""


@dataclass
class _Sample:
    sample_id: str
    audio_ref: Any
    clip_ref: Any
    sample_rate: int
    ticket: PoolTicket
    queued_at: float


@dataclass
class _Batch:
    batch_id: str
    samples: list[_Sample]
    attempts: int = 0


@dataclass
class _Replica:
    index: int
    actor: Any
    generation: int = 0
    start_failures: int = 0


@dataclass
class _Call:
    replica: _Replica
    deadline: float
    batch: _Batch | None = None
    """None for the replica's start (`ready`) call."""


class RewardPool:
    """N replicas of one teacher; batching, restarts, retries, backpressure, live stats."""

    def __init__(self, name: str, pool_cfg: PoolConfig, teacher_factory: Callable[[], Teacher],
                 sample_rate: int | None = None):
        """name: the pool's name in messages and metrics (usually the teacher: `timing`).
        teacher_factory: picklable zero-arg callable that builds the Teacher inside each replica.
        sample_rate: default sample rate of submitted waveforms (submit may override it)."""
        if pool_cfg.replicas < 1 or pool_cfg.max_batch < 1 or pool_cfg.max_queue < 1:
            raise ValueError(f"pools.{name}: replicas, max_batch and max_queue must be >= 1, got {pool_cfg}")
        self.name = name
        self.cfg = pool_cfg
        self.teacher = name
        """`teacher/backend` once a replica has reported it; the pool name until then."""
        self.reward_range: tuple[float, float] = (-float("inf"), float("inf"))
        """Range of valid rewards, as the built teacher reports it (known once a replica started)."""
        self._factory = teacher_factory
        self._sample_rate = sample_rate
        self._cond = threading.Condition()
        self._queue: deque[_Sample] = deque()
        self._retry: deque[_Batch] = deque()
        self._owner: dict[str, PoolTicket] = {}
        self._pending = 0
        self._in_flight = 0
        self._started = 0
        self._closed = False
        self._fatal: BaseException | None = None
        self._stats = PoolStats()
        self._batch_ids = itertools.count()
        # Owned by the dispatcher thread after construction:
        self._replicas = [self._new_replica(i, 0) for i in range(pool_cfg.replicas)]
        self._calls: dict[Any, _Call] = {}
        self._idle: deque[_Replica] = deque()
        for r in self._replicas:
            self._start(r)
        self._thread = threading.Thread(target=self._run, name=f"reward-pool-{name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller side

    def submit(self, sample_ids: Sequence[str], audio_refs: Sequence[Any], clip_refs: Sequence[Any],
               sample_rate: int | None = None, timeout: float | None = None) -> PoolTicket:
        """Queue samples for grading; returns at once unless more than `max_queue` samples are pending.

        audio_refs: ObjectRefs of float32 [2, N] waveforms; clip_refs: ObjectRefs of their Clips.
        timeout: longest to block on backpressure (None = no limit); TimeoutError after it.
        """
        ids = [str(s) for s in sample_ids]
        if not (len(ids) == len(audio_refs) == len(clip_refs)):
            raise ValueError(f"pool '{self.name}': {len(ids)} sample ids, {len(audio_refs)} audio refs, "
                             f"{len(clip_refs)} clip refs: they must match one to one")
        if len(set(ids)) != len(ids):
            dup = sorted({s for s in ids if ids.count(s) > 1})
            raise ValueError(f"pool '{self.name}': duplicate sample ids in one submission: {dup}")
        sr = sample_rate if sample_rate is not None else self._sample_rate
        if sr is None:
            raise ValueError(f"pool '{self.name}': no sample_rate given to submit() or the pool")
        now = time.monotonic()
        ticket = PoolTicket(self.name, ids, now)
        if not ids:
            ticket.done.set()
            return ticket
        deadline = None if timeout is None else now + timeout
        with self._cond:
            while self._usable() and self._pending > 0 and self._pending + len(ids) > self.cfg.max_queue:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"pool '{self.name}': {self._pending} samples pending (max_queue "
                                       f"{self.cfg.max_queue}); could not queue {len(ids)} more within {timeout}s")
                self._cond.wait(left)
            self._raise_if_unusable()
            taken = [s for s in ids if s in self._owner]
            if taken:
                raise ValueError(f"pool '{self.name}': sample ids already pending: {taken[:8]}")
            queued_at = time.monotonic()
            for sid, a, c in zip(ids, audio_refs, clip_refs):
                self._owner[sid] = ticket
                self._queue.append(_Sample(sid, a, c, int(sr), ticket, queued_at))
            self._pending += len(ids)
            self._stats.submitted(len(ids))
            self._cond.notify_all()
        return ticket

    def result(self, ticket: PoolTicket, timeout: float | None = None) -> list[Grade]:
        """The ticket's grades in submission order; raises its error (TeacherError, RewardPoolError)."""
        if not ticket.done.wait(timeout):
            missing = [s for s in ticket.sample_ids if s not in ticket.grades]
            raise TimeoutError(f"pool '{self.name}' ({self.teacher}): {len(missing)} of {len(ticket.sample_ids)} "
                               f"samples not graded within {timeout}s: {missing[:8]}")
        if ticket.error is not None:
            raise ticket.error
        return [ticket.grades[s] for s in ticket.sample_ids]

    def grade(self, sample_ids: Sequence[str], audio_refs: Sequence[Any], clip_refs: Sequence[Any],
              sample_rate: int | None = None, timeout: float | None = None) -> list[Grade]:
        """submit + result."""
        return self.result(self.submit(sample_ids, audio_refs, clip_refs, sample_rate), timeout)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until every replica has started once (its teacher is built)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._usable() and self._started < len(self._replicas):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"pool '{self.name}': {self._started} of {len(self._replicas)} replicas "
                                       f"started within {timeout}s")
                self._cond.wait(left)
            self._raise_if_unusable()

    def stats(self) -> dict[str, float]:
        """Live figures: queue_depth, in_flight, completed, samples_per_s, latency_p50_s, latency_p95_s,
        restarts, retries, replicas, plus failed, pending and ignored_results.

        Latency of a sample = its grade's delivery - its entry into the queue (after any backpressure
        wait); samples_per_s = grades delivered per second of busy time (some sample pending)."""
        with self._cond:
            out = self._stats.snapshot()
            queued = len(self._queue) + sum(len(b.samples) for b in self._retry)
            out.update(queue_depth=queued, in_flight=self._in_flight,
                       replicas=len(self._replicas))
        return out

    def replica_actor(self, index: int) -> Any:
        """The current actor handle of replica slot `index` (changes when the replica is replaced)."""
        return self._replicas[index].actor

    def shutdown(self) -> None:
        """Stop dispatching, fail what is still pending, kill the replicas."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            self._fail_tickets({s.ticket for s in self._queue} | set(self._owner.values()),
                               RewardPoolError(f"pool '{self.name}' ({self.teacher}) was shut down"))
        for r in self._replicas:
            self._kill(r)

    def __enter__(self) -> "RewardPool":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def _usable(self) -> bool:
        return not self._closed and self._fatal is None

    def _raise_if_unusable(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._closed:
            raise RewardPoolError(f"pool '{self.name}' ({self.teacher}) is shut down")

    # ------------------------------------------------------------------ dispatcher thread

    def _run(self) -> None:
        try:
            while self._step():
                pass
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            with self._cond:
                self._set_fatal(RewardPoolError(f"pool '{self.name}' dispatcher crashed: {exc!r}"))
            raise

    def _step(self) -> bool:
        """One round: dispatch due batches, wait for results, handle them. False when closed."""
        with self._cond:
            if not self._usable():
                return False
            batches = self._take_due_batches()
            if not batches and not self._calls:
                self._cond.wait(self._until_due())
                return True
            self._in_flight += sum(len(b.samples) for b in batches)
        for batch in batches:
            self._send(self._idle.popleft(), batch)
        wait_s = self._until_due() if (self._idle and self._has_queued()) else _MAX_POLL_S
        if self._idle:
            wait_s = min(wait_s, max(self.cfg.max_wait_s, _MIN_POLL_S))  # pick up new submissions promptly
        now = time.monotonic()
        wait_s = max(0.0, min([wait_s] + [c.deadline - now for c in self._calls.values()]))
        refs = list(self._calls)
        ready, _ = ray.wait(refs, num_returns=1, timeout=wait_s)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            self._handle(ref, self._calls.pop(ref))
        now = time.monotonic()
        for ref, call in list(self._calls.items()):
            if call.deadline <= now:
                del self._calls[ref]
                self._on_overdue(call)
        return True

    def _has_queued(self) -> bool:
        with self._cond:
            return bool(self._queue or self._retry)

    def _until_due(self) -> float:
        """Seconds until the oldest queued sample's batch is due (capped poll when nothing waits)."""
        with self._cond:
            if self._retry:
                return 0.0
            if not self._queue:
                return _MAX_POLL_S
            return max(0.0, min(_MAX_POLL_S, self._queue[0].queued_at + self.cfg.max_wait_s - time.monotonic()))

    def _take_due_batches(self) -> list[_Batch]:
        """Pop batches for idle replicas: retries first, then full or overdue queued samples (lock held)."""
        out: list[_Batch] = []
        while self._retry and len(out) < len(self._idle):
            out.append(self._retry.popleft())
        self._drop_failed_queued()
        free = len(self._idle) - len(out)
        due = self._queue and (len(self._queue) >= self.cfg.max_batch
                               or time.monotonic() - self._queue[0].queued_at >= self.cfg.max_wait_s)
        size = batch_size_for(len(self._queue), free, self.cfg.max_batch) if due else 0
        while size and self._queue and len(out) < len(self._idle):
            sr = self._queue[0].sample_rate
            samples = []
            while self._queue and len(samples) < size and self._queue[0].sample_rate == sr:
                samples.append(self._queue.popleft())
            out.append(_Batch(f"{self.name}-{next(self._batch_ids)}", samples))
        return out

    def _drop_failed_queued(self) -> None:
        """Forget queued samples whose ticket already failed (they were counted as dropped then)."""
        if any(s.ticket.error is not None for s in self._queue):
            self._queue = deque(s for s in self._queue if s.ticket.error is None)

    def _send(self, replica: _Replica, batch: _Batch) -> None:
        s = batch.samples
        ref = replica.actor.grade.remote(batch.batch_id, [x.audio_ref for x in s], [x.clip_ref for x in s],
                                         s[0].sample_rate)
        self._calls[ref] = _Call(replica, time.monotonic() + self.cfg.call_timeout_s, batch)

    def _handle(self, ref: Any, call: _Call) -> None:
        try:
            value = ray.get(ref)
        except RayError as exc:
            if call.batch is None:
                self._on_replica_failure(call, exc)
            elif is_lost(exc) and not isinstance(exc, RayActorError):
                # The batch's waveforms or clips were lost (their node died): not the replica's fault,
                # and no retry can fetch them. The caller produces them again.
                self._idle.append(call.replica)
                ids = [s.sample_id for s in call.batch.samples]
                err = InputsLost(f"pool '{self.name}' ({self.teacher}): the inputs of samples {ids[:8]} were lost "
                                 f"({first_line(exc)}); they must be produced again")
                err.__cause__ = exc
                self._fail_batch(call.batch, err)
            elif isinstance(exc, RayTaskError):  # the Teacher raised: bad input, not a bad replica
                self._idle.append(call.replica)
                ids = [s.sample_id for s in call.batch.samples]
                cause = getattr(exc, "cause", None) or exc
                err = TeacherError(f"pool '{self.name}' ({self.teacher}): teacher raised on samples {ids}: {cause}")
                err.__cause__ = exc
                self._fail_batch(call.batch, err)
            else:
                self._on_replica_failure(call, exc)
            return
        if call.batch is None:
            self._on_started(call.replica, value)
        else:
            self._idle.append(call.replica)
            self._deliver(call.batch, value)

    def _on_started(self, replica: _Replica, info: dict[str, Any]) -> None:
        replica.start_failures = 0
        self._idle.append(replica)
        with self._cond:
            self.teacher = info.get("teacher", self.teacher)
            if "reward_range" in info:
                self.reward_range = tuple(info["reward_range"])
            if replica.generation == 0:
                self._started += 1
            self._cond.notify_all()

    def _on_overdue(self, call: _Call) -> None:
        if call.batch is None:
            with self._cond:
                self._set_fatal(RewardPoolError(
                    f"pool '{self.name}': replica {call.replica.index} did not start within "
                    f"{self.cfg.start_timeout_s}s (needs num_cpus={self.cfg.num_cpus}, num_gpus={self.cfg.num_gpus}; "
                    f"cluster has {ray.available_resources()} free)"))
            return
        self._on_replica_failure(call, TimeoutError(f"call exceeded call_timeout_s={self.cfg.call_timeout_s}"))

    def _on_replica_failure(self, call: _Call, exc: BaseException) -> None:
        """Replace the replica (same index) and retry its batch, or give up after max_retries."""
        replica = call.replica
        reason = f"replica {replica.index}: {type(exc).__name__}: {exc}"
        if call.batch is None:
            replica.start_failures += 1
            if replica.start_failures > self.cfg.max_retries:
                with self._cond:
                    self._set_fatal(RewardPoolError(f"pool '{self.name}' ({self.teacher}): replica {replica.index} "
                                                    f"failed to start {replica.start_failures} times; last: {reason}"))
                return
        self._kill(replica)
        fresh = self._new_replica(replica.index, replica.generation + 1)
        fresh.start_failures = replica.start_failures
        self._replicas[replica.index] = fresh
        self._start(fresh)
        with self._cond:
            self._stats.count(restarts=1)
            if call.batch is not None:
                self._retry_batch(call.batch, reason)

    def _retry_batch(self, batch: _Batch, reason: str) -> None:
        """Lock held."""
        self._in_flight -= len(batch.samples)
        batch.attempts += 1
        if batch.attempts > self.cfg.max_retries:
            ids = [s.sample_id for s in batch.samples]
            self._fail_tickets({s.ticket for s in batch.samples}, RewardPoolError(
                f"pool '{self.name}' ({self.teacher}): batch {batch.batch_id} failed {batch.attempts} times "
                f"(max_retries={self.cfg.max_retries}) on samples {ids}; last: {reason}"))
            return
        self._stats.count(retries=1)
        live = [s for s in batch.samples if s.ticket.error is None]
        if live:
            self._retry.appendleft(_Batch(batch.batch_id, live, batch.attempts))

    def _deliver(self, batch: _Batch, grades: list[Grade]) -> None:
        now = time.monotonic()
        with self._cond:
            self._in_flight -= len(batch.samples)
            latencies, ignored = [], 0
            for sample, grade in zip(batch.samples, grades):
                ticket = self._owner.get(sample.sample_id)
                if ticket is not sample.ticket or sample.sample_id in ticket.grades:
                    ignored += 1
                    continue
                del self._owner[sample.sample_id]
                ticket.grades[sample.sample_id] = grade
                ticket.deliveries[sample.sample_id] = ticket.deliveries.get(sample.sample_id, 0) + 1
                latencies.append(now - sample.queued_at)
                if len(ticket.grades) == len(ticket.sample_ids):
                    ticket.done.set()
            self._pending -= len(latencies)
            self._stats.graded(latencies)
            self._stats.count(ignored_results=ignored)
            self._cond.notify_all()

    def _fail_batch(self, batch: _Batch, error: BaseException) -> None:
        with self._cond:
            self._in_flight -= len(batch.samples)
            self._fail_tickets({s.ticket for s in batch.samples}, error)

    def _fail_tickets(self, tickets: set[PoolTicket], error: BaseException) -> None:
        """Fail each unfinished ticket; its ungraded samples leave the pool (lock held)."""
        for ticket in tickets:
            if ticket.done.is_set():
                continue
            ticket.error = error
            open_ids = [s for s in ticket.sample_ids if self._owner.get(s) is ticket]
            for sid in open_ids:
                del self._owner[sid]
            self._pending -= len(open_ids)
            self._stats.dropped(len(open_ids))
            ticket.done.set()
        self._cond.notify_all()

    def _set_fatal(self, error: BaseException) -> None:
        """The pool cannot go on: fail everything pending (lock held)."""
        self._fatal = error
        self._fail_tickets({s.ticket for s in self._queue} | set(self._owner.values()), error)

    # ------------------------------------------------------------------ replicas

    def _new_replica(self, index: int, generation: int) -> _Replica:
        actor = TeacherReplica.options(
            num_cpus=self.cfg.num_cpus, num_gpus=self.cfg.num_gpus, max_concurrency=1,
            **placement_options(self.cfg.node_resource, index, f"pool '{self.name}' replica"),
        ).remote(self._factory, index, self.cfg.torch_threads)
        return _Replica(index, actor, generation)

    def _start(self, replica: _Replica) -> None:
        ref = replica.actor.ready.remote()
        self._calls[ref] = _Call(replica, time.monotonic() + self.cfg.start_timeout_s)

    @staticmethod
    def _kill(replica: _Replica) -> None:
        try:
            ray.kill(replica.actor, no_restart=True)
        except Exception:  # already dead or never created: nothing to kill
            pass
