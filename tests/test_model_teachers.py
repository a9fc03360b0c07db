"""Model teacher backends (laion_clap, ms_clap, audiobox) loaded from local checkpoints built here.

Each model test builds a random-weight model with the package's own classes, saves it the way the
upstream release is saved, loads it back through the backend and grades. No hub, no network.
"""
import json
import math
import os

import numpy as np
import pytest
import torch

from common.types import Clip, join_cot
from rewards.base import TeacherError, check_options
from rewards.formulas import aesthetic_reward
from rewards.models.audio_prep import crop_start, fixed_windows, mono_at, tile_to_length, weighted_window_mean
from rewards.models.cot_text import cot_text
from rewards.models.embedding_math import paired_cosine

SR = 16000
COT = {"semantic": "a dog barks twice", "temporal": "at 1 s and 2 s", "aesthetic": "clean", "spatial": "left"}


def _clip(clip_id, audio, cot=COT):
    return Clip(clip_id, "train", np.zeros((1, 4, 4, 3), np.uint8), 25.0, audio, SR, dict(cot))


def _stereo(seconds, seed):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((2, int(seconds * SR)))).astype(np.float32)


def _hub_has(repo, filename):
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, filename), str)


# ---------------------------------------------------------------- pure helpers


def test_paired_cosine_is_rowwise_clipped_and_zero_safe():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [3.0, 4.0]])
    b = np.array([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0], [4.0, -3.0]])
    np.testing.assert_allclose(paired_cosine(a, b), [1.0, -1.0, 0.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        paired_cosine(a, b[:2])


def test_length_fitting_crops_from_start_and_tiles_short_audio():
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(crop_start(x, 3), [0, 1, 2])
    np.testing.assert_array_equal(tile_to_length(x, 12), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])


def test_windows_cover_the_clip_and_average_by_valid_length():
    wins, lengths = fixed_windows(np.ones(25, np.float32), window=10, hop=10)
    assert wins.shape == (3, 10) and lengths.tolist() == [10, 10, 5]
    assert wins[2, 5:].sum() == 0  # last window zero-padded
    means = weighted_window_mean(np.array([1.0, 1.0, 4.0, 7.0]), np.array([10, 10, 5, 3]), np.array([0, 0, 0, 1]), 2)
    np.testing.assert_allclose(means, [(10 + 10 + 20) / 25, 7.0])


def test_mono_at_mixes_resamples_and_names_bad_clips():
    x = np.stack([np.ones(16000, np.float32), -np.ones(16000, np.float32) * 0.5])
    y = mono_at(x, 16000, 48000, "c0", "t/b")
    assert y.shape == (48000,) and abs(float(np.median(y)) - 0.25) < 1e-3
    with pytest.raises(TeacherError, match="'bad'.*NaN"):
        mono_at(np.full((2, 10), np.nan, np.float32), SR, SR, "bad", "t/b")
    with pytest.raises(TeacherError, match="'empty'"):
        mono_at(np.zeros((2, 0), np.float32), SR, SR, "empty", "t/b")


def test_cot_text_picks_the_semantic_module_or_the_whole_plan():
    clip = _clip("c1", _stereo(0.1, 0))
    assert cot_text(clip, "semantic", "o") == COT["semantic"]
    assert cot_text(clip, "full", "o") == join_cot(COT)
    with pytest.raises(TeacherError, match="'c2'.*empty semantic"):
        cot_text(_clip("c2", _stereo(0.1, 0), {**COT, "semantic": " "}), "semantic", "o")


# ---------------------------------------------------------------- ms_clap (model tests: test_ms_clap.py)


def test_ms_clap_score_is_exp_logit_scale_times_cosine_over_80():
    from rewards.backends.semantic_ms_clap import grades_from_embeddings

    audio = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
    text = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    grades = grades_from_embeddings(audio, text, logit_scale=math.log(100.0))
    np.testing.assert_allclose([g.reward for g in grades], [100 / 80, 0.0, 0.6 * 100 / 80], atol=1e-9)
    assert grades[2].diagnostics["cosine"] == pytest.approx(0.6)


def test_ms_clap_options_are_checked_when_the_config_is_read():
    with pytest.raises(TeacherError, match="version='2021' is not supported"):
        check_options("semantic", "ms_clap", {"checkpoint": "w.pth", "version": "2021"})
    with pytest.raises(TeacherError, match="text='caption'"):
        check_options("semantic", "ms_clap", {"checkpoint": "w.pth", "text": "caption"})


def test_ms_clap_missing_checkpoint_names_the_path(tmp_path):
    from rewards.backends.semantic_ms_clap import MsClapOptions, MsClapTeacher

    missing = tmp_path / "CLAP_weights_2023.pth"
    with pytest.raises(TeacherError, match=f"semantic/ms_clap: checkpoint '{missing}' does not exist"):
        MsClapTeacher(MsClapOptions(checkpoint=str(missing), device="cpu"))
    with pytest.raises(TeacherError, match="'checkpoint' is required"):
        MsClapTeacher(MsClapOptions(device="cpu"))


# ---------------------------------------------------------------- laion_clap


@pytest.fixture(scope="module")
def laion(tmp_path_factory):
    """A small random-weight CLAP (HTSAT-tiny audio, 2-layer CLIP text) saved as LAION releases it."""
    from laion_clap import clap_module

    from rewards.models.laion_clap_loading import LaionClap, build_clap

    root = tmp_path_factory.mktemp("laion")
    cfg_path = os.path.join(os.path.dirname(clap_module.__file__), "model_configs", "HTSAT-tiny.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["text_cfg"].update(layers=2, width=64, heads=2)
    arch = root / "htsat-tiny-text2.json"
    arch.write_text(json.dumps(cfg))
    torch.manual_seed(0)
    model, model_cfg = build_clap(str(arch), "transformer", False, torch.device("cpu"), "test")
    model.eval()
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    state["module.text_branch.embeddings.position_ids"] = torch.arange(77)[None]  # stale key in old releases
    ckpt = root / "630k-test.pt"
    torch.save({"epoch": 3, "name": "test", "state_dict": state}, ckpt)
    from rewards.models.laion_clap_loading import load_text_tokenizer

    original = LaionClap(model, model_cfg, "transformer", load_text_tokenizer("transformer", "test"), False)
    return {"arch": str(arch), "ckpt": str(ckpt), "original": original}


@pytest.fixture(scope="module")
def laion_teacher(laion):
    from rewards.backends.semantic_laion_clap import LaionClapOptions, LaionClapTeacher

    opts = LaionClapOptions(checkpoint=laion["ckpt"], amodel=laion["arch"], tmodel="transformer", device="cpu")
    return LaionClapTeacher(opts)


def test_laion_clap_grades_stereo_clips_with_the_saved_weights(laion, laion_teacher):
    import time

    from rewards.models.laion_clap_loading import embed_audio, embed_texts

    audio = [_stereo(3.0, 1), _stereo(12.0, 2)]
    clips = [_clip("a", audio[0]), _clip("b", audio[1], {**COT, "semantic": "rain on a tin roof"})]
    t0 = time.process_time()
    grades = laion_teacher.grade(audio, SR, clips)
    print(f"laion_clap small config: {(time.process_time() - t0) / 2:.2f} CPU s per clip")
    rewards = np.array([g.reward for g in grades])
    assert np.isfinite(rewards).all() and (np.abs(rewards) <= 1).all()
    assert [g.diagnostics["seconds_graded"] for g in grades] == [3.0, 10.0]
    # the same cosine as the model that was saved: the weights really were loaded
    orig = laion["original"]
    waves = [crop_start(mono_at(a, SR, 48000, "x", "t"), 480000) for a in audio]
    expected = paired_cosine(embed_audio(orig, waves).numpy(),
                             embed_texts(orig, [COT["semantic"], "rain on a tin roof"]).numpy())
    np.testing.assert_allclose(rewards, expected, atol=1e-5)
    np.testing.assert_allclose([g.diagnostics["cosine"] for g in grades], rewards)


def test_laion_clap_full_cot_text_changes_the_grade(laion_teacher):
    import dataclasses

    audio = [_stereo(2.0, 3)]
    semantic = laion_teacher.grade(audio, SR, [_clip("a", audio[0])])[0].reward
    opts = laion_teacher.options
    laion_teacher.options = dataclasses.replace(opts, text="full")
    try:
        full = laion_teacher.grade(audio, SR, [_clip("a", audio[0])])[0].reward
    finally:
        laion_teacher.options = opts
    assert full != pytest.approx(semantic, abs=1e-6)


def test_laion_clap_checkpoint_layouts_and_mismatches(laion, laion_teacher, tmp_path):
    from rewards.models.laion_clap_loading import load_clap_checkpoint

    model = laion_teacher.clap.model
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    plain = {k: torch.zeros_like(v) for k, v in saved.items()}
    path = tmp_path / "plain.pt"
    torch.save(plain, path)  # a bare state dict without "module." also loads
    try:
        load_clap_checkpoint(model, str(path), "semantic/laion_clap")
        assert float(model.token_embedding.weight.detach().abs().sum()) == 0.0
        del plain["logit_scale_a"]
        torch.save(plain, path)
        with pytest.raises(TeacherError, match="semantic/laion_clap: checkpoint .*plain.pt: .*missing keys: logit_sc"):
            load_clap_checkpoint(model, str(path), "semantic/laion_clap")
    finally:
        model.load_state_dict(saved)


def test_laion_clap_missing_checkpoint_names_the_path(tmp_path):
    from rewards.backends.semantic_laion_clap import LaionClapOptions, LaionClapTeacher

    missing = tmp_path / "630k-audioset-best.pt"
    with pytest.raises(TeacherError, match=f"checkpoint '{missing}' does not exist"):
        LaionClapTeacher(LaionClapOptions(checkpoint=str(missing), device="cpu"))


@pytest.mark.skipif(_hub_has("roberta-base", "vocab.json"), reason="roberta-base is in the local HF cache")
def test_laion_clap_refuses_the_empty_offline_roberta_tokenizer(laion):
    from transformers import RobertaTokenizer

    from rewards.backends.semantic_laion_clap import LaionClapOptions, LaionClapTeacher
    from rewards.models.laion_clap_loading import check_tokenizer_vocab

    stand_in = RobertaTokenizer.from_pretrained("roberta-base")  # what laion_clap's CLAP_Module would grade with
    with pytest.raises(TeacherError, match="'roberta-base' has only .* tokens"):
        check_tokenizer_vocab(stand_in, "roberta-base", "semantic/laion_clap")
    with pytest.raises(TeacherError, match="roberta-base"):
        LaionClapTeacher(LaionClapOptions(checkpoint=laion["ckpt"], tmodel="roberta", device="cpu"))


# ---------------------------------------------------------------- audiobox


AXES = ("CE", "CU", "PC", "PQ")
TARGET_TRANSFORM = {"CE": {"mean": 6.0, "std": 1.5}, "CU": {"mean": 6.5, "std": 1.2},
                    "PC": {"mean": 4.0, "std": 1.8}, "PQ": {"mean": 7.0, "std": 1.1}}


@pytest.fixture(scope="module")
def audiobox(tmp_path_factory):
    """The real-size AesMultiOutput with random weights, saved in the checkpoint.pt layout."""
    from audiobox_aesthetics.model.aes import AesMultiOutput

    torch.manual_seed(0)
    model = AesMultiOutput(target_transform=TARGET_TRANSFORM).eval()
    cfg = {"proj_num_layer": 1, "proj_ln": False, "proj_act_fn": "gelu", "proj_dropout": 0, "nth_layer": 13,
           "use_weighted_layer_sum": True, "precision": "32", "normalize_embed": True, "output_dim": 1}
    path = tmp_path_factory.mktemp("audiobox") / "checkpoint.pt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "model_cfg": cfg,
                "target_transform": TARGET_TRANSFORM}, path)
    return {"model": model, "ckpt": str(path)}


def test_audiobox_grades_with_the_saved_weights(audiobox):
    import time

    from rewards.backends.aesthetic_audiobox import AudioboxOptions, AudioboxTeacher

    teacher = AudioboxTeacher(AudioboxOptions(checkpoint=audiobox["ckpt"], device="cpu"))
    audio = [_stereo(1.0, 4), _stereo(2.0, 5)]
    t0 = time.process_time()
    grades = teacher.grade(audio, SR, [_clip("a", audio[0]), _clip("b", audio[1])])
    print(f"audiobox real size: {(time.process_time() - t0) / 2:.2f} CPU s per clip (one 10 s window each)")
    lo, hi = teacher.reward_range
    for g in grades:
        assert set(g.diagnostics) == set(AXES)
        assert g.reward == pytest.approx(aesthetic_reward(*(g.diagnostics[a] for a in AXES)))
        assert np.isfinite(g.reward) and lo <= g.reward <= hi
    # the axes the saved model gives on the same zero-padded, masked 10 s windows
    win = 10 * SR
    wav = torch.zeros(2, 1, win)
    mask = torch.zeros(2, 1, win, dtype=torch.bool)
    for i, a in enumerate(audio):
        mono = torch.from_numpy(a.mean(axis=0))
        wav[i, 0, : mono.numel()], mask[i, 0, : mono.numel()] = mono, True
    with torch.no_grad():
        raw = audiobox["model"]({"wav": wav, "mask": mask})
    for a in AXES:
        expected = raw[a].numpy() * TARGET_TRANSFORM[a]["std"] + TARGET_TRANSFORM[a]["mean"]
        np.testing.assert_allclose([g.diagnostics[a] for g in grades], expected, atol=1e-4)


def test_audiobox_checkpoint_problems_name_the_path(tmp_path):
    from rewards.backends.aesthetic_audiobox import AudioboxOptions, AudioboxTeacher

    missing = tmp_path / "checkpoint.pt"
    with pytest.raises(TeacherError, match=f"aesthetic/audiobox: checkpoint '{missing}' does not exist"):
        AudioboxTeacher(AudioboxOptions(checkpoint=str(missing), device="cpu"))
    torch.save({"state_dict": {}}, missing)
    with pytest.raises(TeacherError, match=r"lacks \['model_cfg', 'target_transform'\]"):
        AudioboxTeacher(AudioboxOptions(checkpoint=str(missing), device="cpu"))
    hf_dir = tmp_path / "hf"
    hf_dir.mkdir()
    with pytest.raises(TeacherError, match="has no config.json"):
        AudioboxTeacher(AudioboxOptions(checkpoint=str(hf_dir), device="cpu"))
    with pytest.raises(TeacherError, match="batch_windows must be >= 1"):
        check_options("aesthetic", "audiobox", {"checkpoint": str(missing), "batch_windows": 0})


def test_audiobox_loads_the_hugging_face_directory_format(audiobox, tmp_path):
    from rewards.models.audiobox_loading import load_audiobox

    audiobox["model"].save_pretrained(tmp_path / "audiobox-aesthetics")  # config.json + model.safetensors
    loaded = load_audiobox(str(tmp_path / "audiobox-aesthetics"), torch.device("cpu"), "aesthetic/audiobox")
    assert loaded.target_transform == TARGET_TRANSFORM
    want = audiobox["model"].state_dict()
    assert all(torch.equal(v, want[k]) for k, v in loaded.state_dict().items())
