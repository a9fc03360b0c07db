"""Checkpoint faults without a training run: a crash while assembling one, a file cut short or
corrupted afterwards, and S3 (a local moto server) stopped in the middle of an upload."""
from __future__ import annotations

import logging
import os
import socket
import threading
import time

import pytest

from orchestrator.training.checkpoint_store import (MARKER, CheckpointCorruptError, CheckpointStore,
                                                    CheckpointWriteError, resolve_resume)


def _assemble(store: CheckpointStore, step: int, files: int = 3, size: int = 4096) -> str:
    staging = store.staging_dir(step)
    os.makedirs(os.path.join(staging, "learner"), exist_ok=True)
    for i in range(files):
        with open(os.path.join(staging, "learner", f"part{i:02d}.bin"), "wb") as f:
            f.write(os.urandom(size))
    with open(os.path.join(staging, "controller.json"), "w") as f:
        f.write(f'{{"step": {step}}}')
    return staging


def test_partial_checkpoint_is_never_listed_and_damaged_ones_are_skipped_by_name(tmp_path, caplog):
    store = CheckpointStore(str(tmp_path / "ckpts"), keep=5)
    for step in (1, 2, 3):
        store.commit(step, _assemble(store, step))
    _assemble(store, 4)  # the driver died while writing checkpoint 4: its .tmp folder is left
    assert store.complete_steps() == [1, 2, 3]
    assert resolve_resume(store, "auto").endswith("ckpt-00000003")

    cut = tmp_path / "ckpts" / "ckpt-00000003" / "learner" / "part01.bin"
    with open(cut, "r+b") as f:
        f.truncate(100)  # cut short
    flipped = tmp_path / "ckpts" / "ckpt-00000002" / "controller.json"
    data = bytearray(flipped.read_bytes())
    data[2] ^= 0x20  # same size, one byte changed
    flipped.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="orchestrator.training.checkpoint_store"):
        chosen = resolve_resume(store, "auto")
    assert chosen.endswith("ckpt-00000001")
    warnings = [r.getMessage() for r in caplog.records]
    assert any("ckpt-00000003" in w and "learner/part01.bin" in w and "truncated" in w for w in warnings), warnings
    assert any("ckpt-00000002" in w and "controller.json" in w and "corrupted" in w for w in warnings), warnings
    with pytest.raises(CheckpointCorruptError, match="part01.bin"):
        resolve_resume(store, str(tmp_path / "ckpts" / "ckpt-00000003"))  # an explicit path is refused, naming the file
    (tmp_path / "ckpts" / "ckpt-00000001" / MARKER).write_text("{not json")
    assert resolve_resume(store, "auto") is None  # nothing intact left: start fresh rather than load garbage


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def moto_env(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_s3_stopped_during_upload_leaves_no_marker_and_resume_takes_previous(tmp_path, moto_env, caplog):
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # one botocore attempt per call (s3fs still retries): the failure shows in seconds, not a minute
    opts = {"client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    try:
        store = CheckpointStore("s3://ckpt-bucket/run", opts, keep=3)
        store.fs.mkdir("ckpt-bucket")
        store.commit(1, _assemble(store, 1, files=2))
        assert store.complete_steps() == [1]

        staging = _assemble(store, 2, files=16, size=128 * 1024)
        watcher = CheckpointStore("s3://ckpt-bucket/run", opts)
        stopped = threading.Event()

        def stop_when_upload_started():  # the server goes away once part of checkpoint 2 is up
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if watcher.fs.find("ckpt-bucket/run/ckpt-00000002"):
                        break
                except Exception:
                    pass
                watcher.fs.invalidate_cache()
                time.sleep(0.01)
            server.stop()
            stopped.set()

        thread = threading.Thread(target=stop_when_upload_started, daemon=True)
        thread.start()
        t0 = time.monotonic()
        with pytest.raises(CheckpointWriteError, match="ckpt-00000002.*not marked COMPLETE"):
            store.commit(2, staging)
        fail_s = time.monotonic() - t0
        thread.join(10)
        assert stopped.is_set()
        assert not os.path.exists(staging)  # the local staging copy is cleaned up either way

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)  # S3 is back (same data)
        server.start()
        fresh = CheckpointStore("s3://ckpt-bucket/run", opts)
        uploaded = fresh.fs.find("ckpt-bucket/run/ckpt-00000002")
        assert uploaded and not any(p.endswith(MARKER) for p in uploaded)  # partial, and never marked
        assert fresh.complete_steps() == [1]
        path = resolve_resume(fresh, "auto")
        assert open(os.path.join(path, "controller.json")).read() == '{"step": 1}'
        fresh.commit(3, _assemble(fresh, 3, files=1))  # the next checkpoint sweeps the partial upload away
        assert fresh.complete_steps() == [1, 3] and not fresh.fs.exists("ckpt-bucket/run/ckpt-00000002")
        print(f"upload failure detected after {fail_s:.2f} s")
    finally:
        server.stop()
