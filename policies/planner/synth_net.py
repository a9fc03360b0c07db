"""The `synth` planner's network: a small CNN that reads a frame (and its change since the previous
frame) and maps, on a coarse grid over the picture, where the object of each sound class is and
where an impact (a flash: the start of a sound) happens.

Input per frame: [cur/255, (cur - prev)/255] resized to frame_size (6 channels). Output, on a grid of
G x G cells (G = frame_size / 4): objectness (an object covers this cell), the class of that object
(softmax over K), so presence of class k = P(object) * P(k | object); and `onset` (an object starts
flashing in this cell in this frame; class-agnostic: the class is read from the presence map of the
previous frame, where the object still shows its own colour). Targets (`frame_targets`): presence is a Gaussian bump of width CELL_SIGMA
cells around the object's centre, so its x is read back below cell resolution; onset is 1 in the
cell of the flashing object's centre on its onset frame.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CELL_SIGMA = 0.6
"""Width (in grid cells) of the Gaussian presence target around an object's centre."""
ONSET_POS_WEIGHT = 8.0
"""Weight of positive onset cells in the loss (onsets are rare)."""
PRESENCE_POS_WEIGHT = 8.0
"""Weight of objectness cells at an object's centre in the loss (most cells are empty)."""
OBJECT_CELL = 0.3
"""Cells whose presence target is at least this much are trained on the object's class."""


def resize_frames(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 [T, 3, size, size] from uint8 frames [T, H, W, 3] (bilinear, antialiased)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8)


def frame_pairs(resized: torch.Tensor) -> torch.Tensor:
    """Network input [T, 6, S, S] (float) from resized uint8 frames [T, 3, S, S] of one video."""
    cur = resized.float() / 255.0
    prev = torch.cat([cur[:1], cur[:-1]])
    return torch.cat([cur, cur - prev], dim=1)


def frame_targets(centres: np.ndarray, onset_frames: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """(presence [T, K, G, G], onset [T, 1, G, G]) float32 targets of one video.

    centres: [T, K, 2] object centre (x, y) as fractions of the width and height, NaN where class k
    is not on screen; onset_frames: [T, K] bool, True where class k's object starts a sound.
    """
    mids = (np.arange(grid) + 0.5) / grid
    dx = (centres[..., 0, None] - mids) * grid  # [T, K, G] in cells
    dy = (centres[..., 1, None] - mids) * grid
    bump = np.exp(-0.5 * (dy[..., :, None] ** 2 + dx[..., None, :] ** 2) / CELL_SIGMA**2)  # [T, K, G(y), G(x)]
    presence = np.where(np.isnan(bump), 0.0, bump).astype(np.float32)
    onset = np.zeros((centres.shape[0], 1, grid, grid), dtype=np.float32)
    cells = np.clip(np.floor(np.nan_to_num(centres, nan=0.0) * grid), 0, grid - 1).astype(np.int64)
    for t, k in zip(*np.nonzero(onset_frames & ~np.isnan(centres[..., 0]))):
        onset[t, 0, cells[t, k, 1], cells[t, k, 0]] = 1.0
    return presence, onset


class FrameEventNet(nn.Module):
    """Conv net: frames [B, 6, S, S] -> per cell of a G x G grid (G = S/4): objectness, class and onset logits.

    A patch embedding (one token per 4x4 patch, so colours stay exact), two 3x3 context layers on the
    grid, and a per-cell head."""

    def __init__(self, num_classes: int, frame_size: int = 32, channels: int = 32):
        super().__init__()
        if frame_size % 4:
            raise ValueError(f"planner.frame_size must be a multiple of 4, got {frame_size}")
        c = channels
        self.num_classes, self.frame_size, self.grid = num_classes, frame_size, frame_size // 4
        self.body = nn.Sequential(
            nn.Conv2d(6, c, 4, stride=4), nn.SiLU(),  # one token per 4x4 patch: keeps exact pixel colours
            nn.Conv2d(c, c, 1), nn.SiLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.SiLU(),  # context: the neighbouring patches
            nn.Conv2d(c, c, 3, padding=1), nn.SiLU(),
        )
        self.head = nn.Conv2d(c, num_classes + 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(objectness logits [B, 1, G, G], class logits [B, K, G, G], onset logits [B, 1, G, G])."""
        maps = self.head(self.body(x))
        return maps[:, :1], maps[:, 1 : 1 + self.num_classes], maps[:, 1 + self.num_classes :]

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(presence [B, K, G, G] = P(object) * P(class | object), onset [B, G, G]) probabilities."""
        obj, cls, onset = self(x)
        return torch.sigmoid(obj) * torch.softmax(cls, dim=1), torch.sigmoid(onset[:, 0])


def planner_loss(net: FrameEventNet, inputs: torch.Tensor, presence: torch.Tensor, onset: torch.Tensor) -> torch.Tensor:
    """Loss against `frame_targets` output: weighted BCE of objectness (the strongest class bump per
    cell) + cross-entropy of the class at cells near an object (bump >= OBJECT_CELL) + weighted BCE
    of the onset map (cells near an object / an impact weigh PRESENCE_POS_WEIGHT / ONSET_POS_WEIGHT
    times more)."""
    obj_logits, cls_logits, onset_logits = net(inputs)
    objectness, cls = presence.max(dim=1, keepdim=True)
    cls = torch.where(objectness[:, 0] >= OBJECT_CELL, cls[:, 0], torch.full_like(cls[:, 0], -1))
    loss = F.binary_cross_entropy_with_logits(obj_logits, objectness, weight=1.0 + (PRESENCE_POS_WEIGHT - 1.0) * objectness)
    if bool((cls >= 0).any()):
        loss = loss + F.cross_entropy(cls_logits, cls, ignore_index=-1)
    return loss + F.binary_cross_entropy_with_logits(onset_logits, onset, weight=1.0 + (ONSET_POS_WEIGHT - 1.0) * onset)
