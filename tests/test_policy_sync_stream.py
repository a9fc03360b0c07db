"""The frame-aligned sync stream (`policy.sync_stream`): video frame j reaches the audio tokens of its
own time span, the null condition carries none of it, and checkpoints from before the field load without it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from policies.checkpoint import load_policy
from policies.build import build_policy
from test_policy_fixtures import make_clip, one_thread, randomize, save_without_field, tiny_cfg  # noqa: F401


def _audio_rows(policy, cond: dict) -> torch.Tensor:
    """[B, frames, width]: what the sync stream adds to each audio token."""
    return cond["sync"][:, policy.sync_index]


def test_a_video_frame_reaches_exactly_the_audio_tokens_of_its_time_span():
    # without the motion input, whose frame differences also carry frame j into frame j + 1
    policy = randomize(build_policy(tiny_cfg(video_motion=False))).eval()
    prepared = policy.prepare([make_clip(0), make_clip(1)])
    j = 5
    changed = dict(prepared, frames=prepared["frames"].clone())
    changed["frames"][0, j] = 255 - changed["frames"][0, j]  # sample 0 only: frame j inverted
    with torch.no_grad():
        base = _audio_rows(policy, policy.encode_conditions(prepared))
        moved = (_audio_rows(policy, policy.encode_conditions(changed)) - base).abs().sum(-1)
    audio_t = (np.arange(policy.num_frames) + 0.5) * policy.cfg.patch / policy.cfg.sample_rate
    fps = policy.cfg.video_fps
    inside = (audio_t >= j / fps) & (audio_t < (j + 1) / fps)
    assert inside.sum() == 4  # 80 ms video frames over 20 ms audio frames
    assert torch.all(moved[0, torch.from_numpy(inside)] > 1e-4)
    assert torch.all(moved[0, torch.from_numpy(~inside)] == 0)
    assert torch.all(moved[1] == 0)


def test_the_sync_stream_changes_the_velocity_and_the_null_condition_has_none_of_it():
    policy = randomize(build_policy(tiny_cfg())).eval()
    cond = policy.encode_conditions(policy.prepare([make_clip(0), make_clip(1)]))
    x = torch.randn(2, *policy.latent_shape(), generator=torch.Generator().manual_seed(0))
    t = torch.full((2,), 0.6)
    with torch.no_grad():
        v = policy.velocity(x, t, cond)
        v_without = policy.velocity(x, t, {k: v_ for k, v_ in cond.items() if k != "sync"})
        null = policy.null_conditions(cond)
        dropped = policy.drop_conditions(cond, torch.tensor([True, False]))
    assert (v - v_without).abs().max() > 1e-4
    assert list(null) == list(cond)  # same keys, same order: guidance batches them side by side
    assert torch.all(null["sync"] == 0)
    assert torch.all(dropped["sync"][0] == 0) and torch.equal(dropped["sync"][1], cond["sync"][1])
    assert torch.equal(dropped["mask"][0], null["mask"][0])


def test_checkpoints_from_before_the_field_load_without_the_stream(tmp_path):
    cfg = dataclasses.replace(tiny_cfg(), sync_stream=False)
    out = str(tmp_path / "old")
    old = build_policy(cfg)
    assert not hasattr(old, "sync_proj")
    assert "sync" not in old.encode_conditions(old.prepare([make_clip(0)]))
    save_without_field(old, cfg, out, "sync_stream")
    assert load_policy(out).cfg.sync_stream is False
    with pytest.raises(ValueError, match="sync_stream: checkpoint False vs config True"):
        build_policy(dataclasses.replace(tiny_cfg(), checkpoint=out))
