"""Cached-feature files (manifest column `features_path`): a reference-style `.npz` and a
`.safetensors` read through the clip reader; a missing key, a wrong shape or a missing file is
refused naming the clip and the key (or file)."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from safetensors.numpy import save_file

from orchestrator.config import load_config
from orchestrator.data.config import DataConfig
from orchestrator.data.features import FeatureFileError, parse_features
from orchestrator.data.reader import BadClipError, ClipReader
from orchestrator.data.synth import write_synthscenes
from policies.prismaudio.policy import PrismAudioPolicy
from helpers.prismaudio_world import add_feature_column, random_features, reduced_config, write_reference_npz


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("feat")
    cfg = load_config("tiny", [f"run_dir={root}", "data.synth.n=3"])
    manifest = write_synthscenes(str(root / "data"), cfg.data.synth, cfg.data.s3, progress=False)
    return add_feature_column(manifest, reduced_config().prismaudio)


def _reader(manifest):
    return ClipReader(DataConfig(manifest=manifest, cache_decoded=False))


def test_reference_npz_reads_into_clip_features_and_conditions_the_policy(world):
    reader = _reader(world)
    clip = reader.load(reader.clip_ids()[0])
    shape = reduced_config().prismaudio
    assert clip.features["video_features"].shape == (shape.video_frames, shape.video_dim)
    assert clip.features["sync_features"].dtype == np.float32
    assert clip.features["caption_cot"].startswith("Semantic:") and clip.features["id"] == clip.clip_id
    assert "latent" not in clip.features  # None in the reference's file: an object array, never unpickled
    prepared = PrismAudioPolicy(reduced_config()).prepare([clip])
    assert prepared["text_features"].shape == (1, shape.text_tokens, shape.text_dim)
    assert int(prepared["text_mask"].sum()) == clip.features["text_features"].shape[0]


def test_safetensors_feature_file_reads(tmp_path):
    feats = random_features(reduced_config().prismaudio, 5, seed=0)
    save_file(feats, str(tmp_path / "c.safetensors"))
    out = parse_features((tmp_path / "c.safetensors").read_bytes(), "c.safetensors")
    assert all(np.array_equal(out[k], v) for k, v in feats.items())


def _rewrite(manifest, clip_id, features, tmp_name):
    """Point clip_id's features_path at a new file holding `features`."""
    root = os.path.dirname(manifest)
    write_reference_npz(os.path.join(root, tmp_name), clip_id, features, cot="x")
    table = pq.read_table(manifest)
    paths = [tmp_name if c == clip_id else p for c, p in zip(table.column("clip_id").to_pylist(),
                                                              table.column("features_path").to_pylist())]
    out = os.path.join(root, f"manifest-{tmp_name}.parquet")
    pq.write_table(table.set_column(table.schema.get_field_index("features_path"), "features_path",
                                    pa.array(paths)), out)
    return out


def test_missing_key_wrong_shape_and_missing_file_are_refused_naming_clip_and_key(world):
    reader = _reader(world)
    clip_id = reader.clip_ids()[1]
    feats = random_features(reduced_config().prismaudio, 4, seed=1)
    no_sync = {k: v for k, v in feats.items() if k != "sync_features"}
    with pytest.raises(BadClipError, match=rf"clip '{clip_id}'.*'sync_features': missing"):
        _reader(_rewrite(world, clip_id, no_sync, "nosync.npz")).load(clip_id)
    flat = {**feats, "video_features": feats["video_features"].reshape(-1)}
    with pytest.raises(BadClipError, match=rf"clip '{clip_id}'.*'video_features': has shape"):
        _reader(_rewrite(world, clip_id, flat, "flat.npz")).load(clip_id)
    os.remove(os.path.join(os.path.dirname(world), "flat.npz"))
    with pytest.raises(BadClipError, match=rf"clip '{clip_id}'.*flat.npz.*missing"):
        _reader(os.path.join(os.path.dirname(world), "manifest-flat.npz.parquet")).load(clip_id)
    # rows the policy does not expect: refused by the policy, naming clip and key
    short = {**feats, "sync_features": feats["sync_features"][:8]}
    clip = _reader(_rewrite(world, clip_id, short, "short.npz")).load(clip_id)
    with pytest.raises(ValueError, match=rf"clip '{clip_id}'.*'sync_features' has shape \[8, 128\]"):
        PrismAudioPolicy(reduced_config()).prepare([clip])
    with pytest.raises(FeatureFileError, match="not a readable .npz"):
        parse_features(b"not a zip", "x.npz")
