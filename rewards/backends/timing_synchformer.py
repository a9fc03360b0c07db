"""Timing teacher `synchformer`: PrismAudio's audio-visual synchrony reward from Synchformer.

For each generated clip: the clip's video (25 fps, 224 px, 16-frame segments, step 8) and the
generated audio (16 kHz mono log-mel, 0.64 s segments) go through Synchformer; the argmax of the
21 offset classes (-2.0 ... +2.0 s) is the predicted offset and the reward is `(2 - |offset|) / 4`
(`rewards.formulas.timing_reward`). Visual features depend only on the clip, so they are cached
per `clip_id` (LRU): after the first grade of a clip, each generated audio costs only the audio
encoder and the small offset transformer. Every group member of a GRPO group shares its clip.

Checkpoint: `synchformer_state_dict.pth` (see `rewards.models.synchformer`).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from common.types import Clip, Grade
from rewards.base import Teacher, TeacherError, register_backend
from rewards.dsp import resample, to_mono
from rewards.formulas import timing_reward
from rewards.models.precision import PRECISIONS, autocast_context
SHORT_CLIP_POLICIES = ("error", "pad")


@dataclass
class SynchformerOptions:
    """Options of the `synchformer` timing backend."""

    checkpoint: str = ""
    """Local path to `synchformer_state_dict.pth` (required; no download)."""
    device: str = "cpu"
    """Torch device to run on (`cpu`, `cuda`, `cuda:1`...)."""
    precision: str = "float32"
    """`float32`, or `bfloat16` / `float16` autocast (float16 on CUDA only; ~4x faster on CPUs with AMX)."""
    windows: str = "first"
    """Which 4.8 s windows are classified: `first` (PrismAudio: the clip's first 14 segments) or
    `first_and_last` (av-benchmark's DeSync: first and last 14 segments; the reward is their mean)."""
    short_clip: str = "error"
    """Clips under 4.8 s: `error` (TeacherError naming the clip) or `pad` (repeat the last frame,
    zero-pad the audio, up to 4.8 s)."""
    cache_size: int = 512
    """How many clips' visual features are kept (LRU); about 0.35 MB per clip and window."""
    video_batch: int = 4
    """Video segments per forward pass of the video encoder (memory vs. speed)."""

    def __post_init__(self):
        where = "rewards.timing.options"
        if not self.checkpoint:
            raise TeacherError(f"{where}.checkpoint: required (local path to synchformer_state_dict.pth)")
        if self.precision not in PRECISIONS:
            raise TeacherError(f"{where}.precision: '{self.precision}' is not one of {PRECISIONS}")
        if self.windows not in ("first", "first_and_last"):
            raise TeacherError(f"{where}.windows: '{self.windows}' is not one of ('first', 'first_and_last')")
        if self.short_clip not in SHORT_CLIP_POLICIES:
            raise TeacherError(f"{where}.short_clip: '{self.short_clip}' is not one of {SHORT_CLIP_POLICIES}")
        if self.cache_size < 0 or self.video_batch < 1:
            raise TeacherError(f"{where}: cache_size must be >= 0 and video_batch >= 1")


@register_backend("timing", "synchformer", SynchformerOptions)
class SynchformerTeacher(Teacher):
    """Grades audio-visual synchrony with Synchformer's offset prediction."""

    reward_range = (0.0, 0.5)

    def __init__(self, options: SynchformerOptions):
        import torch

        from rewards.models import synchformer as sf

        self.options = options
        self._torch, self._sf = torch, sf
        self.device = torch.device(options.device)
        try:
            self.model = sf.load_synchformer(options.checkpoint, device=self.device)
        except sf.CheckpointError as exc:
            raise TeacherError(f"{self.describe()}: {exc}") from exc
        self._cache: OrderedDict[str, tuple[object, list[int]]] = OrderedDict()
        self._lock = threading.Lock()
        self.video_encodes = 0
        """How many clips' videos went through the video encoder (cache misses)."""

    # -- helpers ----------------------------------------------------------------------------
    def _autocast(self):
        return autocast_context(self.options.precision, self.device.type)

    def _layout(self, clip: Clip) -> tuple[int, list[int]]:
        """(segments the clip spans, window start segments), after the short-clip policy."""
        sf = self._sf
        frames = clip.frames
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise TeacherError(f"{self.describe()}: clip {clip.clip_id}: frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
        if clip.fps <= 0:
            raise TeacherError(f"{self.describe()}: clip {clip.clip_id}: fps must be > 0, got {clip.fps}")
        n25 = int(np.floor(frames.shape[0] * sf.VIDEO_FPS / clip.fps + 1e-6))
        total = sf.num_segments(n25)
        if total < 14:
            if self.options.short_clip == "error":
                raise TeacherError(
                    f"{self.describe()}: clip {clip.clip_id}: video is {frames.shape[0] / clip.fps:.2f} s, "
                    f"Synchformer needs at least {sf.MIN_DURATION_S} s (set options.short_clip='pad' to pad)"
                )
            total = 14
        return total, sf.window_starts(total, self.options.windows)

    def _video_features(self, clip: Clip):
        """Cached `[W, 14, 8, D]` visual features of the clip's windows."""
        with self._lock:
            hit = self._cache.get(clip.clip_id)
            if hit is not None:
                self._cache.move_to_end(clip.clip_id)
                return hit
        _, starts = self._layout(clip)
        needed = self._sf.segments_needed(starts)
        segs = self._sf.video_segments(clip.frames, clip.fps, needed).to(self.device)
        with self._torch.inference_mode(), self._autocast():
            feats = self.model.video_features(segs, chunk=self.options.video_batch).float()
        pos = {s: i for i, s in enumerate(needed)}
        windows = self._torch.stack([feats[[pos[s + i] for i in range(14)]] for s in starts])
        entry = (windows, starts)
        with self._lock:
            self.video_encodes += 1
            if self.options.cache_size > 0:
                self._cache[clip.clip_id] = entry
                while len(self._cache) > self.options.cache_size:
                    self._cache.popitem(last=False)
        return entry

    def _audio_windows(self, wave: np.ndarray, sample_rate: int, starts: list[int], clip_id: str):
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim not in (1, 2) or wave.shape[-1] == 0 or not np.all(np.isfinite(wave)):
            raise TeacherError(f"{self.describe()}: clip {clip_id}: generated audio must be finite [2, N], got shape {wave.shape}")
        mono = resample(to_mono(wave), sample_rate, self._sf.AUDIO_SR)
        needed = self._sf.segments_needed(starts)
        mels = self._sf.audio_segments(mono, needed)
        pos = {s: i for i, s in enumerate(needed)}
        return mels, [[pos[s + i] for i in range(14)] for s in starts]

    # -- Teacher ----------------------------------------------------------------------------
    def grade(self, audio: Sequence[np.ndarray], sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        torch = self._torch
        if len(audio) != len(clips):
            raise TeacherError(f"{self.describe()}: got {len(audio)} waveforms for {len(clips)} clips")
        video = [self._video_features(c) for c in clips]
        mels, index = [], []
        offset = 0
        for wave, clip, (_, starts) in zip(audio, clips, video):
            m, idx = self._audio_windows(wave, sample_rate, starts, clip.clip_id)
            mels.append(m)
            index.append([[offset + i for i in w] for w in idx])
            offset += m.shape[0]
        with torch.inference_mode(), self._autocast():
            afeats = self.model.audio_features(torch.cat(mels).to(self.device)).float()
            vis = torch.cat([v for v, _ in video])
            aud = torch.stack([afeats[w] for windows in index for w in windows])
            logits = self.model.offset_logits(vis, aud).float().cpu().numpy()
        offsets, probs = self._sf.predicted_offsets(logits)
        grades, k = [], 0
        for windows in index:
            n = len(windows)
            off, p = offsets[k : k + n], probs[k : k + n]
            k += n
            grades.append(
                Grade(
                    reward=float(np.mean(timing_reward(off))),
                    diagnostics={
                        "offset_s": float(off[0]),
                        "mean_abs_offset_s": float(np.mean(np.abs(off))),
                        "offset_prob": float(p[0]),
                        "windows": float(n),
                    },
                )
            )
        return grades
