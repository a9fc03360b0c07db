"""Video preprocessing as Synchformer was trained and evaluated: 25 fps, 224 px, [-1, 1].

Frames are resampled to 25 fps (the frame on screen at each 1/25 s), the short side resized to 224 (bicubic,
antialiased, rounded back to 8-bit values as torchvision does on uint8 frames), centre-cropped to
224x224, scaled to [0, 1] and normalized with mean 0.5 / std 0.5 (av-benchmark
av_bench/data/video_dataset.py:52-56). Segments are 16 frames, step 8.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rewards.models.synchformer.segments import FRAME_STEP, FRAMES_PER_SEGMENT, VIDEO_FPS

IMAGE_SIZE = 224


def resample_frame_indices(num_frames: int, fps: float, target_fps: float = VIDEO_FPS) -> np.ndarray:
    """Indices into a `num_frames`-long video at `fps` of the frame on screen at each 1/target_fps step."""
    if num_frames <= 0 or fps <= 0:
        raise ValueError(f"resample_frame_indices: need frames > 0 and fps > 0, got {num_frames} frames at {fps} fps")
    n_out = int(np.floor(num_frames * target_fps / fps + 1e-6))
    idx = np.floor(np.arange(n_out) * fps / target_fps + 1e-6).astype(np.int64)
    return np.minimum(idx, num_frames - 1)


def resize_center_crop(frames: np.ndarray, size: int = IMAGE_SIZE) -> torch.Tensor:
    """uint8 frames `[T, H, W, 3]` -> float `[T, 3, size, size]` normalized to [-1, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
        x = x.round().clamp(0, 255)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    x = x[:, :, top : top + size, left : left + size]
    return (x / 255.0 - 0.5) / 0.5


def video_segments(frames: np.ndarray, fps: float, segments: list[int], chunk: int = 16) -> torch.Tensor:
    """The listed 16-frame segments of a clip as model input `[S, 3, 16, 224, 224]`.

    frames: uint8 `[T, H, W, 3]` at `fps`; resampled to 25 fps first. Frames past the end of the
    video repeat the last frame. Only frames some listed segment uses are resized.
    """
    idx25 = resample_frame_indices(frames.shape[0], fps)
    needed = sorted({s * FRAME_STEP + i for s in segments for i in range(FRAMES_PER_SEGMENT)})
    source = idx25[np.minimum(needed, idx25.size - 1)]
    pixels = torch.cat([resize_center_crop(frames[source[i : i + chunk]]) for i in range(0, len(source), chunk)])
    where = {f: k for k, f in enumerate(needed)}
    picked = [
        pixels[[where[s * FRAME_STEP + i] for i in range(FRAMES_PER_SEGMENT)]] for s in segments
    ]  # each [16, 3, H, W]
    return torch.stack(picked).permute(0, 2, 1, 3, 4).contiguous()
