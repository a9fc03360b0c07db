"""SynthScenes: determinism, physics of the stereo image and onsets, visible impacts, CoT, CLI."""
import json
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from common.soundclasses import SOUND_CLASSES, class_names_in_text
from orchestrator.data.cli import main as data_main
from orchestrator.data.config import SynthConfig
from orchestrator.data.synth import write_synthscenes
from orchestrator.data.synth.audio import render_scene_audio, right_lag_s
from orchestrator.data.synth.scene import Scene, SceneObject, SoundEvent, azimuth_from_x
from orchestrator.data.synth.writer import assign_splits, check_synth_config
from rewards.dsp import gcc_phat_itd, onset_envelope

TINY = dict(n=10, min_duration_s=1.0, max_duration_s=1.0, fps=12.5, size=32, sample_rate=16000)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Seed 0 written twice, seed 1 once."""
    root = tmp_path_factory.mktemp("synth")
    out = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out[name] = Path(write_synthscenes(str(root / name), SynthConfig(seed=seed, **TINY), progress=False))
    return out


def _media(manifest: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((manifest.parent / "media").iterdir())}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(sets):
    assert sets["a"].read_bytes() == sets["b"].read_bytes()
    assert _media(sets["a"]) == _media(sets["b"])
    assert sets["a"].read_bytes() != sets["c"].read_bytes()
    assert len(_media(sets["a"])) == 2 * TINY["n"]


def test_manifest_rows_are_consistent(sets):
    rows = pq.read_table(sets["a"]).to_pylist()
    assert [r["split"] for r in rows].count("val") == 1 and [r["split"] for r in rows].count("test") == 1
    for r in rows:
        meta = json.loads(r["meta_json"])
        assert 1 <= len(r["classes"]) <= 3 and 1 <= r["num_events"] <= 4
        assert len(r["event_times"]) == len(r["event_classes"]) == r["num_events"]
        assert r["event_times"] == sorted(r["event_times"]) and set(r["event_classes"]) == set(r["classes"])
        assert set(meta["azimuth"]) == set(r["classes"]) and 0 <= meta["distractor_count"] <= 2
        assert all(-60 <= a <= 60 for track in meta["azimuth"].values() for a in track)
        assert not set(meta["distractor_classes"]) & set(r["classes"])
        # the semantic module names exactly the sounding classes, in order of first event
        assert class_names_in_text(r["cot_semantic"]) == r["classes"]
        for t in r["event_times"]:
            assert f"{t:.2f} s" in r["cot_temporal"]
        assert class_names_in_text(r["cot_spatial"]) == r["classes"]
        info = sf.info(str(sets["a"].parent / r["audio_path"]))
        assert info.channels == 2 and info.samplerate == r["sample_rate"]
        assert info.frames == round(r["duration_s"] * r["sample_rate"])


def _static_scene(sound_class: str, x: float, frames: list[int], fps: float = 25.0, n_frames: int = 50) -> Scene:
    obj = SceneObject(sound_class, True, 0, np.full(n_frames, x))
    events = [SoundEvent(0, f, f / fps) for f in frames]
    return Scene(n_frames / fps, fps, n_frames, [obj], events, (0, 0, 0), -50.0, 0.0, [sound_class] * len(frames))


@pytest.mark.parametrize("x", [0.12, 0.3, 0.5, 0.66, 0.88])
def test_gcc_phat_itd_matches_azimuth(x):
    sr = 16000
    scene = _static_scene("rain", x, [5])
    audio = render_scene_audio(scene, sr, np.random.default_rng(3))
    expected = right_lag_s(float(azimuth_from_x(x)))
    measured = gcc_phat_itd(audio[0], audio[1], sr, max_delay_s=0.001)
    assert abs(measured - expected) <= 0.07e-3
    rms_left, rms_right = np.sqrt((audio**2).mean(axis=1))
    if x < 0.45:
        assert rms_left > rms_right  # near ear louder
    elif x > 0.55:
        assert rms_right > rms_left


@pytest.mark.parametrize("sound_class", SOUND_CLASSES)
def test_audio_onsets_match_event_times(sound_class):
    sr, frames = 16000, [3, 18, 33]
    audio = render_scene_audio(_static_scene(sound_class, 0.3, frames), sr, np.random.default_rng(7))
    env, frame_rate = onset_envelope(audio, sr, hop=16, n_fft=256)
    for f in frames:
        t = f / 25.0
        lo, hi = int((t - 0.05) * frame_rate), int((t + 0.05) * frame_rate)
        peak = (lo + int(np.argmax(env[lo:hi]))) / frame_rate
        assert abs(peak - t) <= 0.010, f"{sound_class} onset at {t:.3f}s measured at {peak:.3f}s"


def test_generated_audio_is_background_noise_until_the_first_event(sets):
    for r in pq.read_table(sets["a"]).to_pylist():
        audio, sr = sf.read(str(sets["a"].parent / r["audio_path"]), dtype="float32")
        noise_rms = 10 ** (json.loads(r["meta_json"])["noise_db"] / 20)
        start = int(round(r["event_times"][0] * sr))
        before = np.sqrt((audio[max(0, start - sr // 20) : start] ** 2).mean())
        after = np.sqrt((audio[start : start + sr // 100] ** 2).mean())
        assert before < 2 * noise_rms + 1e-4 and after > 10 * before, r["clip_id"]


def test_flash_frames_line_up_with_events(sets):
    for r in pq.read_table(sets["a"]).to_pylist():
        with av.open(str(sets["a"].parent / r["video_path"])) as c:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
        assert frames.shape == (r["num_frames"], r["height"], r["width"], 3)
        brightness = frames.astype(np.float64).mean(axis=(1, 2, 3))
        jumps = np.flatnonzero(np.diff(brightness) > 1.0) + 1
        expected = [int(round(t * r["fps"])) for t in r["event_times"]]
        assert list(jumps) == expected, r["clip_id"]


def test_splits_are_deterministic_and_sized_by_fraction():
    splits = assign_splits(100, 5, 0.1, 0.2)
    assert splits == assign_splits(100, 5, 0.1, 0.2)
    assert (splits.count("train"), splits.count("val"), splits.count("test")) == (70, 10, 20)
    assert assign_splits(12, 1, 1.0, 0.0) == ["val"] * 12  # a validation-only set


def test_bad_synth_config_names_the_key():
    with pytest.raises(ValueError, match="data.synth.size"):
        check_synth_config(SynthConfig(size=33))
    with pytest.raises(ValueError, match="data.synth.max_duration_s"):
        check_synth_config(SynthConfig(min_duration_s=2, max_duration_s=9))
    with pytest.raises(ValueError, match=r"data.val_synth.test_fraction = 0.5 plus val_fraction must be <= 1"):
        check_synth_config(SynthConfig(val_fraction=0.6, test_fraction=0.5), "data.val_synth")
    check_synth_config(SynthConfig(val_fraction=1.0, test_fraction=0.0))


def test_cli_synth_then_summary(tmp_path, capsys):
    out = tmp_path / "set"
    rc = data_main(["synth", "tiny", f"run_dir={out}", "n=3", "seed=4", "audio_format=flac", "duration_s=1.0"])
    assert rc == 0 and (out / "manifest.parquet").exists()
    assert len(list((out / "media").glob("*.flac"))) == 3
    capsys.readouterr()
    assert data_main(["summary", "tiny", f"data.manifest={out / 'manifest.parquet'}"]) == 0
    text = capsys.readouterr().out
    assert "clips: 3" in text and "per split: train=3" in text
    assert data_main(["summary", "tiny", f"data.manifest={tmp_path / 'nope.parquet'}"]) == 2
