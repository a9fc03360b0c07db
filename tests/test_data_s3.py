"""SynthScenes written to and read back from S3 (a local moto server on 127.0.0.1)."""
import socket

import numpy as np
import pytest

from orchestrator.data.cli import main as data_main
from orchestrator.data.config import DataConfig, S3Config, SynthConfig
from orchestrator.data.reader import ClipReader
from orchestrator.data.storage import filesystem
from orchestrator.data.synth import write_synthscenes

TINY = SynthConfig(n=6, seed=5, min_duration_s=1.0, max_duration_s=1.0, fps=12.5, size=32)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    from moto.server import ThreadedMotoServer

    env = pytest.MonkeyPatch()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        env.setenv(key, value)
    env.delenv("AWS_PROFILE", raising=False)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    cfg = S3Config(endpoint_url=f"http://127.0.0.1:{port}")
    filesystem("s3://bucket", cfg).mkdir("bucket")
    yield cfg
    server.stop()
    env.undo()


def test_write_to_s3_and_read_back_equals_local(s3, tmp_path):
    url = write_synthscenes("s3://bucket/prefix/tiny", TINY, s3, progress=False)
    assert url == "s3://bucket/prefix/tiny/manifest.parquet"
    local = write_synthscenes(str(tmp_path / "tiny"), TINY, progress=False)
    fs = filesystem(url, s3)
    assert fs.cat_file(url) == open(local, "rb").read()
    assert len(fs.ls("bucket/prefix/tiny/media")) == 2 * TINY.n

    remote_reader = ClipReader(DataConfig(manifest=url, s3=s3))
    local_reader = ClipReader(DataConfig(manifest=local))
    assert remote_reader.clip_ids() == local_reader.clip_ids()
    for remote, here in zip(remote_reader.load_split("train"), local_reader.load_split("train")):
        assert remote.video_path.startswith("s3://bucket/prefix/tiny/media/")
        np.testing.assert_array_equal(remote.frames, here.frames)
        np.testing.assert_array_equal(remote.audio, here.audio)
        assert remote.cot == here.cot and remote.meta == here.meta


def test_missing_s3_object_names_clip_and_url(s3):
    url = write_synthscenes("s3://bucket/broken", SynthConfig(**{**TINY.__dict__, "n": 2}), s3, progress=False)
    reader = ClipReader(DataConfig(manifest=url, s3=s3))
    clip_id = reader.clip_ids()[0]
    audio_url = f"s3://bucket/broken/{reader.row(clip_id)['audio_path']}"
    filesystem(url, s3).rm(audio_url)
    with pytest.raises(ValueError, match=clip_id) as info:
        reader.load(clip_id)
    assert audio_url in str(info.value)


def test_cli_synth_to_s3_and_summary(s3, capsys):
    endpoint = f"data.s3.endpoint_url={s3.endpoint_url}"
    assert data_main(["synth", "tiny", "run_dir=s3://bucket/cli", "n=2", endpoint]) == 0
    assert data_main(["summary", "tiny", "manifest=s3://bucket/cli/manifest.parquet", endpoint]) == 0
    assert "clips: 2" in capsys.readouterr().out


def test_features_job_merges_reference_files_on_s3(s3, tmp_path):
    """`prismrl data features` on an s3:// manifest: sync features computed, the reference's .npz
    (under the manifest's prefix) merged, files and the rewritten manifest on S3, read back."""
    from helpers.prismaudio_world import random_features, reduced_config, reduced_overrides, write_reference_npz
    from helpers.tiny_video_encoder import TinyVideoEncoder
    from orchestrator.config import load_config
    from orchestrator.data.features_job import FeatureJobOptions, run_feature_job

    synth = SynthConfig(n=2, seed=1, min_duration_s=1.5, max_duration_s=1.5, fps=25.0, size=32)
    url = write_synthscenes("s3://bucket/feat", synth, s3, progress=False)
    shape = reduced_config().prismaudio
    fs = filesystem(url, s3)
    ids = ClipReader(DataConfig(manifest=url, s3=s3)).clip_ids()
    for i, clip_id in enumerate(ids):
        write_reference_npz(str(tmp_path / "r.npz"), clip_id, random_features(shape, 4, seed=i), cot="Semantic: s3")
        fs.put_file(str(tmp_path / "r.npz"), f"s3://bucket/feat/ref/{clip_id}.npz")
    cfg = load_config("tiny", reduced_overrides() + [f"data.manifest={url}", f"data.s3.endpoint_url={s3.endpoint_url}"])
    result = run_feature_job(cfg, FeatureJobOptions(seconds=1.28, merge_from="ref"),
                             encode=TinyVideoEncoder(shape.sync_dim), progress=False)
    assert result.written == ids and not result.incomplete and result.manifest == url
    clip = ClipReader(DataConfig(manifest=url, s3=s3)).load(ids[0])
    assert clip.features["sync_features"].shape == (shape.sync_frames, shape.sync_dim)
    assert clip.features["caption_cot"] == "Semantic: s3"
    assert fs.exists(f"s3://bucket/feat/features/{ids[1]}.npz")
