"""`prismrl generate CONFIG checkpoint=PATH input=VIDEO|FOLDER|MANIFEST [cot=...] [out=DIR] [planner.checkpoint=DIR]`

For every video: a plan, stereo audio from the policy checkpoint (guided Euler ODE, sampler.*), and
in out (default <run_dir>): NAME.wav, NAME.mp4 (the video with the audio muxed in, h264 + AAC via
PyAV) and NAME.plan.json (the four modules and where they came from).

  input    a video file, a folder (its *.mp4 *.mov *.mkv *.avi *.webm, sorted), or a manifest.parquet
  cot      the plan for every video instead of the planner's: a JSON file ({"semantic": ...} or
           {"<video name>": {...}, ...}), or text with `Semantic:` / `Temporal:` / `Aesthetic:` /
           `Spatial:` headers (text without headers is the semantic module)
  planner.* the planner (planner.backend=synth with planner.checkpoint=DIR, or backend=mllm with
           planner.mllm_path=DIR); without one, manifest inputs use the manifest's CoT
The policy generates policy.duration_s seconds: the start of a longer video gets audio, a shorter one
is cut. A video that cannot be read is reported (path and reason) and skipped; the others are still
written, and the exit code is 1 when any failed.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import av
import numpy as np
import soundfile as sf
import torch

from common.types import COT_MODULES, Clip
from orchestrator.config.argv import command_config, split_own
from orchestrator.config.schema import PrismConfig
from orchestrator.data import storage
from orchestrator.data.reader import decode_video
from policies.base import Policy
from policies.crop import crop_clip
from policies.planner.template import parse_modules
from policies.rollout import sample_ode

log = logging.getLogger("prismrl.generate")

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm")
"""Files of a folder input that are taken as videos."""
ARGS = ("checkpoint", "input", "cot", "out")
"""`key=value` arguments of `prismrl generate` that are not config keys."""


@dataclass
class VideoJob:
    """One video to generate audio for."""

    name: str
    """Output file stem."""
    path: str
    """Where the video is (local path or URL)."""
    cot: Optional[dict[str, str]] = None
    """The manifest's plan of this video (manifest inputs only)."""
    features: Optional[str] = None
    """The clip's cached-feature file (manifest inputs with a `features_path` column; what
    policy.kind=prismaudio conditions on)."""


def list_inputs(source: str, s3=None) -> list[VideoJob]:
    """Videos of a file, folder or manifest; FileNotFoundError naming `source` when there are none."""
    if source.endswith(".parquet"):
        from orchestrator.data.manifest import from_parquet_bytes

        from orchestrator.data.features import FEATURES_COLUMN

        table = from_parquet_bytes(storage.read_bytes(source, s3), source)
        root = storage.parent(source)
        feats = table.column(FEATURES_COLUMN).to_pylist() if FEATURES_COLUMN in table.column_names else [None] * len(table)
        return [VideoJob(r["clip_id"], storage.join(root, r["video_path"]), {m: r[f"cot_{m}"] for m in COT_MODULES},
                         storage.join(root, f) if f else None)
                for r, f in zip(table.select(["clip_id", "video_path", *[f"cot_{m}" for m in COT_MODULES]]).to_pylist(),
                                feats)]
    if os.path.isdir(source):
        names = sorted(n for n in os.listdir(source) if n.lower().endswith(VIDEO_EXTENSIONS))
        if not names:
            raise FileNotFoundError(f"input={source}: the folder holds no video ({', '.join(VIDEO_EXTENSIONS)})")
        return [VideoJob(os.path.splitext(n)[0], os.path.join(source, n)) for n in names]
    if not storage.is_s3(source) and not os.path.exists(source):
        raise FileNotFoundError(f"input={source}: no such file or folder")
    return [VideoJob(os.path.splitext(os.path.basename(source))[0], source)]


def user_plan(cot: str, name: str) -> dict[str, str]:
    """The plan of video `name` from the cot= argument (JSON file or header text)."""
    if cot.endswith(".json") and os.path.isfile(cot):
        with open(cot) as f:
            data = json.load(f)
        if isinstance(data, dict) and name in data and isinstance(data[name], dict):
            data = data[name]
        if not isinstance(data, dict) or not any(m in data for m in COT_MODULES):
            raise ValueError(f"cot={cot}: expected {{'semantic': ...}} or {{'<video>': {{...}}}} with a plan for '{name}'")
        return {m: str(data.get(m, "")) for m in COT_MODULES}
    plan = parse_modules(cot, first_module=None)
    return plan if any(plan.values()) else {**{m: "" for m in COT_MODULES}, "semantic": cot.strip()}


@torch.no_grad()
def synthesize(policy: Policy, frames: np.ndarray, fps: float, plan: dict[str, str], cfg: PrismConfig,
               seed: int, features: Optional[dict] = None) -> np.ndarray:
    """Stereo float32 [2, N] for the first policy.duration_s seconds of a video, from a plan (or,
    with `features`, from the clip's cached features: policy.kind=prismaudio)."""
    duration = policy.cfg.duration_s
    n = int(round(duration * policy.sample_rate))
    clip = Clip("generate", "test", frames, fps, np.zeros((2, n), np.float32), policy.sample_rate, plan,
                features=features or {})
    clip = crop_clip(clip, 0.0, duration)
    cond = policy.encode_conditions(policy.prepare([clip], cot=None if features else [plan]))
    latent = sample_ode(policy, cond, cfg.sampler, torch.Generator().manual_seed(seed))
    return policy.waveforms(latent)[0]


def mux_mp4(path: str, frames: np.ndarray, fps: float, audio: np.ndarray, sample_rate: int) -> None:
    """Write frames (uint8 [T, H, W, 3]) and stereo audio ([2, N] float) as an h264 + AAC mp4."""
    h, w = frames.shape[1] - frames.shape[1] % 2, frames.shape[2] - frames.shape[2] % 2
    with av.open(path, "w", format="mp4") as out:
        try:
            v = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000), options={"preset": "veryfast"})
        except Exception:  # noqa: BLE001 - an FFmpeg build without x264
            v = out.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1000))
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac", rate=sample_rate, layout="stereo")
        for i, img in enumerate(frames[:, :h, :w]):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = i
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        samples = np.ascontiguousarray(np.clip(audio, -1, 1).astype(np.float32))
        block = 1024
        for s in range(0, samples.shape[1], block):
            chunk = np.ascontiguousarray(samples[:, s : s + block])
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            af.sample_rate, af.pts = sample_rate, s
            out.mux(a.encode(af))
        out.mux(a.encode(None))


def generate_one(job: VideoJob, policy: Policy, planner, cfg: PrismConfig, cot_arg: Optional[str], out_dir: str,
                 seed: int) -> dict[str, str]:
    """Plan, generate and write one video's outputs; returns the written paths."""
    try:
        frames, fps = decode_video(storage.read_bytes(job.path, cfg.data.s3))
    except Exception as e:  # noqa: BLE001 - any reader/decoder failure means an unreadable video
        raise ValueError(f"cannot read video {job.path}: {type(e).__name__}: {e}") from None
    if cot_arg:
        plan, source = user_plan(cot_arg, job.name), "user"
    elif planner is not None:
        plan, source = planner.plan(frames, fps), f"planner:{planner.name}"
    elif job.cot is not None:
        plan, source = job.cot, "manifest"
    else:
        raise ValueError(f"{job.path}: no plan: give cot=... or a planner (planner.checkpoint=DIR)")
    features = None
    if job.features:
        from orchestrator.data.features import FeatureFileError, parse_features

        try:
            features = parse_features(storage.read_bytes(job.features, cfg.data.s3), job.features)
        except (FileNotFoundError, FeatureFileError) as e:
            raise ValueError(f"{job.name}: feature file {job.features}: {e}") from None
    audio = synthesize(policy, frames, fps, plan, cfg, seed, features)
    paths = {k: os.path.join(out_dir, f"{job.name}{ext}") for k, ext in
             (("wav", ".wav"), ("mp4", ".mp4"), ("plan", ".plan.json"))}
    sf.write(paths["wav"], audio.T, policy.sample_rate)
    shown = frames[: max(1, int(np.ceil(policy.cfg.duration_s * fps - 1e-6)))]
    mux_mp4(paths["mp4"], shown, fps, audio[:, : int(round(len(shown) / fps * policy.sample_rate))], policy.sample_rate)
    with open(paths["plan"], "w") as f:
        json.dump({"video": job.path, "source": source, **plan}, f, indent=2)
    return paths


def run_generate(cfg: PrismConfig, checkpoint: str, source: str, cot: Optional[str] = None,
                 out_dir: Optional[str] = None) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Generate for every input video: ({name: written paths}, {video path: error}) ."""
    from tqdm import tqdm

    from policies.checkpoint import load_policy

    jobs = list_inputs(source, cfg.data.s3)
    policy = load_policy(checkpoint).eval()
    planner = None
    if not cot and (cfg.planner.checkpoint or cfg.planner.mllm_path):
        from policies.planner import build_planner

        planner = build_planner(cfg.planner)
    out_dir = out_dir or cfg.run_dir
    os.makedirs(out_dir, exist_ok=True)
    done, failed = {}, {}
    for i, job in enumerate(tqdm(jobs, desc="generate", unit="video", disable=not cfg.tracking.progress)):
        try:
            done[job.name] = generate_one(job, policy, planner, cfg, cot, out_dir, seed=cfg.seed * 100_003 + i)
        except ValueError as e:
            failed[job.path] = str(e)
            print(f"prismrl generate: {e}", file=sys.stderr)
    return done, failed


def main(argv: list[str]) -> int:
    """Entry point of `prismrl generate`."""
    argv, args = split_own(argv, ARGS)
    cfg = command_config(argv, "generate", __doc__, level=logging.WARNING)
    if cfg is None:
        return 0
    checkpoint = args.get("checkpoint") or cfg.policy.checkpoint
    if not checkpoint or not args.get("input"):
        print("prismrl generate: needs checkpoint=PATH and input=VIDEO|FOLDER|MANIFEST", file=sys.stderr)
        return 2
    try:
        done, failed = run_generate(cfg, checkpoint, args["input"], args.get("cot"), args.get("out"))
    except (FileNotFoundError, ValueError) as e:
        print(f"prismrl generate: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(done)} video(s) to {args.get('out') or cfg.run_dir}; {len(failed)} failed")
    return 1 if failed else 0
