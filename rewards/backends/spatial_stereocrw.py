"""Spatial teacher `stereocrw`: PrismAudio's ITD reward from StereoCRW and GCC-PHAT.

For the generated audio and for the clip's ground-truth audio (both resampled to 16 kHz) two
inter-aural time delays are measured: StereoCRW's soft-argmax ITD over patch-feature affinities
(`rewards.models.stereocrw`) and GCC-PHAT's (`rewards.dsp.gcc_phat_itd`, averaged over windows as
PrismAudio does: 512 windows of 3,840 samples). The reward is
`-(1.25 * dITD_crw^2 + 2.5 * dITD_gcc^2)` with ITD differences in milliseconds
(`rewards.formulas.spatial_reward`). Ground-truth ITDs depend only on the clip and are cached per
`clip_id`. Unlike PrismAudio's reward code, the checkpoint is really loaded: a missing file fails.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from common.types import Clip, Grade
from rewards.base import Teacher, TeacherError, register_backend
from rewards.dsp import DEFAULT_PHAT_FLOOR_DB, PEAK_MODES, gcc_phat_itd, resample
from rewards.formulas import spatial_reward

SAMPLE_RATE = 16000


@dataclass
class StereoCRWOptions:
    """Options of the `stereocrw` spatial backend (defaults: PrismAudio's reward settings)."""

    checkpoint: str = ""
    """Local path to `FreeMusic-StereoCRW-1024.pth.tar` (required; no download)."""
    device: str = "cpu"
    """Torch device to run on (`cpu`, `cuda`, `cuda:1`...)."""
    patch_s: float = 6.0
    """StereoCRW patch length in seconds; the STFT hop is patch/128 (PrismAudio 6 s; trained on 0.064 s)."""
    patch_num: int = 512
    """StereoCRW patches per channel (PrismAudio: 512)."""
    patch_stride: int = 1
    """Samples between consecutive StereoCRW patches (PrismAudio: 1)."""
    max_delay_s: float = 1.5e-3
    """Largest ITD either method considers, seconds (stereocrw_binaural: 1.5 ms)."""
    tau: float = 0.05
    """Softmax temperature on StereoCRW's cosine affinities."""
    patch_batch: int = 64
    """Patches per ResNet forward pass (memory vs. speed)."""
    gcc_window: int = 3840
    """GCC-PHAT window in samples (PrismAudio's gcc_fft: 3840 = 0.24 s)."""
    gcc_windows: int = 512
    """Number of GCC-PHAT windows spread evenly over the analysed audio; their ITDs are averaged."""
    gcc_interp: int = 1
    """GCC-PHAT upsampling factor (PrismAudio: 1; `rewards.dsp` adds a parabolic sub-sample fit)."""
    gcc_peak: str = "parabolic"
    """GCC-PHAT peak picking (`rewards.dsp.gcc_peak_lag`): `parabolic` (PrismRL) or `integer_abs`
    (PrismAudio: the integer lag of the largest |cross-correlation|)."""
    gcc_phat_floor_db: float = DEFAULT_PHAT_FLOOR_DB
    """Regularised PHAT floor in dB (`rewards.dsp.gcc_phat`); `inf`: the plain phase transform, as PrismAudio."""
    w_crw: float = 1.25
    """Weight of the squared StereoCRW ITD difference (ms^2)."""
    w_gcc: float = 2.5
    """Weight of the squared GCC-PHAT ITD difference (ms^2)."""
    cache_size: int = 512
    """How many clips' ground-truth ITDs are kept (LRU)."""

    def __post_init__(self):
        where = "rewards.spatial.options"
        if not self.checkpoint:
            raise TeacherError(f"{where}.checkpoint: required (local path to FreeMusic-StereoCRW-1024.pth.tar)")
        if self.patch_s * SAMPLE_RATE < 128 or self.patch_num < 1 or self.patch_stride < 1:
            raise TeacherError(f"{where}: need patch_s >= 0.008, patch_num >= 1, patch_stride >= 1")
        offset = int(np.floor(SAMPLE_RATE * self.max_delay_s / self.patch_stride + 1e-9))
        if offset < 1 or self.patch_num <= 2 * offset:
            raise TeacherError(
                f"{where}.patch_num: {self.patch_num} patches leave none after dropping {offset} at each end "
                f"(max_delay_s={self.max_delay_s}, patch_stride={self.patch_stride})"
            )
        if self.gcc_window < 2 or self.gcc_windows < 1 or self.gcc_interp < 1 or self.cache_size < 0:
            raise TeacherError(f"{where}: gcc_window >= 2, gcc_windows >= 1, gcc_interp >= 1, cache_size >= 0")
        if self.gcc_peak not in PEAK_MODES or not self.gcc_phat_floor_db > 0:
            raise TeacherError(f"{where}: gcc_peak must be one of {PEAK_MODES} and gcc_phat_floor_db > 0")


def windowed_gcc_itd(stereo: np.ndarray, window: int, count: int, max_delay_s: float, interp: int,
                     peak: str = "parabolic", floor_db: float = DEFAULT_PHAT_FLOOR_DB) -> float:
    """Mean GCC-PHAT ITD (seconds) over `count` evenly stepped windows of `[2, N]` 16 kHz audio
    (`peak`, `floor_db`: see `rewards.dsp.gcc_phat_itd`)."""
    n = stereo.shape[1]
    window = min(window, n)
    step = (n - window) // (count - 1) if count > 1 else 0
    starts = [k * step for k in range(count)] if step > 0 else [0]
    itds = [gcc_phat_itd(stereo[0, s : s + window], stereo[1, s : s + window], SAMPLE_RATE, max_delay_s, interp,
                         floor_db, peak) for s in starts]
    return float(np.mean(itds))


@register_backend("spatial", "stereocrw", StereoCRWOptions)
class StereoCRWTeacher(Teacher):
    """Grades the stereo image by ITD agreement with the ground truth (StereoCRW + GCC-PHAT)."""

    reward_range = (-(1.25 + 2.5) * (2 * 1.5) ** 2, 0.0)

    def __init__(self, options: StereoCRWOptions):
        import torch

        from rewards.models import stereocrw as crw

        self.options = options
        self._torch, self._crw = torch, crw
        self.device = torch.device(options.device)
        self.settings = crw.CrwSettings(
            patch_s=options.patch_s, patch_num=options.patch_num, patch_stride=options.patch_stride,
            max_delay_s=options.max_delay_s, tau=options.tau, batch=options.patch_batch,
        )
        try:
            self.model = crw.load_stereocrw(options.checkpoint, self.settings.patch_samples, self.device)
        except crw.CheckpointError as exc:
            raise TeacherError(f"{self.describe()}: {exc}") from exc
        bound = 2 * options.max_delay_s * 1000.0
        self.reward_range = (-(options.w_crw + options.w_gcc) * bound**2, 0.0)
        self._cache: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _prepare(self, wave: np.ndarray, sample_rate: int, what: str) -> np.ndarray:
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 2 or wave.shape[0] != 2 or wave.shape[1] == 0 or not np.all(np.isfinite(wave)):
            raise TeacherError(f"{self.describe()}: {what}: expected finite stereo audio [2, N], got shape {wave.shape}")
        return self._crw.prepare_stereo(resample(wave, sample_rate, SAMPLE_RATE), self.settings.span_samples)

    def _itds_ms(self, stereos: list[np.ndarray]) -> list[tuple[float, float]]:
        """(CRW ITD, GCC-PHAT ITD) in ms for each prepared `[2, span]` clip."""
        torch = self._torch
        batch = torch.from_numpy(np.stack(stereos)).to(self.device)
        with torch.inference_mode():
            crw, _ = self._crw.estimate_itd(self.model, batch, self.settings)
        o = self.options
        return [
            (1000.0 * float(c),
             1000.0 * windowed_gcc_itd(s, o.gcc_window, o.gcc_windows, o.max_delay_s, o.gcc_interp, o.gcc_peak,
                                       o.gcc_phat_floor_db))
            for c, s in zip(crw.cpu().numpy(), stereos)
        ]

    def _ground_truth_ms(self, clips: Sequence[Clip]) -> list[tuple[float, float]]:
        with self._lock:
            known = {c.clip_id: self._cache[c.clip_id] for c in clips if c.clip_id in self._cache}
            for cid in known:
                self._cache.move_to_end(cid)
        todo = list(OrderedDict((c.clip_id, c) for c in clips if c.clip_id not in known).values())
        if todo:
            prepared = [self._prepare(c.audio, c.sample_rate, f"clip {c.clip_id} ground truth") for c in todo]
            for clip, itds in zip(todo, self._itds_ms(prepared)):
                known[clip.clip_id] = itds
                with self._lock:
                    if self.options.cache_size > 0:
                        self._cache[clip.clip_id] = itds
                        while len(self._cache) > self.options.cache_size:
                            self._cache.popitem(last=False)
        return [known[c.clip_id] for c in clips]

    def grade(self, audio: Sequence[np.ndarray], sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        if len(audio) != len(clips):
            raise TeacherError(f"{self.describe()}: got {len(audio)} waveforms for {len(clips)} clips")
        gt = self._ground_truth_ms(clips)
        gen = self._itds_ms([self._prepare(a, sample_rate, f"clip {c.clip_id} generated") for a, c in zip(audio, clips)])
        grades = []
        for (crw_gen, gcc_gen), (crw_gt, gcc_gt) in zip(gen, gt):
            reward = spatial_reward(crw_gen - crw_gt, gcc_gen - gcc_gt, self.options.w_crw, self.options.w_gcc)
            grades.append(
                Grade(
                    reward=float(reward),
                    diagnostics={
                        "itd_crw_gen_ms": crw_gen,
                        "itd_crw_gt_ms": crw_gt,
                        "itd_gcc_gen_ms": gcc_gen,
                        "itd_gcc_gt_ms": gcc_gt,
                    },
                )
            )
        return grades
