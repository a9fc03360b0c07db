"""The four offline signal teachers graded on SynthScenes-like audio built here with render_event."""
import numpy as np
import pytest

from common.soundclasses import SOUND_CLASSES, render_event
from common.types import Clip
from rewards.backends.aesthetic_signal import AestheticSignalTeacher
from rewards.backends.semantic_signal import SemanticSignalOptions, SemanticSignalTeacher
from rewards.backends.spatial_gcc_phat import SpatialGccPhatOptions, SpatialGccPhatTeacher
from rewards.backends.timing_onset import TimingOnsetTeacher
from rewards.base import TeacherError, build_teacher

SR = 16000


def _clip(clip_id="c0", frames=None, fps=25.0, audio=None, sample_rate=SR, semantic=""):
    frames = np.zeros((2, 8, 8, 3), np.uint8) if frames is None else frames
    audio = np.zeros((2, 2 * SR), np.float32) if audio is None else audio
    cot = {"semantic": semantic, "temporal": "", "aesthetic": "", "spatial": ""}
    return Clip(clip_id, "train", frames, fps, audio, sample_rate, cot)


def _scene(events, rng, duration_s=2.0, noise=1e-3, sample_rate=SR):
    """Mono mix of (class, start time) events over a faint noise floor."""
    x = np.zeros(int(duration_s * sample_rate), np.float32)
    for name, t in events:
        ev = render_event(name, sample_rate, rng)
        start = int(round(t * sample_rate))
        n = min(ev.size, x.size - start)
        if n > 0:
            x[start : start + n] += ev[:n]
    return x + noise * rng.standard_normal(x.size).astype(np.float32)


@pytest.fixture(scope="module")
def semantic():
    return SemanticSignalTeacher()


def test_registered_backends_build_from_config_names():
    assert isinstance(build_teacher("semantic", "signal", {"temperature": 0.1}), SemanticSignalTeacher)
    assert isinstance(build_teacher("timing", "onset", {}), TimingOnsetTeacher)
    assert isinstance(build_teacher("aesthetic", "signal", {"w_dc": 0.0}), AestheticSignalTeacher)
    assert isinstance(build_teacher("spatial", "gcc_phat", {"w_gcc": 1.0}), SpatialGccPhatTeacher)
    with pytest.raises(TeacherError, match="interp_factor"):
        build_teacher("spatial", "gcc_phat", {"interp_factor": 4})


def test_semantic_matching_class_beats_mismatched_class(semantic):
    wins = total = 0
    for seed in range(2):
        for name in SOUND_CLASSES:
            audio = np.stack([_scene([(name, 0.3)], np.random.default_rng(seed))] * 2)
            clips = [_clip(semantic=f"A {other} sounds in the scene.") for other in SOUND_CLASSES]
            grades = semantic.grade([audio] * len(clips), SR, clips)
            rewards = dict(zip(SOUND_CLASSES, (g.reward for g in grades)))
            for other in SOUND_CLASSES:
                if other != name:
                    wins += rewards[name] > rewards[other]
                    total += 1
    assert wins / total >= 0.9, f"matching class graded higher in only {wins}/{total} pairs"


def test_semantic_multi_event_clip_rewards_naming_both_classes(semantic):
    rng = np.random.default_rng(7)
    audio = np.stack([_scene([("bell", 0.1), ("drum", 1.1)], rng)] * 2)
    both, one_wrong = semantic.grade(
        [audio, audio], SR, [_clip(semantic="A bell rings, then a drum."), _clip(semantic="A bell, then a siren.")]
    )
    assert both.diagnostics["segments"] == 2
    assert both.reward > 0.8 and one_wrong.reward < both.reward - 0.3


def test_semantic_text_option_and_errors(semantic):
    audio = np.stack([_scene([("bell", 0.3)], np.random.default_rng(0))] * 2)
    plan = _clip(clip_id="bad-cot", semantic="something happens")
    plan.cot["temporal"] = "a bell at 0.3 s"
    with pytest.raises(TeacherError, match="bad-cot"):
        semantic.grade([audio], SR, [plan])
    full = SemanticSignalTeacher(SemanticSignalOptions(text="full"))
    assert full.grade([audio], SR, [plan])[0].reward > 0.8
    assert semantic.grade([np.zeros((2, SR), np.float32)], SR, [_clip(semantic="a bell")])[0].reward == 0.0


def _av_clip(shift_s, name, fps=25.0, duration_s=4.5, times=(1.2, 1.9, 2.9)):
    frames = np.full((int(duration_s * fps), 16, 16, 3), 20, np.uint8)
    for t in times:
        i = int(np.ceil(t * fps))
        frames[i : i + 3] = 230  # a flash for each visual event
    rng = np.random.default_rng(0)
    audio = _scene([(name, t + shift_s) for t in times], rng, duration_s)
    return _clip(f"av{shift_s}{name}{fps}", frames, fps), np.stack([audio, audio])


@pytest.mark.parametrize("shift", [-1.0, -0.4, 0.0, 0.6, 1.2])
def test_timing_recovers_known_audio_visual_shift(shift):
    teacher = TimingOnsetTeacher()
    for name, fps in (("drum", 25.0), ("bell", 12.5)):
        clip, audio = _av_clip(shift, name, fps)
        grade = teacher.grade([audio], SR, [clip])[0]
        assert abs(grade.diagnostics["offset_s"] - shift) <= 0.2 + 1e-9, (name, fps, grade)
        assert grade.reward == pytest.approx((2 - abs(grade.diagnostics["offset_s"])) / 4)


def test_timing_silent_audio_is_lowest_and_visual_track_is_cached_per_clip():
    teacher = TimingOnsetTeacher()
    clip, audio = _av_clip(0.0, "clap")
    silent = teacher.grade([np.zeros_like(audio)], SR, [clip])[0]
    assert silent.reward == 0.0 and silent.diagnostics["no_events"] == 1.0
    first = teacher.grade([audio], SR, [clip])[0]
    clip.frames = np.zeros_like(clip.frames)  # same clip id: the cached visual track is used
    again = teacher.grade([audio], SR, [clip])[0]
    assert first.reward == again.reward == 0.5


def test_aesthetic_clipped_and_noisy_audio_graded_below_clean():
    teacher = AestheticSignalTeacher()
    for name in ("bell", "drum", "wind", "chirp"):
        rng = np.random.default_rng(3)
        x = 0.5 * _scene([(name, 0.2), (name, 1.1)], rng, noise=0.0)
        clean = np.stack([x, 0.8 * x])
        clipped = np.clip(6.0 * clean, -1.0, 1.0)
        noisy = clean + 0.03 * rng.standard_normal(clean.shape).astype(np.float32)
        c, k, n = (teacher.grade([a], SR, [_clip()])[0] for a in (clean, clipped, noisy))
        assert c.reward > k.reward + 0.1 and c.reward > n.reward + 0.1, (name, c, k, n)
        assert k.diagnostics["clipping"] < c.diagnostics["clipping"]
        assert n.diagnostics["noise"] < c.diagnostics["noise"]
        assert 0.0 <= min(c.reward, k.reward, n.reward) and max(c.reward, k.reward, n.reward) <= 1.0
    assert teacher.grade([np.zeros((2, SR), np.float32)], SR, [_clip()])[0].reward == 0.0


def test_semantic_grade_ignores_the_inter_aural_delay(semantic):
    """A source placed off-centre keeps its class: the delay must not comb-filter its timbre."""
    names = ("bell", "flute", "siren", "chirp", "buzz")
    centred, placed = [], []
    for i, name in enumerate(names):
        mono = _scene([(name, 0.3)], np.random.default_rng(i))
        clip = _clip(semantic=f"A {name} sounds.")
        centred.append(semantic.grade([np.stack([mono, mono])], SR, [clip])[0].reward)
        placed.append(semantic.grade([_stereo_with_itd(mono, 8.0)], SR, [clip])[0].reward)  # 0.5 ms
    assert np.max(np.abs(np.array(placed) - np.array(centred))) < 0.02, (centred, placed)


def _stereo_with_itd(mono, delay_samples):
    n = 2 * mono.size
    f = np.fft.rfftfreq(n)
    right = np.fft.irfft(np.fft.rfft(mono, n) * np.exp(-2j * np.pi * f * delay_samples), n)[: mono.size]
    return np.stack([mono, right]).astype(np.float32)


def test_spatial_gcc_phat_compares_generated_and_ground_truth_itd():
    teacher = SpatialGccPhatTeacher()
    gt_rate = 44100
    gt = _stereo_with_itd(_scene([("clap", 0.2), ("rain", 0.9)], np.random.default_rng(1), sample_rate=gt_rate),
                          0.25e-3 * gt_rate)  # source left, 0.25 ms
    clip = _clip("stereo-clip", audio=gt, sample_rate=gt_rate)
    gen_mono = _scene([("knock", 0.4)], np.random.default_rng(2))
    same, opposite = teacher.grade([_stereo_with_itd(gen_mono, 4.0), _stereo_with_itd(gen_mono, -4.0)], SR,
                                   [clip, clip])
    assert same.diagnostics["itd_gt_ms"] == pytest.approx(0.25, abs=1000 / gt_rate)
    assert same.diagnostics["itd_gen_ms"] == pytest.approx(0.25, abs=1000 / SR)
    assert same.reward > -0.01
    assert opposite.reward == pytest.approx(-2.5 * 0.5**2, abs=0.1)
    silent = teacher.grade([np.zeros((2, SR), np.float32)], SR, [clip])[0]
    assert np.isfinite(silent.reward) and silent.diagnostics["itd_gen_ms"] == 0.0
    lo, hi = SpatialGccPhatTeacher(SpatialGccPhatOptions(max_delay_ms=1.0, w_gcc=2.5)).reward_range
    assert (lo, hi) == (-10.0, 0.0)
    with pytest.raises(TeacherError, match="stereo-clip"):
        teacher.grade([gen_mono], SR, [clip])  # mono generated audio names the clip


def test_timing_unrelated_audio_grades_well_below_matched_audio():
    """Audio with no relation to the video must not score near matched audio: a whole-track
    cross-correlation favours lag 0 (the largest overlap) and gave white noise 0.41 of 0.5."""
    teacher = TimingOnsetTeacher()
    clip, matched = _av_clip(0.0, "drum", duration_s=2.0, times=(0.3, 0.9, 1.5))
    assert teacher.grade([matched], SR, [clip])[0].reward == 0.5
    rng = np.random.default_rng(1)
    noise = [np.repeat(rng.standard_normal((1, 2 * SR)).astype(np.float32), 2, 0) * 0.1 for _ in range(40)]
    rewards = [g.reward for g in teacher.grade(noise, SR, [clip] * len(noise))]
    assert np.mean(rewards) < 0.38, np.mean(rewards)


def test_profile_class_names_the_class_of_a_rendered_event_from_its_spectrum_alone():
    teacher = SemanticSignalTeacher()
    sr = teacher.options.sample_rate
    named = [teacher.profile_class(render_event(c, sr, np.random.default_rng(500 + i)))
             for i, c in enumerate(SOUND_CLASSES)]
    assert sum(n == c for n, c in zip(named, SOUND_CLASSES)) >= len(SOUND_CLASSES) - 1, named
