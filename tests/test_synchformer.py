"""Synchformer in PrismRL: checkpoint layout, strict loading, preprocessing, offsets, timing backend.

The 237M-parameter model is built and saved once per module; the one test that runs the video
encoder on a full 4.8 s clip (14 segments at 224 px) runs in float32 (bfloat16 is 3x slower on
CPUs without bf16 instructions).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from common.types import Clip
from rewards.base import TeacherError, build_teacher
from rewards.formulas import synchformer_offset_grid, timing_reward
from rewards.models.synchformer import (
    MIN_DURATION_S,
    CheckpointError,
    Synchformer,
    audio_segments,
    load_synchformer,
    num_segments,
    predicted_offsets,
    segments_needed,
    video_segments,
    window_starts,
)
from rewards.models.synchformer.audio_preprocess import AST_MEAN, AST_STD, log_mel_segments, mel_filterbank
from rewards.models.synchformer.video_preprocess import resample_frame_indices

LAYOUT = Path("/work/shared/checkpoint-layouts/synchformer_state_dict.layout.json")


@pytest.fixture(scope="module")
def model_and_path(tmp_path_factory) -> tuple[Synchformer, Path]:
    """One random-weight Synchformer, saved as the release is: a flat state_dict .pth."""
    torch.manual_seed(0)
    model = Synchformer().eval()
    path = tmp_path_factory.mktemp("sync") / "synchformer_state_dict.pth"
    torch.save(model.state_dict(), path)
    yield model, path
    path.unlink()


def synth_clip(clip_id: str, seconds: float = 4.8, fps: float = 25.0, seed: int = 0) -> Clip:
    """A SynthScenes-like clip: a bright square moving over a dark 64 px frame, with stereo 16 kHz audio."""
    rng = np.random.default_rng(seed)
    t = int(round(seconds * fps))
    frames = np.full((t, 64, 64, 3), 20, dtype=np.uint8)
    for k in range(t):
        x = int(8 + 40 * k / max(1, t - 1))
        frames[k, 24:40, x : x + 16] = (230, 200, 40)
    n = int(seconds * 16000)
    audio = (0.1 * rng.standard_normal((2, n))).astype(np.float32)
    return Clip(clip_id, "test", frames, fps, audio, 16000, cot={})


def test_state_dict_matches_release_layout(model_and_path):
    model, _ = model_and_path
    layout = json.loads(LAYOUT.read_text())
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]
    theirs = [(t["name"], t["shape"], t["dtype"]) for t in layout["tensors"]]
    assert ours == theirs  # names, shapes, dtypes and order
    assert sum(v.numel() for v in model.state_dict().values()) == layout["total_params"] == 237_460_245


def test_loader_reads_release_format_strictly(model_and_path):
    model, path = model_and_path
    loaded = load_synchformer(str(path))
    assert not loaded.training
    ref = model.state_dict()
    got = loaded.state_dict()
    assert list(got) == list(ref)
    assert all(torch.equal(got[k], ref[k]) for k in ref)


def test_loader_names_missing_file_and_mismatched_keys(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth: checkpoint file not found"):
        load_synchformer(str(tmp_path / "nope.pth"))
    bad = tmp_path / "wrong.pth"
    torch.save({"transformer.off_head.weight": torch.zeros(3, 768), "extra.weight": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError) as info:
        load_synchformer(str(bad))
    msg = str(info.value)
    assert "wrong.pth" in msg and "missing keys: vfeat_extractor.cls_token" in msg
    assert "unexpected keys: extra.weight" in msg
    assert "transformer.off_head.weight: file (3, 768) vs model (21, 768)" in msg


def test_segment_arithmetic():
    assert MIN_DURATION_S == pytest.approx(4.8)
    assert num_segments(120) == 14 and num_segments(119) == 13 and num_segments(200) == 24
    assert window_starts(14, "first_and_last") == [0]
    assert window_starts(24, "first") == [0]
    assert window_starts(24, "first_and_last") == [0, 10]
    assert segments_needed([0, 10]) == list(range(24))
    with pytest.raises(ValueError, match="at least 14 segments"):
        window_starts(13, "first")


def test_video_preprocessing_resamples_crops_and_segments():
    assert list(resample_frame_indices(10, 50.0)) == [0, 2, 4, 6, 8]
    assert list(resample_frame_indices(4, 12.5)) == [0, 0, 1, 1, 2, 2, 3, 3]
    clip = synth_clip("v", seconds=4.8, fps=30.0)  # 144 frames at 30 fps -> 120 at 25 fps
    segs = video_segments(clip.frames, clip.fps, [0, 1, 13])
    assert segs.shape == (3, 3, 16, 224, 224) and segs.dtype == torch.float32
    assert segs.min() >= -1.0 and segs.max() <= 1.0
    # The dark background maps to 20/255 scaled to [-1, 1]; segments overlap by 8 frames.
    assert float(segs[0, :, 0, 2, 2].mean()) == pytest.approx(20 / 255 * 2 - 1, abs=1e-6)
    assert torch.equal(segs[0, :, 8:], segs[1, :, :8])
    # A wide frame is centre-cropped after resizing its short side to 224.
    wide = np.zeros((16, 64, 128, 3), dtype=np.uint8)
    wide[:, :, :24] = 255  # white strip on the left: falls outside the centre crop
    assert float(video_segments(wide, 25.0, [0]).max()) == pytest.approx(-1.0)


def reference_log_mel(wave: np.ndarray) -> np.ndarray:
    """torchaudio MelSpectrogram(16000, n_fft=1024, win_length=400, hop=160, n_mels=128) by the textbook, in numpy."""
    n_fft, win, hop = 1024, 400, 160
    window = np.zeros(n_fft)
    window[(n_fft - win) // 2 : (n_fft - win) // 2 + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    padded = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
    frames = np.stack([padded[i : i + n_fft] for i in range(0, padded.size - n_fft + 1, hop)])
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # [T, 513]
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    freqs_mel = mel(np.linspace(0, 8000, 513))
    centres = np.linspace(0.0, mel(8000.0), 130)
    hz = 700.0 * (10 ** (centres / 2595.0) - 1)
    fb = np.zeros((513, 128))
    for m in range(128):
        f = 700.0 * (10 ** (freqs_mel / 2595.0) - 1)
        rise = (f - hz[m]) / (hz[m + 1] - hz[m])
        fall = (hz[m + 2] - f) / (hz[m + 2] - hz[m + 1])
        fb[:, m] = np.clip(np.minimum(rise, fall), 0.0, None)
    return (np.log(power @ fb + 1e-6).T - AST_MEAN) / (2 * AST_STD)


def test_audio_preprocessing_matches_torchaudio_recipe():
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(10240)).astype(np.float32)
    ours = log_mel_segments(torch.from_numpy(wave)[None])[0].numpy()
    ref = reference_log_mel(wave)
    assert mel_filterbank().shape == (513, 128)
    assert ours.shape == (128, 66) and ref.shape == (128, 65)
    assert np.allclose(ours[:, :65], ref, atol=1e-4)
    assert np.allclose(ours[:, 65], (0.0 - AST_MEAN) / (2 * AST_STD))  # zero-padded 66th frame
    # 4.8 s of audio -> 14 segments; a short waveform is zero-padded (silence = log(1e-6)).
    segs = audio_segments(rng.standard_normal(76800).astype(np.float32), list(range(14)))
    assert segs.shape == (14, 128, 66)
    silent = audio_segments(np.zeros(100, dtype=np.float32), [13])
    assert np.allclose(silent[0, :, :65], (np.log(1e-6) - AST_MEAN) / (2 * AST_STD), atol=1e-5)


def test_offset_prediction_and_reward_mapping():
    grid = synchformer_offset_grid()
    logits = np.full((3, 21), -5.0)
    logits[0, 10] = logits[1, 0] = logits[2, 13] = 5.0
    offsets, probs = predicted_offsets(logits)
    assert list(offsets) == pytest.approx([0.0, -2.0, 0.6])
    assert np.all(probs > 0.99)
    assert list(timing_reward(offsets)) == pytest.approx([0.5, 0.0, 0.35])
    assert grid[0] == -2.0 and grid[-1] == 2.0 and len(grid) == 21


def test_model_audio_path_shapes(model_and_path):
    model, _ = model_and_path
    mels = audio_segments(np.zeros(76800, dtype=np.float32), list(range(14)))
    with torch.inference_mode():
        feats = model.audio_features(mels)
        logits = model.offset_logits(torch.zeros(1, 14, 8, 768), feats[None])
    assert feats.shape == (14, 6, 768) and logits.shape == (1, 21)
    with pytest.raises(ValueError, match="exactly 14 segments"):
        model.offset_logits(torch.zeros(1, 13, 8, 768), feats[None, :13])


def test_backend_rejects_bad_options_and_short_clips(model_and_path):
    _, path = model_and_path
    with pytest.raises(TeacherError, match="checkpoint: required"):
        build_teacher("timing", "synchformer", {})
    with pytest.raises(TeacherError, match="timing/synchformer.*absent.pth: checkpoint file not found"):
        build_teacher("timing", "synchformer", {"checkpoint": "/nonexistent/absent.pth"})
    teacher = build_teacher("timing", "synchformer", {"checkpoint": str(path)})
    short = synth_clip("short-1", seconds=3.0)
    with pytest.raises(TeacherError, match="clip short-1: video is 3.00 s.*at least 4.8 s"):
        teacher.grade([short.audio], 16000, [short])


@pytest.mark.slow
def test_backend_grades_a_batch_and_caches_video(model_and_path):
    _, path = model_and_path
    # float32: on a CPU without bf16 instructions a bfloat16 grade took 132 s of this test against 41 s;
    # the bfloat16 autocast itself is checked by the precision-context test below.
    teacher = build_teacher("timing", "synchformer", {"checkpoint": str(path), "precision": "float32"})
    clip = synth_clip("scene-7", seconds=4.8)
    # Two members of one GRPO group: same clip, different generated audio (44.1 kHz stereo).
    rng = np.random.default_rng(1)
    gen = [(0.1 * rng.standard_normal((2, int(4.8 * 44100)))).astype(np.float32) for _ in range(2)]
    grades = teacher.grade(gen, 44100, [clip, clip])
    assert len(grades) == 2 and teacher.video_encodes == 1  # the video went through the encoder once
    for g in grades:
        off = g.diagnostics["offset_s"]
        assert np.isclose(synchformer_offset_grid(), off).any()
        assert g.reward == pytest.approx((2 - abs(off)) / 4)
        assert 0.0 <= g.reward <= 0.5 and 0.0 < g.diagnostics["offset_prob"] <= 1.0
    again = teacher.grade(gen, 44100, [clip, clip])
    assert teacher.video_encodes == 1  # cached by clip_id
    assert [g.diagnostics for g in again] == [g.diagnostics for g in grades]


def test_precision_context_is_a_no_op_in_float32_autocasts_otherwise_and_names_a_bad_value():
    import torch

    from rewards.models.precision import autocast_context

    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast_context("float32", "cpu"):
        assert (a @ b).dtype == torch.float32
    with autocast_context("bfloat16", "cpu"):
        assert (a @ b).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="precision 'fp8' is not one of"):
        autocast_context("fp8", "cpu")
