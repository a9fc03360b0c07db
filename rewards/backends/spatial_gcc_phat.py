"""spatial/gcc_phat: PrismAudio's GCC-PHAT spatial term on its own.

The inter-aural time delay (ITD) of the generated stereo audio and of the clip's ground-truth
audio are each estimated with GCC-PHAT over the whole clip (`rewards.dsp.gcc_phat_itd`, sign:
positive = source on the left) at the working rate, in milliseconds. The reward is the GCC term
of PrismAudio's spatial formula, `formulas.spatial_gcc_reward(itd_gen - itd_gt) = -w_gcc * dITD^2`
(w_gcc = 2.5 by default); the StereoCRW term needs the stereocrw backend. `peak=integer_abs`,
`interp=1`, `phat_floor_db=inf` estimate the ITD as PrismAudio's reward does (StereoCRW's
`gcc_phat`: plain phase transform, the integer lag of the largest |cross-correlation|); the
defaults are PrismRL's (regularised PHAT, 16x upsampling, parabolic fit of the signed peak). ITDs are bounded by
+-`max_delay_ms`, so the reward lies in [-w_gcc * (2 * max_delay_ms)^2, 0]. Silent or mono-identical
channels have ITD 0 (finite). The ground-truth ITD is cached per clip id.
Diagnostics: `itd_gen_ms`, `itd_gt_ms`, `ditd_ms`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from common.types import Clip, Grade
from rewards import dsp
from rewards.base import Teacher, TeacherError, register_backend
from rewards.formulas import spatial_gcc_reward


@dataclass
class SpatialGccPhatOptions:
    """Options of the spatial/gcc_phat backend."""

    sample_rate: int = 16000
    """Working sample rate in Hz (StereoCRW and PrismAudio's GCC use 16 kHz)."""
    max_delay_ms: float = 1.0
    """Largest |ITD| searched, in ms (a human head gives at most about 0.7 ms)."""
    interp: int = 16
    """Upsampling factor of the GCC-PHAT curve for sub-sample delays."""
    phat_floor_db: float = dsp.DEFAULT_PHAT_FLOOR_DB
    """Regularised PHAT: cross-spectrum bins more than this many dB below the strongest one are
    weighted by their level, so a faint noise bed or codec residue cannot outvote the sources
    (`inf`: the plain phase transform, as PrismAudio)."""
    w_gcc: float = 2.5
    """Weight of the squared ITD difference (PrismAudio: 2.5)."""
    peak: str = "parabolic"
    """Peak picking (`rewards.dsp.gcc_peak_lag`): `parabolic` (largest signed correlation, sub-step
    parabolic fit) or `integer_abs` (PrismAudio: grid lag of the largest |correlation|)."""
    cache_size: int = 4096
    """Ground-truth ITDs kept per clip id (oldest dropped first)."""


@register_backend("spatial", "gcc_phat", SpatialGccPhatOptions)
class SpatialGccPhatTeacher(Teacher):
    """Squared GCC-PHAT ITD difference between generated and ground-truth stereo audio."""

    reward_range = (-float("inf"), 0.0)
    """Class-level bound (the worst reward depends on options); each instance narrows it."""

    def __init__(self, options: SpatialGccPhatOptions | None = None):
        self.options = options or SpatialGccPhatOptions()
        if self.options.max_delay_ms <= 0 or self.options.w_gcc < 0 or self.options.interp < 1 or self.options.phat_floor_db <= 0:
            raise TeacherError("rewards.spatial.options: need max_delay_ms > 0, w_gcc >= 0, interp >= 1 and phat_floor_db > 0")
        if self.options.peak not in dsp.PEAK_MODES:
            raise TeacherError(f"rewards.spatial.options.peak: '{self.options.peak}' is not one of {dsp.PEAK_MODES}")
        worst = float(spatial_gcc_reward(2 * self.options.max_delay_ms, self.options.w_gcc))
        self.reward_range = (worst, 0.0)
        self._gt_cache: OrderedDict[str, float] = OrderedDict()

    def itd_ms(self, audio: np.ndarray, sample_rate: int, what: str) -> float:
        """GCC-PHAT ITD in ms of a [2, N] waveform; `what` names it in errors."""
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != 2:
            raise TeacherError(f"{self.describe()}: {what} must be stereo [2, N], got shape {x.shape}")
        x = dsp.resample(x, sample_rate, self.options.sample_rate)
        itd = dsp.gcc_phat_itd(x[0], x[1], self.options.sample_rate, self.options.max_delay_ms / 1000.0,
                               self.options.interp, self.options.phat_floor_db, self.options.peak)
        return 1000.0 * itd

    def ground_truth_itd_ms(self, clip: Clip) -> float:
        """ITD of the clip's ground-truth audio in ms (cached by clip id)."""
        if clip.clip_id not in self._gt_cache:
            self._gt_cache[clip.clip_id] = self.itd_ms(clip.audio, clip.sample_rate,
                                                       f"ground-truth audio of clip '{clip.clip_id}'")
            while len(self._gt_cache) > max(self.options.cache_size, 1):
                self._gt_cache.popitem(last=False)
        return self._gt_cache[clip.clip_id]

    def grade_one(self, audio: np.ndarray, sample_rate: int, clip: Clip) -> Grade:
        """Grade of one generated waveform against its clip's ground-truth stereo image."""
        gen = self.itd_ms(audio, sample_rate, f"generated audio for clip '{clip.clip_id}'")
        gt = self.ground_truth_itd_ms(clip)
        reward = float(spatial_gcc_reward(gen - gt, self.options.w_gcc))
        return Grade(reward, {"itd_gen_ms": gen, "itd_gt_ms": gt, "ditd_ms": gen - gt})

    def grade(self, audio: Sequence[np.ndarray], sample_rate: int, clips: Sequence[Clip]) -> list[Grade]:
        if len(audio) != len(clips):
            raise TeacherError(f"{self.describe()}: {len(audio)} waveforms for {len(clips)} clips")
        return [self.grade_one(a, sample_rate, c) for a, c in zip(audio, clips)]
