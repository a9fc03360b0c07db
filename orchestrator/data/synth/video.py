"""Silent video of a scene: coloured shapes on a plain background, flashing and bouncing at onsets.

Look: each sound class has its own colour and shape (APPEARANCE). Objects sit in separate
horizontal lanes. A sounding object's onset frame and the frame after it show the impact: the
object turns almost white, grows and jumps up. Distractors may move but never flash, so a
flash always means a sound. Encoding: PyAV, h264 (libx264 ultrafast, constant qp; mpeg4 where
missing), yuv420p converted here, bit-exact mp4 flags, one thread: same frames, same bytes.
"""
from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np

from orchestrator.data.synth.scene import Scene

APPEARANCE: dict[str, tuple[tuple[int, int, int], str]] = {
    "bell": ((235, 190, 40), "circle"),
    "flute": ((90, 200, 235), "diamond"),
    "buzz": ((200, 60, 200), "square"),
    "rain": ((60, 110, 235), "triangle"),
    "wind": ((150, 170, 150), "ring"),
    "drum": ((210, 50, 40), "circle"),
    "knock": ((150, 95, 45), "square"),
    "clap": ((245, 160, 170), "diamond"),
    "siren": ((240, 110, 20), "ring"),
    "chirp": ((80, 210, 80), "triangle"),
}
"""Colour (RGB) and shape of each sound class's object."""

FLASH_FRAMES = 2
"""Frames an impact lasts (onset frame and the next)."""
FLASH_WHITE = 0.8
"""Share of white mixed into the object's colour while it flashes."""
RADIUS_FRACTION = 0.09
"""Object radius as a fraction of the frame size."""


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of a shape of radius r centred at dx = dy = 0."""
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.2 * r
    if shape == "triangle":
        return (dy >= -r) & (dy <= r) & (np.abs(dx) <= 0.5 * (dy + r) + 0.5)
    if shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.5 * r) ** 2)
    raise ValueError(f"unknown shape '{shape}'")


def render_scene_frames(scene: Scene, size: int) -> np.ndarray:
    """Frames uint8 [num_frames, size, size, 3] (RGB) of a scene."""
    frames = np.empty((scene.num_frames, size, size, 3), dtype=np.uint8)
    frames[:] = np.array(scene.background_rgb, dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    radius = max(RADIUS_FRACTION * size, 2.0)
    lanes = max(len(scene.objects), 2)
    impact_age = np.full((len(scene.objects), scene.num_frames), -1)
    for e in scene.events:
        for k in range(FLASH_FRAMES):
            if e.frame + k < scene.num_frames:
                impact_age[e.object_index, e.frame + k] = k
    for t in range(scene.num_frames):
        for i, obj in enumerate(scene.objects):
            colour, shape = APPEARANCE[obj.sound_class]
            rgb = np.array(colour, dtype=np.float64)
            r, cy = radius, (obj.lane + 0.5) * size / lanes
            age = impact_age[i, t]
            if age >= 0:  # impact: bright, bigger, bounced up
                rgb = (1 - FLASH_WHITE) * rgb + FLASH_WHITE * 255.0
                r = radius * (1.3 if age == 0 else 1.15)
                cy -= radius * (0.8 if age == 0 else 0.4)
            mask = _shape_mask(shape, xx - obj.x_track[t] * size, yy - cy, r)
            frames[t][mask] = np.round(rgb).astype(np.uint8)
    return frames


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range yuv420p of one uint8 RGB frame [H, W, 3] (H, W even), laid out as PyAV
    expects: the Y plane, then U, then V, flattened into shape [H * 3 // 2, W]."""
    h, w, _ = rgb.shape
    r, g, b = (rgb[..., k].astype(np.float64) / 255.0 for k in range(3))
    y = 16.0 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128.0 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128.0 + 112.0 * r - 93.786 * g - 18.214 * b

    def half(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    planes = [y.ravel(), half(u).ravel(), half(v).ravel()]
    return np.clip(np.round(np.concatenate(planes)), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def _video_codec() -> str:
    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except Exception:  # noqa: BLE001 - an FFmpeg build without x264
        return "mpeg4"


def encode_mp4(frames: np.ndarray, fps: float) -> bytes:
    """mp4 bytes of uint8 RGB frames [T, H, W, 3] (H, W even); deterministic for equal input."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"encode_mp4: expected uint8 frames [T, H, W, 3], got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"encode_mp4: yuv420p needs even width and height, got {w}x{h}")
    rate = Fraction(fps).limit_denominator(1000)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        codec = _video_codec()
        # ultrafast + constant qp: no lookahead, mb-tree, b-frames or weighted prediction. With
        # preset veryfast/crf, libx264 gave different bytes for ~1% of clips on a rerun (measured).
        options = {"qp": "12", "preset": "ultrafast", "threads": "1"} if codec == "libx264" else {"qscale": "2"}
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        for i in range(t):
            # Convert to yuv420p here, not in swscale: swscale's conversion changed after many
            # calls in one process (measured), which broke byte-identical output.
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(frames[i]), format="yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()
