"""A text summary of video frames for text-only language models (the `mllm` planner's prompt).

One line per sampled frame: its time, and each bright blob found by a coarse colour segmentation:
horizontal position (left / centre / right with x as a fraction of the width), its mean colour as
a name, and `FLASH` when it became much brighter since the previous frame (an impact). Pure numpy;
the same frames always give the same text.
"""
from __future__ import annotations

import numpy as np

_COLOURS = {
    "red": (210, 50, 40), "orange": (240, 110, 20), "yellow": (235, 190, 40), "green": (80, 210, 80),
    "grey": (150, 170, 150), "cyan": (90, 200, 235), "blue": (60, 110, 235), "purple": (200, 60, 200),
    "brown": (150, 95, 45), "pink": (245, 160, 170), "white": (245, 245, 245),
}
"""Colour names and their RGB centres (nearest wins)."""


def colour_name(rgb: np.ndarray) -> str:
    """Nearest named colour of an RGB triple."""
    names = list(_COLOURS)
    centres = np.array([_COLOURS[n] for n in names], dtype=np.float64)
    return names[int(np.argmin(((centres - np.asarray(rgb, dtype=np.float64)) ** 2).sum(axis=1)))]


def _side(x: float) -> str:
    return "left" if x < 0.375 else ("right" if x > 0.625 else "centre")


def describe_frame(frame: np.ndarray, previous: np.ndarray | None, lanes: int = 4) -> list[str]:
    """Blobs of one frame: for each horizontal band (lane) with pixels far from the background colour,
    'a <colour> object on the <side> (x=0.31)[, FLASH]'."""
    f = frame.astype(np.float64)
    background = np.median(f.reshape(-1, 3), axis=0)
    fg = np.abs(f - background).sum(axis=-1) > 60
    h = frame.shape[0]
    out = []
    for k in range(lanes):
        band = fg[k * h // lanes : (k + 1) * h // lanes]
        if band.sum() < 3:
            continue
        ys, xs = np.nonzero(band)
        ys = ys + k * h // lanes
        x = float(xs.mean() + 0.5) / frame.shape[1]
        colour = f[ys, xs].mean(axis=0)
        flash = previous is not None and (f[ys, xs].mean() - previous.astype(np.float64)[ys, xs].mean()) > 40
        out.append(f"a {colour_name(colour)} object on the {_side(x)} (x={x:.2f})" + (", FLASH" if flash else ""))
    return out


def summarize_frames(frames: np.ndarray, fps: float, max_frames: int = 16) -> str:
    """Lines 't=0.40s: a yellow object on the left (x=0.21), FLASH; ...' for up to max_frames frames
    evenly spaced over the clip (frames that flash are always kept first)."""
    frames = np.asarray(frames)
    n = frames.shape[0]
    blobs = [describe_frame(frames[i], frames[i - 1] if i else None) for i in range(n)]
    flashes = [i for i in range(n) if any(b.endswith("FLASH") for b in blobs[i])]
    even = list(np.linspace(0, n - 1, num=min(max_frames, n)).round().astype(int))
    keep = sorted(set(flashes[:max_frames]) | set(even[: max(0, max_frames - len(flashes))]))
    return "\n".join(f"t={i / fps:.2f}s: " + ("; ".join(blobs[i]) if blobs[i] else "nothing visible") for i in keep)
