"""The visual encoder's motion input (`policy.video_motion`): each frame's difference from the one
before it, so a change on screen reaches that frame's token (and the next one's, through its
difference) and nothing else; checkpoints from before the field load without it."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from policies.checkpoint import load_policy
from policies.build import build_policy
from policies.video import frame_differences
from test_policy_fixtures import make_clip, one_thread, randomize, save_without_field, tiny_cfg  # noqa: F401


def test_frame_differences_are_zero_for_the_first_frame_and_signed_after():
    frames = torch.zeros(1, 3, 3, 2, 2, dtype=torch.uint8)
    frames[0, 1] = 255  # a flash in frame 1 only
    d = frame_differences(frames)
    assert d.shape == (1, 3, 3, 2, 2)
    assert torch.all(d[0, 0] == 0)
    assert torch.allclose(d[0, 1], torch.full((3, 2, 2), 2.0))
    assert torch.allclose(d[0, 2], torch.full((3, 2, 2), -2.0))


@pytest.mark.parametrize("motion", [True, False])
def test_a_changed_frame_reaches_its_own_token_and_with_motion_the_next_one(motion):
    policy = randomize(build_policy(tiny_cfg(video_motion=motion))).eval()
    frames = policy.prepare([make_clip(0)])["frames"]
    j = 5
    changed = frames.clone()
    changed[0, j] = 255 - changed[0, j]
    with torch.no_grad():
        moved = (policy.video(changed) - policy.video(frames)).abs().sum(-1)[0]
    reached = {int(i) for i in torch.nonzero(moved > 1e-5)}
    assert reached == ({j, j + 1} if motion else {j})


def test_checkpoints_from_before_the_field_load_without_motion(tmp_path):
    cfg = tiny_cfg(video_motion=False)
    out = str(tmp_path / "old")
    old = build_policy(cfg)
    assert old.video.conv[0].in_channels == 3
    assert build_policy(tiny_cfg()).video.conv[0].in_channels == 6
    save_without_field(old, cfg, out, "video_motion")
    assert load_policy(out).cfg.video_motion is False
    with pytest.raises(ValueError, match="video_motion: checkpoint False vs config True"):
        build_policy(dataclasses.replace(tiny_cfg(), checkpoint=out))
