"""`prismrl eval CONFIG checkpoint=PATH [split=test] [baseline=PATH] [plans=dataset|planner|none|random|monolithic] [limit=N] [samples=N] [change_scale=S]`

The paper's table for a policy checkpoint on a manifest split (short keys mean eval.<key>):
  semantic      mean reward of the semantic teacher (rewards.semantic backend)          higher is better
  desync_s      DeSync: mean |predicted audio-visual offset| in s (timing teacher's offset_s)  lower
  aesthetic     mean reward of the aesthetic teacher, plus its axes (CE, CU, PC, PQ) when it gives them
  itd_error_ms  mean |ITD(generated) - ITD(ground truth)| in ms from the spatial teacher's diagnostics
                (GCC-PHAT; StereoCRW adds itd_error_crw_ms)                            lower
  fd_logmel     Fréchet distance between log-mel statistics of generated and ground-truth audio
                (orchestrator/evaluation/fd_logmel.py; offline, no model)                       lower
  reward/*      every teacher's mean reward and the weighted total (rewards.weights)
Audio: guided Euler ODE (sampler.num_steps, sampler.guidance_scale) from a fixed noise per clip (eval.samples
noises per clip, averaged), so a checkpoint and its baseline see the same noise and the same plans. Grading runs in-process (no Ray).
change_scale=S (with a baseline) evaluates baseline + S x (checkpoint - baseline), weight by weight: how a
change's effect grows with its size (0 = the baseline, -1 = the change reversed).
Writes <run_dir>/eval.json, <run_dir>/eval.md and an MLflow run (metrics eval/<name>[/baseline]).
The checkpoint is a policy directory: <train run_dir>/policy_ema, or a pretrained one.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from typing import Any, Sequence

import numpy as np
import torch

from common.types import COT_MODULES, TEACHERS, Clip, Grade
from orchestrator.config.argv import command_config, split_args, wants_help
from orchestrator.config.schema import PrismConfig
from orchestrator.evaluation.change_scale import scaled_change
from orchestrator.evaluation.paired import paired_differences, paired_markdown
from orchestrator.evaluation.fd_logmel import frechet_audio_distance
from policies.base import Policy
from policies.crop import crop_clip
from policies.rollout import sample_ode

log = logging.getLogger("prismrl.eval")

SHORT_KEYS = ("checkpoint", "split", "baseline", "plans", "limit", "samples", "batch_size", "change_scale")
"""`key=value` arguments of `prismrl eval` that mean eval.<key>."""
HEADLINE = (("semantic", "Semantic ↑"), ("desync_s", "DeSync (s) ↓"), ("aesthetic", "Aesthetic ↑"),
            ("itd_error_ms", "ITD error (ms) ↓"), ("fd_logmel", "FD log-mel ↓"))
"""The paper's columns: metric key and table heading."""
_ITD = re.compile(r"^itd_(.*?)_?gen_ms$")


# ------------------------------------------------------------------------------------------ plans
def ablated_plans(clips: Sequence[Clip], mode: str, seed: int = 0) -> list[dict[str, str]]:
    """Plans for `dataset`, `none`, `random` (another clip's plan, a seeded derangement) or
    `monolithic` (the four modules' text as one undivided paragraph in the first module)."""
    if mode == "dataset":
        return [dict(c.cot) for c in clips]
    if mode == "none":
        return [{m: "" for m in COT_MODULES} for _ in clips]
    if mode == "monolithic":
        return [{COT_MODULES[0]: " ".join(c.cot.get(m, "").strip() for m in COT_MODULES).strip(),
                 **{m: "" for m in COT_MODULES[1:]}} for c in clips]
    if mode == "random":
        if len(clips) < 2:
            raise ValueError("eval.plans=random needs at least 2 clips (each gets another clip's plan)")
        order = np.random.default_rng([seed, 0xC07]).permutation(len(clips))
        plans: list[dict[str, str]] = [{} for _ in clips]
        for i, idx in enumerate(order):
            plans[int(idx)] = dict(clips[int(order[(i + 1) % len(order)])].cot)
        return plans
    raise ValueError(f"eval.plans: unknown '{mode}'")


def plans_for(cfg: PrismConfig, clips: Sequence[Clip]) -> list[dict[str, str]]:
    """The plans eval.plans asks for; `planner` runs planner.* on every clip's video."""
    if cfg.eval.plans != "planner":
        return ablated_plans(clips, cfg.eval.plans, cfg.seed)
    from policies.planner import build_planner

    planner = build_planner(cfg.planner)
    return planner.plan_batch([(c.frames, c.fps) for c in clips])


# ----------------------------------------------------------------------------------- generation
def fit_clip(clip: Clip, duration_s: float) -> Clip:
    """The clip's first duration_s seconds (zero-padded when shorter)."""
    if abs(clip.duration - duration_s) < 1e-6:
        return clip
    return crop_clip(clip, 0.0, duration_s)


@torch.no_grad()
def generate_waveforms(policy: Policy, clips: Sequence[Clip], plans: Sequence[dict[str, str]], sampler_cfg,
                       seed: int, batch_size: int = 8) -> list[np.ndarray]:
    """Stereo float32 waveforms, one per clip, from the plans; batch b's noise comes from seed [seed, b]."""
    policy.eval()
    out: list[np.ndarray] = []
    for b, start in enumerate(range(0, len(clips), max(1, batch_size))):
        chunk, chunk_plans = clips[start : start + batch_size], plans[start : start + batch_size]
        cond = policy.encode_conditions(policy.prepare(chunk, cot=list(chunk_plans)))
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, b]).generate_state(1)[0]))
        out += policy.waveforms(sample_ode(policy, cond, sampler_cfg, gen))
    return out


# -------------------------------------------------------------------------------------- grading
def build_teachers(cfg: PrismConfig) -> dict[str, Any]:
    """The four configured teachers, built in-process."""
    from rewards.base import build_teacher

    return {t: build_teacher(t, getattr(cfg.rewards, t).backend, getattr(cfg.rewards, t).options) for t in TEACHERS}


def paper_metrics(grades: dict[str, list[Grade]], weights: dict[str, float]) -> dict[str, float]:
    """The table's numbers from per-clip grades of the four teachers (see the module docstring)."""
    m: dict[str, float] = {"semantic": float(np.mean([g.reward for g in grades["semantic"]]))}
    m["desync_s"] = float(np.mean([abs(g.diagnostics["offset_s"]) for g in grades["timing"]]))
    m["aesthetic"] = float(np.mean([g.reward for g in grades["aesthetic"]]))
    for axis in ("CE", "CU", "PC", "PQ"):
        if all(axis in g.diagnostics for g in grades["aesthetic"]):
            m[f"aesthetic/{axis}"] = float(np.mean([g.diagnostics[axis] for g in grades["aesthetic"]]))
    first = grades["spatial"][0].diagnostics
    for key in sorted(first):
        match = _ITD.match(key)
        gt_key = f"itd_{match.group(1)}_gt_ms" if match and match.group(1) else "itd_gt_ms"
        if match and gt_key in first:
            name = f"itd_error_{match.group(1)}_ms" if match.group(1) else "itd_error_ms"
            m[name] = float(np.mean([abs(g.diagnostics[key] - g.diagnostics[gt_key]) for g in grades["spatial"]]))
    if "itd_error_ms" not in m and "itd_error_gcc_ms" in m:
        m["itd_error_ms"] = m["itd_error_gcc_ms"]
    total = 0.0
    for t in TEACHERS:
        m[f"reward/{t}"] = float(np.mean([g.reward for g in grades[t]]))
        total += weights[t] * m[f"reward/{t}"]
    m["reward/total"] = total
    return m


def evaluate_policy(policy: Policy, clips: Sequence[Clip], plans: Sequence[dict[str, str]], cfg: PrismConfig,
                    teachers: dict[str, Any] | None = None) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """(metrics, per-clip rows) of one policy on clips (already fitted to its duration) and plans."""
    teachers = teachers or build_teachers(cfg)
    reps = max(1, cfg.eval.samples)
    graded, graded_plans = list(clips) * reps, list(plans) * reps  # sample r of every clip, then r + 1
    waves = generate_waveforms(policy, graded, graded_plans, cfg.sampler, cfg.seed, cfg.eval.batch_size)
    grades = {t: teachers[t].grade(waves, policy.sample_rate, graded) for t in TEACHERS}
    metrics = paper_metrics(grades, dataclasses.asdict(cfg.rewards.weights))
    metrics["fd_logmel"] = frechet_audio_distance(waves, [c.audio for c in clips], policy.sample_rate,
                                                  clips[0].sample_rate) if len(clips) >= 2 else float("nan")
    rows = [{"clip_id": c.clip_id, "sample": i // len(clips), **{f"{t}": grades[t][i].reward for t in TEACHERS},
             **{f"{t}/{k}": v for t in TEACHERS for k, v in grades[t][i].diagnostics.items()}}
            for i, c in enumerate(graded)]
    return metrics, rows


# ------------------------------------------------------------------------------------ reporting
def markdown_table(columns: dict[str, dict[str, float]], info: dict[str, Any]) -> str:
    """eval.md: the paper's columns first, then the other metrics; one column per evaluated checkpoint."""
    names = list(columns)
    keys = [k for k, _ in HEADLINE if k in columns[names[0]]]
    keys += [k for k in columns[names[0]] if k not in keys]
    label = dict(HEADLINE)
    per_clip = info.get("samples_per_clip", 1)
    samples = f", {per_clip} samples each" if per_clip > 1 else ""
    lines = [f"# Evaluation on `{info['split']}` ({info['clips']} clips{samples}, plans: {info['plans']})", ""]
    scale = info.get("change_scale", 1.0)
    scaled = f" (its change from the baseline x {scale:g}: `eval.change_scale`)" if scale != 1.0 else ""
    lines += [f"- {n}: `{info['checkpoints'][n]}`" + (scaled if n == "checkpoint" else "") for n in names] + [""]
    lines.append("| metric | " + " | ".join(names) + (" | Δ |" if len(names) == 2 else " |"))
    lines.append("|---" * (len(names) + 1 + (len(names) == 2)) + "|")
    for k in keys:
        vals = [columns[n].get(k, float("nan")) for n in names]
        cells = [f"{v:.4f}" for v in vals]
        if len(names) == 2:
            cells.append(f"{vals[0] - vals[1]:+.4f}")
        lines.append(f"| {label.get(k, k)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def load_eval_clips(cfg: PrismConfig) -> list[Clip]:
    """The split's clips (eval.limit of them when > 0)."""
    from orchestrator.data.reader import ClipReader

    clips = ClipReader(cfg.data).load_split(cfg.eval.split, cfg.eval.limit or None)
    if not clips:
        raise ValueError(f"eval.split: the '{cfg.eval.split}' split of {cfg.data.manifest} has no clips")
    return clips


def run_eval(cfg: PrismConfig, clips: Sequence[Clip] | None = None, track: bool = True) -> dict[str, Any]:
    """Evaluate eval.checkpoint (and eval.baseline) on the split; writes eval.json / eval.md; returns the result."""
    from policies.checkpoint import load_policy
    from orchestrator.runtime.tracking import Tracker, write_json

    checkpoints = {"checkpoint": cfg.eval.checkpoint or cfg.policy.checkpoint}
    if not checkpoints["checkpoint"]:
        raise ValueError("eval.checkpoint: no policy checkpoint given (checkpoint=PATH or policy.checkpoint)")
    if cfg.eval.change_scale != 1.0 and not cfg.eval.baseline:
        raise ValueError(f"eval.change_scale={cfg.eval.change_scale:g} scales a checkpoint's change from eval.baseline, "
                         "and no baseline is given (baseline=PATH)")
    if cfg.eval.baseline:
        checkpoints["baseline"] = cfg.eval.baseline
    policies = {name: load_policy(path) for name, path in checkpoints.items()}
    if cfg.eval.change_scale != 1.0:
        scaled = scaled_change(policies["baseline"].state_dict(), policies["checkpoint"].state_dict(), cfg.eval.change_scale)
        policies["checkpoint"].load_state_dict(scaled)
    durations = {p.cfg.duration_s for p in policies.values()}
    if len(durations) > 1:
        raise ValueError(f"eval: checkpoint and baseline generate different durations {sorted(durations)} s")
    duration = durations.pop()
    clips = [fit_clip(c, duration) for c in (clips if clips is not None else load_eval_clips(cfg))]
    plans = plans_for(cfg, clips)
    teachers = build_teachers(cfg)
    columns, per_clip = {}, {}
    for name, policy in policies.items():
        columns[name], per_clip[name] = evaluate_policy(policy, clips, plans, cfg, teachers)
        log.info("%s: %s", name, " ".join(f"{k}={v:.4f}" for k, v in columns[name].items()))
    info = {"split": cfg.eval.split, "clips": len(clips), "samples_per_clip": max(1, cfg.eval.samples),
            "plans": cfg.eval.plans, "checkpoints": checkpoints, "change_scale": cfg.eval.change_scale}
    result = {**info, "metrics": columns, "plans_used": [{"clip_id": c.clip_id, **p} for c, p in zip(clips, plans)],
              "per_clip": per_clip}
    if "baseline" in per_clip:
        result["paired"] = paired_differences(per_clip["checkpoint"], per_clip["baseline"], TEACHERS)
    os.makedirs(cfg.run_dir, exist_ok=True)
    json_path, md_path = os.path.join(cfg.run_dir, "eval.json"), os.path.join(cfg.run_dir, "eval.md")
    write_json(json_path, result)
    with open(md_path, "w") as f:
        f.write(markdown_table(columns, info))
        if "paired" in result:
            f.write(paired_markdown(result["paired"]))
    if track:
        tracker = Tracker(cfg)
        try:
            for name, metrics in columns.items():
                suffix = "" if name == "checkpoint" else f"/{name}"
                tracker.log_metrics({f"eval/{k}{suffix}": v for k, v in metrics.items()}, step=0)
            tracker.log_artifact(json_path)
            tracker.log_artifact(md_path)
        finally:
            tracker.end()
    return result


def eval_overrides(argv: list[str]) -> tuple[str, list[str]]:
    """(preset, overrides) with the short keys (checkpoint=, split=, ...) expanded to eval.<key>."""
    preset, overrides = split_args(argv)
    expanded = [f"eval.{o}" if o.split("=", 1)[0] in SHORT_KEYS else o for o in overrides]
    return preset, expanded


def main(argv: list[str]) -> int:
    """Entry point of `prismrl eval`."""
    if wants_help(argv, __doc__):
        return 0
    preset, overrides = eval_overrides(argv)
    cfg = command_config([preset, *overrides], "eval", __doc__)
    try:
        result = run_eval(cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f"prismrl eval: {e}", file=sys.stderr)
        return 2
    with open(os.path.join(cfg.run_dir, "eval.md")) as f:
        print(f.read())
    print(f"wrote {os.path.join(cfg.run_dir, 'eval.json')}")
    del result
    return 0
