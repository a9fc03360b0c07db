"""`prismrl data features`: per-clip sync features, merged with the reference extractor's `.npz`
files, written next to the manifest with its `features_path` column; errors name the clip.

The full Synchformer (237M parameters, 27 segments of 16 x 224 x 224 per 9 s clip) is far too slow
for a CPU test, so the job runs with a small random-weight video encoder of the same contract
(segments [n, 3, 16, 224, 224] -> [n, 8, D]); loading the real checkpoint is the timing teacher's,
tested in test_synchformer.py. Clips are 2 s SynthScenes at 25 fps; 1.28 s = 32 frames = 3 segments
= 24 rows, the reduced PrismAudio's sync_frames.
"""
from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors import safe_open

from orchestrator.config import load_config
from orchestrator.data.cli import main as data_main
from orchestrator.data.config import DataConfig
from orchestrator.data.features import read_entries
from orchestrator.data.features_job import FeatureJobOptions, parse_options, run_feature_job
from orchestrator.data.reader import BadClipError, ClipReader, decode_video
from orchestrator.data.sync_features import clip_sync_features, sync_rows
from orchestrator.data.synth import write_synthscenes
from policies.prismaudio.policy import PrismAudioPolicy
from rewards.models.synchformer.video_preprocess import resize_center_crop
from helpers.tiny_video_encoder import TinyVideoEncoder
from helpers.prismaudio_world import random_features, reduced_config, reduced_overrides, write_reference_npz

SECONDS = 1.28
WIDTH = reduced_config().prismaudio.sync_dim


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("featcmd")
    cfg = load_config("tiny", [f"run_dir={root}", "data.synth.n=3", "data.synth.min_duration_s=2",
                               "data.synth.max_duration_s=2", "data.synth.fps=25"])
    return write_synthscenes(str(root / "data"), cfg.data.synth, cfg.data.s3, progress=False)


def _cfg(manifest, *extra):
    return load_config("tiny", reduced_overrides() + [f"data.manifest={manifest}", *extra])


def test_rows_follow_the_reference_segmenting():
    assert sync_rows(9.0) == sync_rows(9.009) == 216  # 225 frames, 27 segments of 8 rows
    assert sync_rows(SECONDS) == 24 and sync_rows(0.6) == 0


def test_segments_become_rows_in_time_order(world):
    reader = ClipReader(DataConfig(manifest=world, cache_decoded=False))
    row = reader.row(reader.clip_ids()[0])
    frames, _ = decode_video(open(os.path.join(os.path.dirname(world), row["video_path"]), "rb").read())
    enc = TinyVideoEncoder(WIDTH)
    feats = clip_sync_features(frames, row["fps"], SECONDS, enc, batch=2)
    assert feats.shape == (24, WIDTH) and feats.dtype == np.float32 and enc.calls == 2
    with torch.inference_mode():  # segment 1 = frames 8..23 (25 fps video: no resampling)
        seg1 = enc(resize_center_crop(frames[8:24]).permute(1, 0, 2, 3)[None])[0]
    np.testing.assert_allclose(feats[8:16], seg1.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="video is 2.000 s .* need 3.0 s"):
        clip_sync_features(frames, row["fps"], 3.0, enc)


def test_sync_first_then_merge_reference_files(world, tmp_path):
    root = os.path.dirname(world)
    out_manifest = str(tmp_path / "manifest.parquet")
    enc = TinyVideoEncoder(WIDTH)
    opts = dict(seconds=SECONDS, out_dir="feats", out_manifest=out_manifest)
    first = run_feature_job(_cfg(world), FeatureJobOptions(**opts), encode=enc, progress=False)
    ids = first.written
    assert len(ids) == 3 and set(first.incomplete) == set(ids)
    assert first.incomplete[ids[0]] == ["video_features", "text_features"]
    assert pq.read_table(out_manifest).column("features_path").to_pylist() == [None] * 3  # nothing usable yet
    # the reference extractor's files, for the merge
    ref = tmp_path / "ref"
    ref.mkdir()
    shape = reduced_config().prismaudio
    for i, clip_id in enumerate(ids):
        write_reference_npz(str(ref / f"{clip_id}.npz"), clip_id, random_features(shape, 5 + i, seed=i), cot=f"Semantic: {i}")
    calls = enc.calls
    second = run_feature_job(_cfg(world), FeatureJobOptions(**opts, merge_from=str(ref)), encode=enc, progress=False)
    assert enc.calls == calls and second.reused_sync == ids and not second.incomplete  # sync reused, not recomputed
    cells = pq.read_table(out_manifest).column("features_path").to_pylist()
    assert cells == [os.path.join(root, f"feats/{c}.npz") for c in ids]  # another directory: absolute
    reader = ClipReader(DataConfig(manifest=out_manifest, cache_decoded=False))
    clip = reader.load(ids[1])
    reference = np.load(ref / f"{ids[1]}.npz", allow_pickle=True)
    np.testing.assert_array_equal(clip.features["text_features"], reference["text_features"])
    np.testing.assert_array_equal(clip.features["global_video_features"], reference["global_video_features"])
    assert clip.features["caption_cot"] == "Semantic: 1" and clip.features["id"] == ids[1]
    assert clip.features["sync_features"].shape == (24, WIDTH)
    assert not np.array_equal(clip.features["sync_features"], reference["sync_features"])  # ours replaced theirs
    assert PrismAudioPolicy(reduced_config()).prepare([clip])["sync_features"].shape == (1, 24, WIDTH)


def test_safetensors_with_text_encoder_and_bad_clips_named(world, tmp_path):
    root = os.path.dirname(world)
    table = pq.read_table(world)
    broken = table.set_column(table.schema.get_field_index("video_path"), "video_path",
                              [["media/nope.mp4"] + table.column("video_path").to_pylist()[1:]])
    manifest = os.path.join(root, "broken.parquet")
    pq.write_table(broken, manifest)
    bad = table.column("clip_id").to_pylist()[0]
    shape = reduced_config().prismaudio
    texts = []

    def text_encoder(text):  # one row per word, like a tokenizer would give
        texts.append(text)
        return np.full((len(text.split()), shape.text_dim), 0.5, np.float32)

    opts = FeatureJobOptions(seconds=SECONDS, out_dir=str(tmp_path / "st"), format="safetensors",
                             out_manifest=str(tmp_path / "m.parquet"))
    with pytest.raises(BadClipError, match=rf"clip '{bad}' \(.*nope.mp4\): media file is missing"):
        run_feature_job(_cfg(manifest), opts, encode=TinyVideoEncoder(WIDTH), text_encoder=text_encoder, progress=False)
    result = run_feature_job(_cfg(manifest, "data.on_bad_clip=skip"), opts, encode=TinyVideoEncoder(WIDTH),
                             text_encoder=text_encoder, progress=False)
    assert list(result.skipped) == [bad] and len(result.written) == 2
    assert texts[0].startswith("Semantic: ") and "Spatial: " in texts[0]  # the whole CoT, as caption_cot
    path = str(tmp_path / "st" / f"{result.written[0]}.safetensors")
    entries = read_entries(open(path, "rb").read(), path)
    assert set(entries) == {"sync_features", "text_features"}  # strings live in the header metadata
    assert entries["text_features"].shape == (len(texts[0].split()), shape.text_dim)
    with safe_open(path, "np") as f:
        assert f.metadata()["id"] == result.written[0] and f.metadata()["caption_cot"] == texts[0]
    cells = pq.read_table(str(tmp_path / "m.parquet")).column("features_path").to_pylist()
    assert cells == [None, None, None]  # no video_features anywhere: incomplete, cells left unset
    assert set(result.incomplete[result.written[0]]) == {"video_features"}


def test_cli_names_missing_checkpoint_and_bad_options(world, capsys):
    assert data_main(["features", "tiny", *reduced_overrides(), f"data.manifest={world}", "seconds=1.28"]) == 2
    assert "synchformer=PATH is required" in capsys.readouterr().err
    assert data_main(["features", "tiny", *reduced_overrides(), f"data.manifest={world}", "seconds=1.28",
                      "synchformer=/nowhere/synchformer_state_dict.pth"]) == 2
    assert "/nowhere/synchformer_state_dict.pth" in capsys.readouterr().err
    assert data_main(["features", f"data.manifest={world}"]) == 2  # the default preset: prismaudio
    assert "synchformer=PATH is required" in capsys.readouterr().err
    assert data_main(["features", "tiny", f"data.manifest={world}", "video_batch=many"]) == 2
    assert "option video_batch='many': expected int" in capsys.readouterr().err
    with pytest.raises(ValueError, match="format: 'mp4'"):
        parse_options(["format=mp4"])
    assert parse_options(["recompute=true", "seconds=9"]).recompute is True


def _tiny_t5gemma(path: str):
    """A random-weight T5-Gemma (2 layers, width 32) and a word-level tokenizer, saved by transformers."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5GemmaConfig, T5GemmaForConditionalGeneration, T5GemmaModuleConfig

    words = ["<pad>", "<eos>", "<bos>", "<unk>", "semantic:", "temporal:", "aesthetic:", "spatial:", "a", "bell"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                   unk_token="<unk>")
    module = dict(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
                  sliding_window=64, max_position_embeddings=128)
    torch.manual_seed(0)
    model = T5GemmaForConditionalGeneration(T5GemmaConfig(encoder=T5GemmaModuleConfig(**module),
                                                          decoder=T5GemmaModuleConfig(**module),
                                                          vocab_size=len(words))).eval()
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return model, fast


def test_t5gemma_text_features_from_a_local_directory(world, tmp_path):
    from orchestrator.data.text_features import T5GemmaText

    model, tokenizer = _tiny_t5gemma(str(tmp_path / "t5g"))
    result = run_feature_job(_cfg(world), FeatureJobOptions(seconds=SECONDS, out_dir=str(tmp_path / "f"),
                                                            t5gemma=str(tmp_path / "t5g"), split="train"),
                             encode=TinyVideoEncoder(WIDTH), progress=False)
    clip_id = result.written[0]
    saved = np.load(tmp_path / "f" / f"{clip_id}.npz")
    cot = str(saved["caption_cot"])
    with torch.no_grad():
        expected = model.get_encoder()(**tokenizer([cot], return_tensors="pt")).last_hidden_state[0].numpy()
    assert saved["text_features"].shape == (len(cot.split()), 32)
    np.testing.assert_allclose(saved["text_features"], expected, rtol=1e-5, atol=1e-6)
    assert result.incomplete[clip_id] == ["video_features"]
    with pytest.raises(FileNotFoundError, match="t5gemma=/nowhere: not a local directory"):
        T5GemmaText("/nowhere")
