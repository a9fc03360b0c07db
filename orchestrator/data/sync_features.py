"""PrismAudio's `sync_features` of one clip: Synchformer's visual features, 8 rows per segment.

As the reference's extractor (`data_utils/prismaudio_data_process.py` of FunAudioLLM/ThinkSound,
branch prismaudio: its dataset decodes int(25 * duration) frames at 25 fps, repeating the last one
where the decoder comes up short, resizes the short side to 224 (bicubic), centre-crops 224x224 and
normalises to [-1, 1]; `encode_video_with_sync` cuts 16-frame segments with step 8 and keeps the
video encoder's `[8, 768]` per segment, rows in time order): a 9 s clip gives 225 frames, 27
segments, `[216, 768]`. The preprocessing is PrismRL's Synchformer's (`rewards.models.synchformer`,
the same the timing teacher uses); the projection `vproj` and the offset classifier are not used.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from rewards.models.synchformer.segments import FRAMES_PER_SEGMENT, VIDEO_FPS, num_segments
from rewards.models.synchformer.video_preprocess import video_segments

ROWS_PER_SEGMENT = 8
"""Feature rows per 16-frame segment (one per pair of frames)."""
MAX_PADDED_FRAMES = 2
"""Frames at 25 fps a video may fall short of the requested span; the last frame repeats (as the reference pads)."""


def sync_frame_count(seconds: float) -> int:
    """Frames at 25 fps the reference reads for `seconds` of video: int(25 * seconds)."""
    return int(VIDEO_FPS * seconds + 1e-6)


def sync_rows(seconds: float) -> int:
    """Rows of `sync_features` for `seconds` of video (216 for 9 s and for 9.009 s; 0 under 0.64 s)."""
    return ROWS_PER_SEGMENT * num_segments(sync_frame_count(seconds))


def clip_sync_features(
    frames: np.ndarray,
    fps: float,
    seconds: float,
    encode: Callable,
    batch: int = 4,
) -> np.ndarray:
    """`sync_features` `[8 * S, D]` float32 of the first `seconds` of a clip.

    frames: uint8 `[T, H, W, 3]` at `fps`. encode: the video encoder, segments `[n, 3, 16, 224, 224]`
    -> features `[n, 8, D]` (`Synchformer.video_features` of the loaded checkpoint), called with at
    most `batch` segments at a time. Raises ValueError when the video is shorter than `seconds` by
    more than `MAX_PADDED_FRAMES` frames at 25 fps or too short for one segment.
    """
    import torch

    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if fps <= 0 or seconds <= 0 or batch < 1:
        raise ValueError(f"need fps > 0, seconds > 0 and batch >= 1, got fps={fps}, seconds={seconds}, batch={batch}")
    wanted = sync_frame_count(seconds)
    available = int(np.floor(frames.shape[0] * VIDEO_FPS / fps + 1e-6))
    if available + MAX_PADDED_FRAMES < wanted:
        raise ValueError(
            f"video is {frames.shape[0] / fps:.3f} s ({available} frames at 25 fps), the features need "
            f"{seconds} s ({wanted} frames)"
        )
    count = num_segments(wanted)
    if count == 0:
        raise ValueError(f"{seconds} s is shorter than one Synchformer segment ({FRAMES_PER_SEGMENT} frames at 25 fps)")
    segments = video_segments(frames, fps, list(range(count)))  # frames past the end repeat the last one
    with torch.inference_mode():
        feats = torch.cat([encode(s) for s in segments.split(batch)])
    if feats.ndim != 3 or feats.shape[:2] != (count, ROWS_PER_SEGMENT):
        raise ValueError(f"the video encoder returned {tuple(feats.shape)} for {count} segments, expected [{count}, 8, D]")
    return feats.float().reshape(count * ROWS_PER_SEGMENT, -1).cpu().numpy()
