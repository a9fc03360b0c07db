"""StereoCRW in PrismRL: checkpoint layout, strict loading, the ITD read-out, the spatial backend."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.types import Clip
from rewards.base import build_teacher
from rewards.models.stereocrw import (
    CheckpointError,
    CrwSettings,
    StereoCRW,
    delay_matrix,
    estimate_itd,
    load_stereocrw,
    max_delay_offset,
    prepare_stereo,
    soft_argmax_itd,
)

LAYOUT = Path("/work/shared/checkpoint-layouts/stereocrw_binaural.layout.json")
SR = 16000
# Small settings for speed: the checkpoint's own training patch (1024 samples, hop 8).
SMALL = {"patch_s": 0.064, "patch_num": 32, "patch_stride": 2, "gcc_window": 512, "gcc_windows": 8}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    """A random-weight StereoCRW saved as the release is: {'state_dict': {'module.' + k: v}, 'epoch': 0}."""
    torch.manual_seed(0)
    model = StereoCRW()
    # Non-trivial BatchNorm statistics, so a load that skipped buffers would show.
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buf.uniform_(0.5, 2.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("crw") / "FreeMusic-StereoCRW-1024.pth.tar"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 0}, path)
    return path, state


def delayed_stereo(n: int, delay: int, seed: int = 0) -> np.ndarray:
    """Broadband noise on the left; the right channel lags by `delay` samples (source on the left)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n + abs(delay)).astype(np.float32) * 0.3
    left = x[abs(delay) : abs(delay) + n] if delay >= 0 else x[:n]
    right = x[:n] if delay >= 0 else x[abs(delay) : abs(delay) + n]
    return np.stack([left, right])


def make_clip(clip_id: str, audio: np.ndarray, sample_rate: int = SR) -> Clip:
    frames = np.zeros((int(25 * audio.shape[1] / sample_rate), 64, 64, 3), dtype=np.uint8)
    return Clip(clip_id, "test", frames, 25.0, audio, sample_rate, cot={})


def test_state_dict_matches_release_layout():
    layout = json.loads(LAYOUT.read_text())
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in StereoCRW().state_dict().items()]
    theirs = [(t["name"], t["shape"], t["dtype"]) for t in layout["tensors"]]
    assert ours == theirs  # names, shapes, dtypes and order
    assert sum(p.numel() for p in StereoCRW().parameters()) == layout["total_params"]


def test_loader_reads_release_format_strictly(checkpoint):
    path, state = checkpoint
    model = load_stereocrw(str(path))
    assert not model.training
    loaded = model.state_dict()
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_loader_fails_loudly_on_missing_or_mismatched_file(checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.pth.tar: checkpoint file not found"):
        load_stereocrw(str(tmp_path / "nowhere.pth.tar"))
    _, state = checkpoint
    broken = {"module." + k: v for k, v in state.items() if k != "net.fc.bias"}
    broken["module.net.fc2.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth.tar"
    torch.save({"state_dict": broken, "epoch": 0}, bad)
    with pytest.raises(CheckpointError, match=r"bad\.pth\.tar.*missing keys: net\.fc\.bias.*unexpected keys: net\.fc2\.weight"):
        load_stereocrw(str(bad))


def test_soft_argmax_reads_the_delay_of_the_best_match_within_max_delay():
    p, offset = 40, 5
    delays = delay_matrix(p, 1, SR)
    aff = torch.zeros(1, p, p)
    i = torch.arange(p)
    aff[0, i, (i + 3).clamp(max=p - 1)] = 100.0  # right patch i+3 matches left patch i: right lags 3 samples
    far = i[i >= 12]
    aff[0, far, far - 12] = 1000.0  # a stronger match outside +-offset must be ignored
    itd = soft_argmax_itd(aff, delays, offset)
    assert itd.shape == (1, p - 2 * offset)
    assert torch.allclose(itd, torch.full_like(itd, 3 / SR), atol=1e-7)
    assert max_delay_offset(1.5e-3, SR, 1) == 24  # PrismAudio's band: +-24 samples


def test_preprocessing_shapes_and_tiling():
    short = np.stack([np.arange(10, dtype=np.float32), -np.arange(10, dtype=np.float32)])
    tiled = prepare_stereo(short, 25)
    assert tiled.shape == (2, 25) and tiled[0, 10] == 0.0 and tiled[1, 24] == -4.0
    settings = CrwSettings(**{k: SMALL[k] for k in ("patch_s", "patch_num", "patch_stride")})
    assert settings.span_samples == 1024 + 2 * 31
    model = StereoCRW(settings.patch_samples).eval()
    spec = model.trans(torch.zeros(3, settings.patch_samples))
    assert spec.shape == (3, 2, 128, 128)  # re/im, 128 frames (hop 8), 128 bins
    itd, per_patch = estimate_itd(model, torch.from_numpy(delayed_stereo(settings.span_samples, 4))[None], settings)
    assert itd.shape == (1,) and per_patch.shape == (1, 32 - 2 * 12)  # +-1.5 ms = +-12 steps of 2 samples
    assert abs(float(itd)) <= 1.5e-3


def test_backend_grades_a_batch_against_ground_truth(checkpoint):
    path, _ = checkpoint
    teacher = build_teacher("spatial", "stereocrw", {"checkpoint": str(path), **SMALL})
    n = 4000
    gt_a = delayed_stereo(n, 8, seed=1)  # right lags 0.5 ms
    gt_b = delayed_stereo(n, -8, seed=2)  # left lags 0.5 ms
    clips = [make_clip("a", gt_a), make_clip("b", gt_b)]
    # Clip a: generated audio is its ground truth (at 32 kHz); clip b: the stereo image is mirrored.
    gen_a = np.stack([np.repeat(ch, 2) for ch in gt_a])
    gen_b = gt_b[::-1].copy()
    grades = teacher.grade([gen_a, np.stack([np.repeat(ch, 2) for ch in gen_b])], 2 * SR, clips)
    a, b = grades
    assert set(a.diagnostics) == {"itd_crw_gen_ms", "itd_crw_gt_ms", "itd_gcc_gen_ms", "itd_gcc_gt_ms"}
    assert a.diagnostics["itd_gcc_gt_ms"] == pytest.approx(0.5, abs=0.07)
    assert b.diagnostics["itd_gcc_gt_ms"] == pytest.approx(-0.5, abs=0.07)
    assert b.diagnostics["itd_gcc_gen_ms"] == pytest.approx(0.5, abs=0.07)
    for g in grades:
        d_crw = g.diagnostics["itd_crw_gen_ms"] - g.diagnostics["itd_crw_gt_ms"]
        d_gcc = g.diagnostics["itd_gcc_gen_ms"] - g.diagnostics["itd_gcc_gt_ms"]
        assert g.reward == pytest.approx(-(1.25 * d_crw**2 + 2.5 * d_gcc**2), rel=1e-6)
        assert teacher.reward_range[0] <= g.reward <= 0.0
    assert abs(a.reward) < 0.05 < abs(b.reward)  # matching image ~0, mirrored image clearly penalized
    # Ground-truth ITDs are cached per clip: a second grade of the same clip gives the same numbers.
    again = teacher.grade([gen_a], 2 * SR, clips[:1])[0]
    assert again.diagnostics == a.diagnostics


def test_backend_requires_an_existing_checkpoint(tmp_path):
    from rewards.base import TeacherError

    with pytest.raises(TeacherError, match="checkpoint: required"):
        build_teacher("spatial", "stereocrw", {})
    with pytest.raises(TeacherError, match="spatial/stereocrw.*missing.pth.tar: checkpoint file not found"):
        build_teacher("spatial", "stereocrw", {"checkpoint": str(tmp_path / "missing.pth.tar")})
