"""Mirror augmentation (policies/mirror.py): the mirrored clip is the scene seen from the other side."""
import numpy as np
import pytest

from common.types import Clip
from orchestrator.data.synth.audio import render_scene_audio
from orchestrator.data.synth.scene import Scene, SceneObject, SoundEvent
from policies.mirror import mirror_clip, mirror_text
from rewards.dsp import gcc_phat_itd

SR = 16000


def _scene_audio(x: float) -> np.ndarray:
    obj = SceneObject("bell", True, 0, np.full(50, x))
    scene = Scene(2.0, 25.0, 50, [obj], [SoundEvent(0, 5, 0.2)], (0, 0, 0), -50.0, 0.0, ["bell"])
    return render_scene_audio(scene, SR, np.random.default_rng(3)).astype(np.float32)


def _clip(audio: np.ndarray, frames: np.ndarray, spatial: str) -> Clip:
    cot = {"semantic": "A bell rings.", "temporal": "Once, at 0.2 s.", "aesthetic": "Clean.", "spatial": spatial}
    return Clip("c0", "train", frames, 25.0, audio, SR, cot)


@pytest.mark.parametrize("x", [0.15, 0.3, 0.7])
def test_mirrored_audio_sounds_from_the_mirrored_position(x):
    frames = np.zeros((50, 8, 8, 3), dtype=np.uint8)
    mirrored = mirror_clip(_clip(_scene_audio(x), frames, "The bell is on the left."))
    itd_mirrored = gcc_phat_itd(mirrored.audio[0], mirrored.audio[1], SR)
    itd_other_side = gcc_phat_itd(*_scene_audio(1.0 - x), SR)
    assert abs(itd_mirrored - itd_other_side) <= 0.07e-3
    assert np.sign(itd_mirrored) == -np.sign(gcc_phat_itd(*_scene_audio(x), SR))


def test_mirrored_frames_are_flipped_left_right_and_mirroring_twice_is_identity():
    frames = np.zeros((3, 4, 6, 3), dtype=np.uint8)
    frames[:, 1, 0] = 255  # a bright pixel in the leftmost column
    audio = np.random.default_rng(0).standard_normal((2, 800)).astype(np.float32)
    clip = _clip(audio, frames, "The bell is on the left.")
    mirrored = mirror_clip(clip)
    assert mirrored.frames[:, 1, 5].min() == 255 and mirrored.frames[:, 1, 0].max() == 0
    assert np.array_equal(mirrored.audio, audio[::-1])
    twice = mirror_clip(mirrored)
    assert np.array_equal(twice.frames, frames) and np.array_equal(twice.audio, audio) and twice.cot == clip.cot


def test_plan_sides_swap_and_everything_else_stays():
    assert mirror_text("The bell is on the left; the drum moves from the centre to the right.") == \
        "The bell is on the right; the drum moves from the centre to the left."
    assert mirror_text("Left first, then rightward.") == "Right first, then leftward."
    assert mirror_text("A bright bell, leftover copyright.") == "A bright bell, leftover copyright."
