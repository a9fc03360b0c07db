"""`prismrl generate`: plans, wav + muxed mp4 + plan json per video, and a bad video does not stop the batch."""
from __future__ import annotations

import json
import os
import shutil

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from common.soundclasses import SOUND_CLASSES
from common.types import COT_MODULES
from orchestrator.config.load import load_config
from orchestrator.data.synth import write_synthscenes
from orchestrator.evaluation.generate import main, user_plan
from orchestrator.training.pretrain import run_pretrain
from policies.planner.synth import save_synth_planner
from policies.planner.synth_net import FrameEventNet


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny SynthScenes, a briefly pretrained tiny policy and an (untrained) synth planner checkpoint."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("genworld")
    cfg = load_config("tiny", [f"run_dir={root / 'pre'}", f"policy.checkpoint={root / 'policy'}", "data.synth.n=6",
                               "pretrain.steps=4", "pretrain.val_every=0", "pretrain.torch_threads=1"])
    cfg.data.manifest = write_synthscenes(str(root / "data"), cfg.data.synth, cfg.data.s3, progress=False)
    run_pretrain(cfg)
    torch.manual_seed(0)
    save_synth_planner(FrameEventNet(len(SOUND_CLASSES), 32, 8), SOUND_CLASSES, str(root / "planner"))
    return root, cfg.data.manifest


def test_user_plan_forms(tmp_path):
    plan = user_plan("Semantic: a bell rings. Temporal: one event at 0.40 s. Spatial: on the left.", "v")
    assert plan["semantic"] == "a bell rings." and plan["temporal"] == "one event at 0.40 s." and plan["aesthetic"] == ""
    assert user_plan("a drum", "v") == {"semantic": "a drum", "temporal": "", "aesthetic": "", "spatial": ""}
    path = tmp_path / "plans.json"
    path.write_text(json.dumps({"v": {"semantic": "a clap"}, "w": {"semantic": "a knock"}}))
    assert user_plan(str(path), "w")["semantic"] == "a knock"


def test_folder_with_a_bad_video_keeps_the_good_ones(world, capsys):
    root, manifest = world
    videos = root / "videos"
    videos.mkdir()
    media = sorted((root / "data" / "media").glob("*.mp4"))[:2]
    for m in media:
        shutil.copy(m, videos / m.name)
    (videos / "broken.mp4").write_bytes(b"not a video at all")
    out = root / "out"
    code = main(["tiny", f"checkpoint={root / 'policy'}", f"input={videos}", f"out={out}", f"run_dir={root / 'g'}",
                 "cot=Semantic: a drum is struck. Temporal: one event at 0.40 s.", "sampler.num_steps=3"])
    assert code == 1  # one video failed
    err = capsys.readouterr().err
    assert "broken.mp4" in err and "cannot read video" in err
    for m in media:
        stem = m.stem
        audio, sr = sf.read(out / f"{stem}.wav", always_2d=True)
        assert sr == 16000 and audio.shape == (16000, 2) and np.abs(audio).max() > 0  # tiny policy: 1 s stereo
        with av.open(str(out / f"{stem}.mp4")) as c:
            assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
            assert c.streams.audio[0].channels == 2
            assert sum(1 for _ in c.decode(c.streams.video[0])) >= 12
        plan = json.load(open(out / f"{stem}.plan.json"))
        assert plan["source"] == "user" and plan["semantic"] == "a drum is struck."
    assert not (out / "broken.wav").exists()


def test_manifest_input_uses_the_planner(world):
    root, manifest = world
    out = root / "out_planner"
    code = main(["tiny", f"checkpoint={root / 'policy'}", f"input={manifest}", f"out={out}", f"run_dir={root / 'g2'}",
                 f"planner.checkpoint={root / 'planner'}", "sampler.num_steps=2"])
    assert code == 0
    plans = sorted(out.glob("*.plan.json"))
    assert len(plans) == 6
    plan = json.load(open(plans[0]))
    assert plan["source"] == "planner:synth" and set(COT_MODULES) <= set(plan)
    assert any(name in plan["semantic"] for name in SOUND_CLASSES)  # the synth planner always names a source
    assert os.path.exists(out / (plans[0].name.replace(".plan.json", ".mp4")))


def test_missing_input_is_a_clear_error(world, capsys):
    root, _ = world
    assert main(["tiny", f"checkpoint={root / 'policy'}", f"input={root / 'nope.mp4'}", f"run_dir={root / 'g3'}"]) == 2
    assert "nope.mp4" in capsys.readouterr().err
