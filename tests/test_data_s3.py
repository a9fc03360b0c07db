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
