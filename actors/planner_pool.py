"""A Ray actor pool of CoT planners (`prismrl data annotate`): N replicas, each holding one planner
(usually the `mllm` backend: a language model that is slow per video), fed batches of videos.

`PlannerPool.plan_stream(batches)` keeps up to `inflight_per_actor` batches queued on every actor
and yields each batch's results as soon as it is done (not in submission order), so the caller can
write them out and a crash loses at most the batches in flight. An actor that dies is replaced and
its batch retried (up to `max_retries` times per batch); a worker killed by Ray's memory monitor
counts as a dead actor.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Iterable, Iterator, Sequence

import ray

from policies.planner.config import PlannerConfig

VideoItem = tuple[str, Any, float]
"""(clip id, frames uint8 [T, H, W, 3], fps)."""


@ray.remote(max_restarts=0)
class PlannerActor:
    """One planner replica."""

    def __init__(self, cfg: PlannerConfig, torch_threads: int = 1):
        import torch

        from policies.planner import build_planner

        torch.set_num_threads(max(1, torch_threads))
        self.planner = build_planner(cfg)

    def plan(self, items: Sequence[VideoItem]) -> list[dict[str, str]]:
        """[{clip_id, semantic, temporal, aesthetic, spatial, planner[, raw]}] for a batch of videos."""
        videos = [(frames, fps) for _, frames, fps in items]
        if hasattr(self.planner, "plan_with_text"):
            results = self.planner.plan_with_text(videos)
        else:
            results = [(p, None) for p in self.planner.plan_batch(videos)]
        out = []
        for (clip_id, _, _), (plan, raw) in zip(items, results):
            row = {"clip_id": clip_id, **plan, "planner": self.planner.name}
            if raw is not None:
                row["raw"] = raw
            out.append(row)
        return out


class PlannerPool:
    """`cfg.replicas` PlannerActors with cfg.num_cpus / cfg.num_gpus each."""

    def __init__(self, cfg: PlannerConfig, inflight_per_actor: int = 2, max_retries: int = 2):
        if cfg.replicas < 1:
            raise ValueError(f"planner.replicas must be >= 1, got {cfg.replicas}")
        self.cfg, self.inflight_per_actor, self.max_retries = cfg, max(1, inflight_per_actor), max_retries
        self.actors = [self._start() for _ in range(cfg.replicas)]
        self.replacements = 0
        """Actors replaced after they died."""

    def _start(self):
        threads = max(1, int(self.cfg.num_cpus))
        return PlannerActor.options(num_cpus=self.cfg.num_cpus, num_gpus=self.cfg.num_gpus).remote(self.cfg, threads)

    def plan_stream(self, batches: Iterable[Sequence[VideoItem]]) -> Iterator[list[dict[str, str]]]:
        """Results of every batch, each yielded when done."""
        source = (list(b) for b in batches if len(b))  # pulled lazily: videos are decoded as they are needed
        retry: deque[tuple[list[VideoItem], int]] = deque()
        running: dict[Any, tuple[int, Any, list[VideoItem], int]] = {}  # ref -> (index, actor, batch, tries)
        load = [0] * len(self.actors)
        exhausted = False
        while True:
            while min(load) < self.inflight_per_actor:
                if retry:
                    batch, tries = retry.popleft()
                else:
                    batch, tries = next(source, None), 0
                    if batch is None:
                        exhausted = True
                        break
                i = load.index(min(load))
                running[self.actors[i].plan.remote(batch)] = (i, self.actors[i], batch, tries)
                load[i] += 1
            if not running:
                if exhausted and not retry:
                    return
                continue
            ready, _ = ray.wait(list(running), num_returns=1)
            i, actor, batch, tries = running.pop(ready[0])
            load[i] -= 1
            try:
                yield ray.get(ready[0])
            except (ray.exceptions.RayActorError, ray.exceptions.OutOfMemoryError):  # the actor's process died
                if tries >= self.max_retries:
                    raise RuntimeError(
                        f"planner actor died {tries + 1} times on the batch starting with clip '{batch[0][0]}'") from None
                if self.actors[i] is actor:  # other batches of the dead actor find it replaced already
                    ray.kill(actor, no_restart=True)
                    self.actors[i] = self._start()
                    self.replacements += 1
                retry.append((batch, tries + 1))

    def shutdown(self) -> None:
        """Stop every actor."""
        for a in self.actors:
            ray.kill(a)
        self.actors = []
