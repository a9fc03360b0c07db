"""Where Synchformer's segments and 14-segment windows lie in a clip (pure index arithmetic).

Segment `s` covers video frames `[8s, 8s + 16)` at 25 fps, i.e. `[0.32 s * s, 0.32 s * s + 0.64 s)`,
and the same span of audio: samples `[5120 s, 5120 s + 10240)` at 16 kHz. The offset classifier
takes 14 consecutive segments: 4.8 s (120 frames, 76,800 samples), the shortest clip it can grade.
"""
from __future__ import annotations

VIDEO_FPS = 25.0
"""Frame rate Synchformer's video encoder expects."""
AUDIO_SR = 16000
"""Sample rate Synchformer's audio encoder expects."""
FRAMES_PER_SEGMENT = 16
FRAME_STEP = 8
SAMPLES_PER_SEGMENT = 10240
SAMPLE_STEP = 5120
SEGMENTS_PER_WINDOW = 14
WINDOW_FRAMES = (SEGMENTS_PER_WINDOW - 1) * FRAME_STEP + FRAMES_PER_SEGMENT  # 120
WINDOW_SAMPLES = (SEGMENTS_PER_WINDOW - 1) * SAMPLE_STEP + SAMPLES_PER_SEGMENT  # 76800
MIN_DURATION_S = WINDOW_FRAMES / VIDEO_FPS  # 4.8
WINDOW_MODES = ("first", "first_and_last")


def num_segments(num_frames_25fps: int) -> int:
    """How many whole 16-frame segments (step 8) fit in `num_frames_25fps` frames (0 if none)."""
    if num_frames_25fps < FRAMES_PER_SEGMENT:
        return 0
    return (num_frames_25fps - FRAMES_PER_SEGMENT) // FRAME_STEP + 1


def window_starts(total_segments: int, mode: str) -> list[int]:
    """First segment of each 14-segment window to classify.

    `first`: the clip's first 4.8 s (PrismAudio's timing reward). `first_and_last`: the first and
    the last 14 segments (av-benchmark's DeSync); one window when they coincide.
    """
    if mode not in WINDOW_MODES:
        raise ValueError(f"windows: unknown mode '{mode}'; expected one of {WINDOW_MODES}")
    if total_segments < SEGMENTS_PER_WINDOW:
        raise ValueError(f"need at least {SEGMENTS_PER_WINDOW} segments ({MIN_DURATION_S} s), got {total_segments}")
    starts = [0]
    last = total_segments - SEGMENTS_PER_WINDOW
    if mode == "first_and_last" and last > 0:
        starts.append(last)
    return starts


def segments_needed(starts: list[int]) -> list[int]:
    """Sorted indices of every segment some window uses."""
    return sorted({s + i for s in starts for i in range(SEGMENTS_PER_WINDOW)})
