"""Small policies and clips shared by the policy, sampling and pretrain tests (no tests here)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from common.types import Clip
from policies.config import PolicyConfig, TextEncoderConfig

SR = 16000


def tiny_cfg(**kw) -> PolicyConfig:
    """The tiny preset's policy sizes (1 s, 50 latent frames of 32 channels)."""
    base = dict(duration_s=1.0, width=64, depth=2, heads=2, latent_channels=32, patch=320,
                video_size=16, text_encoder=TextEncoderConfig(max_tokens_per_module=8, vocab_size=64))
    base.update(kw)
    return PolicyConfig(**base)


def randomize(policy: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every zero-initialised weight random values, so outputs depend on all parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (p for p in policy.parameters() if p.requires_grad):  # frozen encoders stay as loaded
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return policy


def delayed_stereo(n: int, delay: int, seed: int = 0, f0: float = 220.0) -> np.ndarray:
    """A harmonic tone plus a low noise band under a Hann envelope; the right ear lags the left by
    `delay` samples (positive: source on the left, the sign of rewards.dsp.gcc_phat_itd)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + 64) / SR
    mono = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in range(1, 6))
    spec = np.fft.rfft(rng.standard_normal(n + 64))
    spec[np.fft.rfftfreq(n + 64, 1 / SR) > 1200] = 0
    mono = mono + 3 * np.fft.irfft(spec, n + 64)
    mono = 0.2 * mono / np.abs(mono).max() * np.hanning(n + 64)  # silent edges: slicing = a pure delay
    left = mono[32 : 32 + n]
    right = mono[32 - delay : 32 - delay + n]
    return np.stack([left, right]).astype(np.float32)


def make_clip(i: int, duration_s: float = 1.0, fps: float = 12.5, size: int = 32, delay: int = 0) -> Clip:
    """A clip whose audio class (pitch) and delay side are visible: a bright square on the left or right."""
    n = int(duration_s * SR)
    f0 = (220.0, 440.0)[i % 2]
    frames = np.zeros((int(round(duration_s * fps)), size, size, 3), dtype=np.uint8)
    x0 = 2 if delay >= 0 else size // 2
    frames[:, 8:16, x0 : x0 + 8, i % 2] = 255
    cot = {"semantic": ("a low hum", "a high whistle")[i % 2], "temporal": "constant from start to end",
           "aesthetic": "clean", "spatial": "on the left" if delay >= 0 else "on the right"}
    return Clip(f"clip{i}", "train", frames, fps, delayed_stereo(n, delay, seed=i, f0=f0), SR, cot)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test (the test machine is shared; oversubscribed pools crawl)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def save_without_field(policy, cfg: PolicyConfig, out: str, field: str) -> None:
    """Save a checkpoint whose policy.json lacks `field`, as written before that field existed."""
    import json
    import os

    from policies.checkpoint import save_policy

    save_policy(policy, cfg, out)
    path = os.path.join(out, "policy.json")
    with open(path) as f:
        saved = json.load(f)
    del saved[field]
    with open(path, "w") as f:
        json.dump(saved, f)
