"""Video frames -> condition tokens: resample to video_fps, resize, a small conv encoder per frame.

One token per video frame: the conv features of a frame are flattened (so the token keeps where
things are in the picture, which the spatial reward depends on) and projected to the width. The
token gets the same sinusoidal time embedding (of its time in seconds) as the audio frames, so
video and audio positions are aligned in time.

With `motion`, the encoder also sees each frame's difference from the frame before it (three more
input channels; zero for the first frame and at the first frame past the clip's end). A flash or
an impact is then a large input where it happens, present from initialisation, instead of a
colour change the conv has to learn to tell from a coloured object; timing cues of this kind are
what Synchformer's video features carry.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def video_frame_count(duration_s: float, video_fps: float) -> int:
    """Frames the encoder sees for duration_s seconds."""
    return max(1, int(round(duration_s * video_fps)))


def resample_frames(frames: np.ndarray, fps: float, video_fps: float, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(frames uint8 [count, 3, size, size], valid bool [count]) at video_fps from frames [T, H, W, 3] at fps.

    Frame j shows time j / video_fps (nearest source frame); times past the clip are zero and invalid.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected video frames [T, H, W, 3], got shape {frames.shape}")
    t = np.arange(count) / float(video_fps)
    src = np.floor(t * float(fps) + 1e-6).astype(np.int64)
    valid = src < frames.shape[0]
    picked = torch.from_numpy(np.ascontiguousarray(frames[np.minimum(src, frames.shape[0] - 1)]))
    x = picked.permute(0, 3, 1, 2).float()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8)
    x[torch.from_numpy(~valid)] = 0
    return x, torch.from_numpy(valid)


def frame_differences(frames: torch.Tensor) -> torch.Tensor:
    """Each frame minus the previous one, in [-2, 2], for uint8 frames [B, T, 3, S, S]; frame 0 gets zeros."""
    x = frames.float() / 127.5
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], 1)


class FrameEncoder(nn.Module):
    """Conv stem over each frame (size -> size/8), flattened to one token of `width`; with `motion`
    the frame's difference from the previous frame is stacked on its RGB."""

    def __init__(self, size: int, width: int, channels: int = 32, motion: bool = False):
        super().__init__()
        if size % 8:
            raise ValueError(f"policy.video_size must be a multiple of 8, got {size}")
        self.motion = motion
        self.conv = nn.Sequential(
            nn.Conv2d(6 if motion else 3, channels // 2, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.SiLU(),
        )
        self.proj = nn.Linear(channels * (size // 8) ** 2, width)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Tokens [B, T, width] of uint8 frames [B, T, 3, S, S]."""
        b, t = frames.shape[:2]
        x = frames.float() / 127.5 - 1.0
        if self.motion:
            x = torch.cat([x, frame_differences(frames)], 2)
        x = x.reshape(b * t, *x.shape[2:]).to(self.proj.weight.dtype)  # the weights' dtype (a bf16 learner)
        return self.proj(self.conv(x).reshape(b, t, -1))
