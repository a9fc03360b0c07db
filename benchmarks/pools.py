"""Reward-pool scaling benchmark: samples/s of one pool at 1, 2, 4, 8 replicas, against linear scaling.

Teachers: `latency` (a fixed wait per call standing for a remote GPU model; see latency_teacher.py)
and the signal teachers `semantic`, `timing`, `aesthetic`, `spatial` (their default CPU backends),
or any registered `teacher/backend`. Audio is SynthScenes-like: 2 s stereo at 16 kHz from the
project's scene generator, each generated sample a shifted, noisier copy of its clip's ground truth,
G samples per clip as in a GRPO group.

    python -m benchmarks.pools --teachers latency,semantic,timing,aesthetic,spatial --replicas 1,2,4
"""
from __future__ import annotations

import os

if __name__ == "__main__" and not os.environ.get("RAY_ADDRESS"):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local Ray on loopback; read at import

import argparse
import functools
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from actors.config import PoolConfig
from actors.reward_pool import RewardPool
from benchmarks.latency_teacher import FixedLatencyTeacher
from common.types import Clip
from rewards.base import Teacher, build_teacher

SIGNAL_BACKENDS = {"semantic": "signal", "timing": "onset", "aesthetic": "signal", "spatial": "gcc_phat"}
"""The CPU backend benchmarked for each teacher name."""
LATENCY = "latency"
"""Name of the fixed-latency benchmark teacher."""
SAMPLE_RATE = 16000
DURATION_S = 2.0


def teacher_factory(name: str, added_latency_s: float) -> Callable[[], Teacher]:
    """Picklable factory of a benchmark teacher: `latency`, a teacher name, or `teacher/backend`."""
    if name == LATENCY:
        return functools.partial(FixedLatencyTeacher, added_latency_s)
    teacher, _, backend = name.partition("/")
    backend = backend or SIGNAL_BACKENDS.get(teacher, "")
    if not backend:
        raise ValueError(f"benchmark teacher '{name}': use '{LATENCY}', one of {sorted(SIGNAL_BACKENDS)} "
                         f"or 'teacher/backend'")
    return functools.partial(build_teacher, teacher, backend, {})


def synth_clips(n_clips: int, seed: int = 0, fps: float = 12.5, size: int = 32) -> list[Clip]:
    """SynthScenes clips (frames, ground-truth audio, CoT) rendered in memory, 2 s at 16 kHz."""
    from orchestrator.data.synth.annotate import annotate
    from orchestrator.data.synth.audio import render_scene_audio
    from orchestrator.data.synth.scene import sample_scene
    from orchestrator.data.synth.video import render_scene_frames

    clips = []
    for i in range(n_clips):
        rng = np.random.default_rng([seed, i])
        scene = sample_scene(rng, DURATION_S, fps)
        audio = render_scene_audio(scene, SAMPLE_RATE, rng).astype(np.float32)
        clips.append(Clip(f"bench-{i:04d}", "train", render_scene_frames(scene, size), fps, audio, SAMPLE_RATE,
                          annotate(scene, audio, SAMPLE_RATE)))
    return clips


def generated_audio(clip: Clip, rng: np.random.Generator) -> np.ndarray:
    """A stand-in generation: the clip's audio delayed by up to 0.2 s, with added noise."""
    shift = int(rng.integers(0, int(0.2 * SAMPLE_RATE)))
    out = np.zeros_like(clip.audio)
    out[:, shift:] = clip.audio[:, : clip.audio.shape[1] - shift]
    out += 0.01 * rng.standard_normal(out.shape).astype(np.float32)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def measure_pool(name: str, factory: Callable[[], Teacher], replicas: int, samples: list[tuple], max_batch: int,
                 ) -> dict[str, float]:
    """Throughput of one pool over `samples` (sample id, audio ref, clip ref), after a warm-up batch per replica."""
    import ray  # noqa: F401  (ray must be initialized by the caller)

    cfg = PoolConfig(replicas=replicas, num_cpus=1.0, max_batch=max_batch, max_wait_s=0.01,
                     call_timeout_s=600.0, max_queue=max(1024, len(samples)))
    with RewardPool(name, cfg, factory, SAMPLE_RATE) as pool:
        pool.wait_ready(timeout=600)
        warm = samples[: replicas * max_batch]
        pool.grade([f"warm-{s[0]}" for s in warm], [s[1] for s in warm], [s[2] for s in warm])
        t0 = time.perf_counter()
        ticket = pool.submit([s[0] for s in samples], [s[1] for s in samples], [s[2] for s in samples])
        pool.result(ticket)
        elapsed = time.perf_counter() - t0
        stats = pool.stats()
    return {"samples_per_s": len(samples) / elapsed, "seconds": elapsed,
            "latency_p50_s": stats["latency_p50_s"], "latency_p95_s": stats["latency_p95_s"]}


def run(teachers: list[str], replicas=(1, 2, 4, 8), n_samples: int = 128, added_latency_s: float = 0.05,
        out_path: str | None = None, max_batch: int = 8, group_size: int = 4, seed: int = 0) -> dict:
    """Samples/s of a pool per teacher and replica count; writes JSON to `out_path` and prints a table.

    Starts a local Ray with one logical CPU per replica of the largest pool (replicas take 1 CPU each)
    unless Ray is already initialized.
    """
    import ray

    owns_ray = not ray.is_initialized()
    if owns_ray:
        ray.init(address="local", num_cpus=max(replicas), include_dashboard=False, log_to_driver=False,
                 object_store_memory=512 * 1024 * 1024)
    try:
        rng = np.random.default_rng(seed)
        clips = synth_clips(max(1, n_samples // group_size), seed)
        clip_refs = [ray.put(c) for c in clips]
        samples = [(f"s{i:05d}", ray.put(generated_audio(clips[i % len(clips)], rng)), clip_refs[i % len(clips)])
                   for i in range(n_samples)]
        scaling: dict[str, dict[str, float]] = {}
        details: dict[str, dict[str, dict[str, float]]] = {}
        for name in teachers:
            factory = teacher_factory(name, added_latency_s)
            details[name] = {str(r): measure_pool(name.replace("/", "-"), factory, r, samples, max_batch)
                             for r in replicas}
            scaling[name] = {r: d["samples_per_s"] for r, d in details[name].items()}
    finally:
        if owns_ray:
            ray.shutdown()
    base = str(replicas[0])
    linear = {t: {r: s[base] * int(r) / int(base) for r in s} for t, s in scaling.items()}
    result = {
        "scaling": scaling,
        "linear": linear,
        "details": details,
        "setup": {"n_samples": n_samples, "max_batch": max_batch, "added_latency_s": added_latency_s,
                  "group_size": group_size, "audio": f"{DURATION_S} s stereo {SAMPLE_RATE} Hz",
                  "cpu_cores": os.cpu_count()},
    }
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(json.dumps(result, indent=2))
    print(markdown_table(result))
    return result


def markdown_table(result: dict) -> str:
    """One row per (teacher, replicas): samples/s, linear from the first count, efficiency, p50 latency."""
    rows = ["| teacher | replicas | samples/s | linear | efficiency | p50 latency (s) |",
            "|---|---:|---:|---:|---:|---:|"]
    for teacher, per_r in result["scaling"].items():
        for r, sps in per_r.items():
            lin = result["linear"][teacher][r]
            p50 = result["details"][teacher][r]["latency_p50_s"]
            rows.append(f"| {teacher} | {r} | {sps:.1f} | {lin:.1f} | {sps / lin:.0%} | {p50:.3f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teachers", default=",".join([LATENCY, *SIGNAL_BACKENDS]),
                   help="comma-separated: latency, semantic, timing, aesthetic, spatial or teacher/backend")
    p.add_argument("--replicas", default="1,2,4,8", help="comma-separated replica counts")
    p.add_argument("--n-samples", type=int, default=128, help="samples graded per measurement")
    p.add_argument("--added-latency-s", type=float, default=0.05, help="wait per call of the latency teacher")
    p.add_argument("--max-batch", type=int, default=8, help="pool max_batch")
    p.add_argument("--out", default="runs/bench/pools.json", help="where the JSON goes")
    a = p.parse_args(argv)
    return run([t for t in a.teachers.split(",") if t], tuple(int(r) for r in a.replicas.split(",")),
               a.n_samples, a.added_latency_s, a.out, a.max_batch)


if __name__ == "__main__":
    main()
