"""Plan following: does a policy make the sound classes its plan names?

RL can only reinforce what a policy's own samples sometimes do. If a policy ignores the classes its
semantic plan names, no group ever holds a sample of the named class, and the semantic reward gives
no gradient whatever the RL algorithm. This benchmark measures that directly, with the
semantic/signal teacher's class posterior (SynthScenes' ten classes):

- every audio is cut at its onsets into segments (as the teacher does) and each segment gets its
  top class; `class_hit` of a clip is the fraction of its segments whose top class the plan names;
- four sources per clip: the ground truth; the codec round trip (encode, decode: the ceiling the
  latent allows); the policy's ODE sample with the clip's own plan; and the same sample scored
  against the NEXT clip's plan (chance level of a policy that ignores its plan);
- `plan_following` = class_hit(own plan) - class_hit(scored against another plan), paired clip by
  clip, +- s.e.: near 0 when the policy's sounds do not depend on the plan, large for the ground truth;
- also segments per clip, the semantic teacher's reward, and each source's top-class histogram;
- on the clips whose plan names ONE class, `profile_hit`: the share whose whole clip is nearest that
  class on the teacher's mel band profile alone (no segmentation, no envelope statistics), and
  `profile_following` (against the next such clip's class, paired, ± s.e.): whether the policy
  makes the right timbre even where its envelopes (extra onsets) hide it from the teacher.

    prismrl bench plan_following demo policy.checkpoint=runs/cache/pretrained-demo bench.clips=40
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from common.types import Clip

SOURCES = ("ground_truth", "codec", "policy")
"""Audio sources measured per clip."""


@dataclass
class PlanFollowingOptions:
    """Options of `prismrl bench plan_following` (set as bench.<field>=value)."""

    split: str = "train"
    """Data split whose clips are measured (`train`, `val` or `test`)."""
    clips: int = 40
    """Clips measured (the first ones of the split, in manifest order); needs at least 2."""
    torch_threads: int = 1
    """torch intra-op threads."""


def _load_clips(cfg, split: str, count: int) -> list[Clip]:
    from orchestrator.data.reader import ClipReader

    clips = ClipReader(cfg.data).load_split(split, count)
    if len(clips) < 2:
        raise ValueError(f"bench.split={split}: {cfg.data.manifest} has {len(clips)} clip(s) in it; the benchmark needs >= 2")
    return clips


def segment_classes(teacher, audio: np.ndarray, sample_rate: int) -> list[str]:
    """Top class of each onset segment of `audio` ([N] or [C, N]) under the semantic/signal teacher."""
    from rewards import dsp
    from rewards.backends.semantic_signal import segment_events

    o = teacher.options
    x = dsp.resample(np.asarray(audio, dtype=np.float32), sample_rate, o.sample_rate)
    segments = segment_events(x, o.sample_rate, o.silence_db, o.min_segment_s)
    return [teacher.classes[int(teacher.posterior(s).argmax())] for s in segments]


def class_hit(classes: Sequence[str], named: Sequence[str]) -> float:
    """Fraction of segments whose top class is among `named` (0 for no segments)."""
    return float(np.mean([c in named for c in classes])) if classes else 0.0


def paired_mean_se(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean of a - b over paired items and its standard error."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")


def _at_rate(item: tuple[np.ndarray, int], rate: int) -> np.ndarray:
    from rewards import dsp

    audio, sample_rate = item
    return dsp.resample(np.asarray(audio, dtype=np.float32), sample_rate, rate)


def _waveforms(policy, latents: torch.Tensor) -> list[np.ndarray]:
    return [np.asarray(w, dtype=np.float32) for w in policy.waveforms(latents)]


def run(cfg, opts: PlanFollowingOptions | None = None) -> dict[str, Any]:
    """Class hit, segments, semantic reward and class histogram per source, and the plan-following difference."""
    from policies.build import build_policy
    from policies.rollout import sample_ode
    from rewards.backends.semantic_signal import SemanticSignalOptions, SemanticSignalTeacher

    opts = opts or PlanFollowingOptions()
    if not cfg.policy.checkpoint:
        raise ValueError("policy.checkpoint: plan following is measured on a trained policy; none set")
    torch.set_num_threads(max(1, opts.torch_threads))
    clips = _load_clips(cfg, opts.split, opts.clips)
    options = dict(cfg.rewards.semantic.options) if cfg.rewards.semantic.backend == "signal" else {}
    teacher = SemanticSignalTeacher(SemanticSignalOptions(**options))
    policy = build_policy(cfg.policy).eval()
    with torch.no_grad():
        prepared = policy.prepare(clips)
        latents = sample_ode(policy, policy.encode_conditions(prepared), cfg.sampler,
                             torch.Generator().manual_seed(cfg.seed))
        generated = _waveforms(policy, latents)
        codec = []
        for c in clips:
            audio = torch.as_tensor(np.atleast_2d(np.asarray(c.audio, dtype=np.float32)))
            if c.sample_rate != policy.sample_rate:
                raise ValueError(f"clip '{c.clip_id}': audio at {c.sample_rate} Hz, the policy works at {policy.sample_rate} Hz")
            codec.append(_waveforms(policy, policy.encode_audio(audio[None]))[0])
    audio = {"ground_truth": [(c.audio, c.sample_rate) for c in clips],
             "codec": [(w, policy.sample_rate) for w in codec],
             "policy": [(w, policy.sample_rate) for w in generated]}
    named = [teacher.expected_classes(c) for c in clips]
    other = [named[(i + 1) % len(clips)] for i in range(len(clips))]
    out: dict[str, Any] = {"checkpoint": cfg.policy.checkpoint, "split": opts.split, "clips": len(clips),
                           "classes": list(teacher.classes), "guidance_scale": cfg.sampler.guidance_scale,
                           "num_steps": cfg.sampler.num_steps, "sources": {}}
    single = [i for i, n in enumerate(named) if len(n) == 1]
    out["single_class_clips"] = len(single)
    for source in SOURCES:
        tops = [segment_classes(teacher, a, sr) for a, sr in audio[source]]
        profile = {i: teacher.profile_class(_at_rate(audio[source][i], teacher.options.sample_rate)) for i in single}
        p_hit = [float(profile[i] == named[i][0]) for i in single]
        p_other = [float(profile[i] == named[single[(k + 1) % len(single)]][0]) for k, i in enumerate(single)]
        p_diff, p_se = paired_mean_se(p_hit, p_other) if len(single) > 1 else (float("nan"), float("nan"))
        hit = [class_hit(t, n) for t, n in zip(tops, named)]
        hit_other = [class_hit(t, n) for t, n in zip(tops, other)]
        reward = [teacher.grade_one(a, sr, c).reward for (a, sr), c in zip(audio[source], clips)]
        diff, se = paired_mean_se(hit, hit_other)
        out["sources"][source] = {
            "class_hit": float(np.mean(hit)), "class_hit_other_plan": float(np.mean(hit_other)),
            "plan_following": diff, "plan_following_se": se,
            "segments_per_clip": float(np.mean([len(t) for t in tops])),
            "semantic_reward": float(np.mean(reward)),
            "top_classes": dict(collections.Counter(c for t in tops for c in t).most_common()),
            "profile_hit": float(np.mean(p_hit)) if p_hit else float("nan"),
            "profile_following": p_diff, "profile_following_se": p_se,
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    """One row per source, then each source's top-class histogram."""
    lines = [f"Plan following of `{result['checkpoint']}` on {result['clips']} {result['split']} clips (ODE, "
             f"{result['num_steps']} steps, guidance {result['guidance_scale']}); classes by the semantic/signal "
             "teacher's posterior per onset segment.", "",
             "| source | class hit (own plan) | class hit (next clip's plan) | plan following ± s.e. | segments per clip | "
             f"semantic reward | whole-clip profile hit, {result['single_class_clips']} one-class clips | "
             "profile following ± s.e. |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for source, row in result["sources"].items():
        lines.append(f"| {source} | {row['class_hit']:.3f} | {row['class_hit_other_plan']:.3f} | "
                     f"{row['plan_following']:+.3f} ± {row['plan_following_se']:.3f} | {row['segments_per_clip']:.1f} | "
                     f"{row['semantic_reward']:.3f} | {row['profile_hit']:.3f} | "
                     f"{row['profile_following']:+.3f} ± {row['profile_following_se']:.3f} |")
    lines += ["", "| source | " + " | ".join(result["classes"]) + " |", "|---|" + "---:|" * len(result["classes"])]
    for source, row in result["sources"].items():
        total = max(1, sum(row["top_classes"].values()))
        lines.append(f"| {source} | " + " | ".join(f"{row['top_classes'].get(c, 0) / total:.2f}"
                                                   for c in result["classes"]) + " |")
    return "\n".join(lines)
