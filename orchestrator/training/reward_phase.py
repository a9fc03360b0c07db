"""Grading a step's samples with the four reward pools and turning grades into one reward per sample.

Every waveform ref goes to all four pools at once; the controller waits on the pools concurrently,
so `time/reward.<teacher>` is each pool's own latency for the step.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from common.types import TEACHERS
from orchestrator.config.schema import PrismConfig
from rewards.combine import combine_grades
from rewards.validate import check_grades


@dataclass
class StepGrades:
    """Grades of P groups x G members."""

    per_teacher: dict[str, np.ndarray]
    """Raw reward per teacher, [P, G]."""
    total: np.ndarray
    """Combined reward, [P, G]."""
    keep: np.ndarray
    """False where a bad grade was dropped (on_bad_grade=drop), [P, G]."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per teacher pool."""
    diagnostics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """Per teacher: diagnostic name -> [P, G]."""


def weights_of(cfg: PrismConfig) -> dict[str, float]:
    """Teacher weights as a dict."""
    w = cfg.rewards.weights
    return {t: float(getattr(w, t)) for t in TEACHERS}


def step_sample_ids(clip_ids: Sequence[str], group_size: int) -> list[str]:
    """One id per sample of a step, group after group: `clip#member`, or `clip/position#member` for a clip
    that more than one group of the step holds (a step that crosses an epoch boundary of the prompt
    order may draw a clip twice; the reward pools refuse one id twice in a submission)."""
    counts: dict[str, int] = {}
    for c in clip_ids:
        counts[c] = counts.get(c, 0) + 1
    return [f"{c}#{g}" if counts[c] == 1 else f"{c}/{p}#{g}" for p, c in enumerate(clip_ids) for g in range(group_size)]


def grade_groups(cfg: PrismConfig, pools: dict[str, Any], clip_ids: Sequence[str], wave_refs: Sequence[Sequence[Any]],
                 clip_refs: Sequence[Any], sample_rate: int, backends: dict[str, str]) -> StepGrades:
    """Send every sample to every pool, wait for all, validate, combine."""
    P, G = len(wave_refs), len(wave_refs[0])
    flat_waves = [r for group in wave_refs for r in group]
    flat_clips = [clip_refs[p] for p in range(P) for _ in range(G)]
    flat_ids = step_sample_ids(clip_ids, G)
    start = time.perf_counter()
    tickets = {t: pools[t].submit(flat_ids, flat_waves, flat_clips, sample_rate) for t in TEACHERS}

    def wait(teacher: str):
        grades = pools[teacher].result(tickets[teacher])
        return teacher, grades, time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=len(TEACHERS)) as ex:
        done = list(ex.map(wait, TEACHERS))
    per_teacher, seconds, diags = {}, {}, {}
    keep = np.ones(P * G, dtype=bool)
    for teacher, grades, secs in done:
        rewards = np.array([g.reward for g in grades], dtype=np.float64)
        lo, hi = pools[teacher].reward_range  # the built teacher's own range (it may depend on options)
        keep &= check_grades(teacher, backends[teacher], flat_ids, rewards, (lo, hi), cfg.rewards.on_bad_grade)
        per_teacher[teacher] = rewards.reshape(P, G)
        seconds[teacher] = secs
        names = sorted({k for g in grades for k in g.diagnostics})
        diags[teacher] = {k: np.array([g.diagnostics.get(k, np.nan) for g in grades]).reshape(P, G) for k in names}
    keep = keep.reshape(P, G)
    safe = {t: np.where(keep, r, np.nan) for t, r in per_teacher.items()}
    # A dropped sample takes its group's mean so it gets no advantage (and no gradient from PPO).
    filled = {t: np.where(np.isnan(r), np.nanmean(r, axis=1, keepdims=True), r) for t, r in safe.items()}
    filled = {t: np.nan_to_num(r, nan=0.0) for t, r in filled.items()}
    total = combine_grades(filled, weights_of(cfg), cfg.rewards.combine)
    return StepGrades(filled, total, keep, seconds, diags)
