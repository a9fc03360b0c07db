"""`prismrl data annotate CONFIG data.manifest=PATH [planner.*]`: plans for every clip of a manifest.

The configured planner (usually planner.backend=mllm planner.mllm_path=DIR) runs as a Ray actor pool
(actors/planner_pool.py, planner.replicas actors). Results go to plans.jsonl next to a local manifest
(<run_dir>/plans.jsonl for an s3:// one), one JSON object per clip: clip_id, the four modules, the
planner's name and, for the mllm, its raw answer. The file is appended to and flushed per batch, so
a rerun skips every clip already in it (a torn last line is planned again).
"""
from __future__ import annotations

import json
import os
from typing import Iterator

from orchestrator.config.schema import PrismConfig
from orchestrator.data import storage

PLANS_NAME = "plans.jsonl"
"""File name of the plans written next to the manifest."""


def plans_path(cfg: PrismConfig) -> str:
    """Where `annotate` writes the plans of cfg.data.manifest."""
    if storage.is_s3(cfg.data.manifest):
        return os.path.join(cfg.run_dir, PLANS_NAME)
    return os.path.join(storage.parent(cfg.data.manifest), PLANS_NAME)


def read_plans(path: str) -> dict[str, dict]:
    """clip_id -> plan row of a plans file (missing file: empty; unreadable lines are skipped)."""
    done: dict[str, dict] = {}
    if not os.path.exists(path):
        return done
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "clip_id" in row:
                done[row["clip_id"]] = row
    return done


def _batches(reader, clip_ids: list[str], size: int) -> Iterator[list]:
    for s in range(0, len(clip_ids), size):
        batch = []
        for clip_id in clip_ids[s : s + size]:
            clip = reader.load(clip_id)
            batch.append((clip_id, clip.frames, clip.fps))
        yield batch


def annotate_manifest(cfg: PrismConfig, limit: int | None = None) -> dict:
    """Plan every clip of the manifest not yet in the plans file; returns counts and the path."""
    import dataclasses

    import ray
    from tqdm import tqdm

    from actors.planner_pool import PlannerPool
    from orchestrator.data.reader import ClipReader
    from orchestrator.runtime.ray_setup import init_ray

    path = plans_path(cfg)
    done = read_plans(path)
    reader = ClipReader(dataclasses.replace(cfg.data, cache_decoded=False))
    todo = [c for c in reader.clip_ids() if c not in done][:limit]
    result = {"plans": path, "already_done": len(done), "planned": 0, "clips": len(reader)}
    if not todo:
        return result
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if os.path.exists(path) and os.path.getsize(path):
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            torn = f.read(1) != b"\n"
        if torn:  # a killed run left half a line: end it so the next row starts on its own line
            with open(path, "a") as f:
                f.write("\n")
    owns_ray = init_ray(cfg)
    pool = PlannerPool(cfg.planner)
    try:
        with open(path, "a") as out, tqdm(total=len(todo), desc="annotate", unit="clip",
                                          disable=not cfg.tracking.progress) as bar:
            for rows in pool.plan_stream(_batches(reader, todo, max(1, cfg.planner.batch_size))):
                for row in rows:
                    out.write(json.dumps(row) + "\n")
                out.flush()
                result["planned"] += len(rows)
                bar.update(len(rows))
    finally:
        pool.shutdown()
        if owns_ray:
            ray.shutdown()
    return result
