"""CoT planners: facts read back from plans, the mllm prompt/parse round trip on a tiny random GPT-2,
`prismrl data annotate` through the Ray planner pool (resumable), and the synth planner trained on
SynthScenes graded against ground truth on held-out clips."""
from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
import ray
import torch

from common.types import COT_MODULES
from orchestrator.config.load import load_config
from orchestrator.data.annotate_plans import annotate_manifest, plans_path, read_plans
from orchestrator.data.config import DataConfig
from orchestrator.data.reader import ClipReader
from orchestrator.data.synth import write_synthscenes
from orchestrator.training.planner_training import train_synth_planner
from policies.planner import PlannerConfig, build_planner
from policies.planner.facts import parse_facts, plan_accuracy
from policies.planner.synth import load_synth_planner
from policies.planner.template import DEFAULT_TEMPLATE, parse_modules

TRUTH = {
    "semantic": "A bell rings (a bright ringing bell tone with a long decay) and a drum is struck (a deep thumping "
                "drum hit). One other object on screen makes no sound.",
    "temporal": "Three events: the bell at 0.40 s, the drum at 0.72 s and 1.12 s.",
    "aesthetic": "A clean recording with a silent background; the sound is warm and loud, with sharp percussive "
                 "hits and clear sustained tones.",
    "spatial": "The bell is on the left; the drum moves from the centre to the right.",
}


def test_facts_and_accuracy_of_annotation_text():
    f = parse_facts(TRUTH)
    assert f.classes == ["bell", "drum"] and f.silent_objects == 1 and f.event_count == 3
    assert f.events == [("bell", 0.40), ("drum", 0.72), ("drum", 1.12)]
    assert f.sides == {"bell": ("left", "left"), "drum": ("centre", "right")}
    assert f.families == {"percussive", "tonal"}
    assert set(plan_accuracy(TRUTH, TRUTH).values()) == {1.0}
    off = dict(TRUTH, temporal="Three events: the bell at 0.40 s, the drum at 0.92 s and 1.12 s.",
               spatial="The bell is on the right; the drum moves from the centre to the right.")
    acc = plan_accuracy(off, TRUTH)
    assert acc["temporal/event_times"] == pytest.approx(2 / 3) and acc["spatial/side"] == pytest.approx(0.5)
    assert acc["semantic/class_set"] == 1.0 and acc["temporal/event_count"] == 1.0


def test_parse_modules_of_a_generation():
    text = " a bell rings.\nTemporal: one event at 0.40 s.\nSpatial: on the left\nAesthetic: clean."
    assert parse_modules(text) == {"semantic": "a bell rings.", "temporal": "one event at 0.40 s.",
                                   "aesthetic": "clean.", "spatial": "on the left"}
    assert parse_modules(" hum hum temporal: at 1 s")["temporal"] == "at 1 s"  # inline header
    assert parse_modules(" nothing useful") == {"semantic": "nothing useful", "temporal": "", "aesthetic": "", "spatial": ""}


def _tiny_gpt2(path) -> None:
    """A random 1-layer GPT-2 and a word-level tokenizer over the prompt's words, saved with save_pretrained."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = sorted(set((DEFAULT_TEMPLATE + " bell drum left right centre object FLASH t s x").replace(":", " ").split()))
    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "[EOS]", ":", ".", ",", "=", ";", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(vocab), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=vocab["[EOS]"], eos_token_id=vocab["[EOS]"], pad_token_id=vocab["[PAD]"])
    GPT2LMHeadModel(config).save_pretrained(path)


def test_mllm_planner_and_resumable_annotate(tmp_path):
    model_dir = tmp_path / "gpt2"
    _tiny_gpt2(model_dir)
    cfg = load_config("tiny", [f"run_dir={tmp_path / 'run'}", "data.synth.n=5", "planner.backend=mllm",
                               f"planner.mllm_path={model_dir}", "planner.max_new_tokens=6", "planner.device=cpu",
                               "planner.batch_size=2", "planner.replicas=2", "planner.num_cpus=0.5"])
    cfg.data.manifest = write_synthscenes(str(tmp_path / "data"), cfg.data.synth, cfg.data.s3, progress=False)
    clip = ClipReader(cfg.data).load("ss0-000000")
    planner = build_planner(cfg.planner)
    prompt = planner.prompt(clip.frames, clip.fps)
    assert "FLASH" in prompt and prompt.endswith("Semantic:")  # the visual summary shows the impacts
    (plan, raw), = planner.plan_with_text([(clip.frames, clip.fps)])
    assert set(plan) == set(COT_MODULES) and plan == parse_modules(raw) | {}
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_planner(dataclasses.replace(cfg.planner, mllm_path=str(tmp_path / "nowhere")))

    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024)
    try:
        # Two clips are one batch: one replica does it (a second would only start up); the rerun below
        # plans three clips in two batches on both replicas.
        one_replica = dataclasses.replace(cfg, planner=dataclasses.replace(cfg.planner, replicas=1))
        first = annotate_manifest(one_replica, limit=2)
        assert first["planned"] == 2 and first["already_done"] == 0
        with open(plans_path(cfg), "a") as f:
            f.write('{"clip_id": "ss0-000004", "sema')  # a run killed mid-write
        second = annotate_manifest(cfg)
        assert second["already_done"] == 2 and second["planned"] == 3
    finally:
        ray.shutdown()
    rows = read_plans(plans_path(cfg))
    assert sorted(rows) == [f"ss0-{i:06d}" for i in range(5)]
    assert all(r["planner"] == "mllm" and "raw" in r and set(COT_MODULES) <= set(r) for r in rows.values())
    lines = open(plans_path(cfg)).read().splitlines()
    assert sum(1 for line in lines if line.startswith("{") and line.endswith("}")) == 5


def test_synth_planner_learns_the_annotation_facts(tmp_path):
    torch.set_num_threads(1)
    base = load_config("tiny", [f"run_dir={tmp_path}"]).data.synth
    splits = dict(val_fraction=0.0, test_fraction=0.0)
    train_m = write_synthscenes(str(tmp_path / "train"), dataclasses.replace(base, n=100, seed=11, **splits), progress=False)
    held_m = write_synthscenes(str(tmp_path / "held"), dataclasses.replace(base, n=24, seed=12, **splits), progress=False)
    train = ClipReader(DataConfig(manifest=train_m)).load_split("train")
    held = ClipReader(DataConfig(manifest=held_m)).load_split("train")
    cfg = PlannerConfig(channels=32, train_steps=450, train_lr=5e-3, train_time_budget_s=0)
    start = time.perf_counter()
    summary = train_synth_planner(cfg, train, held, str(tmp_path / "planner"), seed=0)
    print("synth planner:", round(time.perf_counter() - start, 1), "s", json.dumps(summary["val_accuracy"]))
    acc = summary["val_accuracy"]
    assert acc["semantic/class_set"] >= 0.6  # the exact set of sounding classes
    assert acc["semantic/silent_count"] >= 0.5
    assert acc["temporal/event_count"] >= 0.6
    assert acc["temporal/event_times"] >= 0.7  # (class, onset) within 0.1 s
    assert acc["spatial/side"] >= 0.7  # left / centre / right at the start and the end
    assert acc["aesthetic/families"] >= 0.6
    planner = load_synth_planner(str(tmp_path / "planner"))
    c = held[0]
    assert planner.plan(c.frames, c.fps) == planner.plan_batch([(c.frames, c.fps)])[0]
    assert np.isfinite(summary["loss_last"]) and summary["loss_last"] < summary["loss_first"]
    with pytest.raises(FileNotFoundError, match="planner.checkpoint"):
        load_synth_planner(str(tmp_path / "train"))
