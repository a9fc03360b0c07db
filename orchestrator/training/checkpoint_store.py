"""Where full-state checkpoints live, written so that a reader never sees a partial one.

A checkpoint is a directory `ckpt-<step:08d>` holding the learner ranks' DeepSpeed state, EMA,
reference, RNG states and `controller.json` (step, data cursor, controller RNG, config), plus a
`COMPLETE` marker written last. Locally, the directory is assembled under a `.tmp` name and renamed
(atomic on one filesystem). On `s3://`, it is assembled locally, uploaded, and only then is the
marker object put: readers list only checkpoints whose marker exists.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from typing import Any

MARKER = "COMPLETE"
_NAME = re.compile(r"^ckpt-(\d{8})$")


def _fs(root: str, storage_options: dict[str, Any] | None):
    import fsspec

    if root.startswith("s3://"):
        return fsspec.filesystem("s3", **(storage_options or {})), True
    return fsspec.filesystem("file"), False


class CheckpointStore:
    """Complete checkpoints under one root (a local directory or an s3:// prefix)."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None, keep: int = 2):
        self.root = root.rstrip("/")
        self.fs, self.remote = _fs(self.root, storage_options)
        self.keep = keep
        if not self.remote:
            os.makedirs(self.root, exist_ok=True)

    def staging_dir(self, step: int) -> str:
        """A fresh local directory to assemble checkpoint `step` in."""
        if self.remote:
            return tempfile.mkdtemp(prefix=f"prismrl-ckpt-{step:08d}-")
        path = os.path.join(self.root, f"ckpt-{step:08d}.tmp")
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def commit(self, step: int, staging: str) -> str:
        """Publish an assembled checkpoint; returns its final location."""
        with open(os.path.join(staging, MARKER), "w") as f:
            json.dump({"step": step}, f)
        name = f"ckpt-{step:08d}"
        if self.remote:
            target = f"{self.root}/{name}"
            marker = os.path.join(staging, MARKER)
            for dirpath, _, files in os.walk(staging):
                for fn in files:
                    local = os.path.join(dirpath, fn)
                    if local == marker:
                        continue
                    rel = os.path.relpath(local, staging)
                    self.fs.put_file(local, f"{target}/{rel}")
            self.fs.put_file(marker, f"{target}/{MARKER}")  # last: the checkpoint is now visible
            shutil.rmtree(staging, ignore_errors=True)
        else:
            target = os.path.join(self.root, name)
            shutil.rmtree(target, ignore_errors=True)
            os.rename(staging, target)
        self.prune()
        return target

    def complete_steps(self) -> list[int]:
        """Steps of every complete checkpoint, ascending."""
        try:
            entries = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return []
        steps = []
        for entry in entries:
            m = _NAME.match(os.path.basename(entry.rstrip("/")))
            if m and self.fs.exists(f"{self.root}/{m.group(0)}/{MARKER}"):
                steps.append(int(m.group(1)))
        return sorted(steps)

    def latest(self) -> int | None:
        """Step of the newest complete checkpoint, or None."""
        steps = self.complete_steps()
        return steps[-1] if steps else None

    def fetch(self, step: int) -> str:
        """A local directory holding checkpoint `step` (downloaded from S3 when remote)."""
        name = f"ckpt-{step:08d}"
        if not self.remote:
            path = os.path.join(self.root, name)
            if not os.path.exists(os.path.join(path, MARKER)):
                raise FileNotFoundError(f"checkpoint {path} is missing or incomplete (no {MARKER} marker)")
            return path
        local = tempfile.mkdtemp(prefix=f"prismrl-resume-{step:08d}-")
        self.fs.get(f"{self.root}/{name}", local, recursive=True)
        inner = os.path.join(local, name)
        return inner if os.path.isdir(inner) else local

    def prune(self) -> None:
        """Delete all but the newest `keep` complete checkpoints (and stale .tmp folders locally)."""
        steps = self.complete_steps()
        for step in steps[: max(0, len(steps) - self.keep)]:
            self.fs.rm(f"{self.root}/ckpt-{step:08d}", recursive=True)
        if not self.remote:
            for name in os.listdir(self.root):
                if name.endswith(".tmp") and steps and name != f"ckpt-{steps[-1]:08d}.tmp":
                    shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)


def resolve_resume(store: CheckpointStore, resume: str) -> str | None:
    """A local checkpoint directory to resume from, per `train.resume` (none | auto | PATH)."""
    if resume in ("", "none"):
        return None
    if resume == "auto":
        step = store.latest()
        return store.fetch(step) if step is not None else None
    if not os.path.exists(os.path.join(resume, MARKER)):
        raise FileNotFoundError(f"train.resume: {resume} is not a complete checkpoint (no {MARKER} marker)")
    return resume
