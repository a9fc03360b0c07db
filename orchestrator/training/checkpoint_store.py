"""Where full-state checkpoints live, written so that a reader never sees a partial one.

A checkpoint is a directory `ckpt-<step:08d>` holding the learner ranks' DeepSpeed state, EMA,
reference, RNG states and `controller.json` (step, data cursor, controller RNG, config), plus a
`COMPLETE` marker written last, holding the manifest of every other file (size and SHA-256, see
checkpoint_manifest.py). Locally, the directory is assembled under a `.tmp` name and renamed
(atomic on one filesystem). On `s3://`, it is assembled locally, uploaded, and only then is the
marker object put: readers list only checkpoints whose marker exists. An upload that fails half
way leaves no marker (`CheckpointWriteError`), so the checkpoint is never listed.

`resume=auto` takes the newest complete checkpoint whose files match its manifest; one that does
not (a file cut short or corrupted since) is skipped with a warning naming it and the file.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from typing import Any

from orchestrator.training.checkpoint_manifest import build_manifest, manifest_problems

log = logging.getLogger(__name__)
MARKER = "COMPLETE"
_NAME = re.compile(r"^ckpt-(\d{8})$")


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written completely; it is not marked complete and never listed."""


class CheckpointCorruptError(RuntimeError):
    """A complete checkpoint's files no longer match its manifest."""


def _fs(root: str, storage_options: dict[str, Any] | None):
    import fsspec

    if root.startswith("s3://"):
        return fsspec.filesystem("s3", skip_instance_cache=True, **(storage_options or {})), True
    return fsspec.filesystem("file"), False


class CheckpointStore:
    """Complete checkpoints under one root (a local directory or an s3:// prefix)."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None, keep: int = 2):
        self.root = root.rstrip("/")
        self.fs, self.remote = _fs(self.root, storage_options)
        self.keep = keep
        if not self.remote:
            os.makedirs(self.root, exist_ok=True)

    def location(self, step: int) -> str:
        """Where checkpoint `step` is (or would be)."""
        return f"{self.root}/ckpt-{step:08d}" if self.remote else os.path.join(self.root, f"ckpt-{step:08d}")

    def staging_dir(self, step: int) -> str:
        """A fresh local directory to assemble checkpoint `step` in."""
        if self.remote:
            return tempfile.mkdtemp(prefix=f"prismrl-ckpt-{step:08d}-")
        path = os.path.join(self.root, f"ckpt-{step:08d}.tmp")
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def commit(self, step: int, staging: str) -> str:
        """Publish an assembled checkpoint (marker with its manifest last); returns its location.

        Raises CheckpointWriteError, naming the checkpoint and the cause, when an upload fails: no
        marker is written, so readers never list it."""
        manifest = build_manifest(staging, step, skip=(MARKER,))
        marker = os.path.join(staging, MARKER)
        with open(marker, "w") as f:
            json.dump(manifest, f, indent=1)
        target = self.location(step)
        if self.remote:
            try:
                for rel in manifest["files"]:
                    self.fs.put_file(os.path.join(staging, *rel.split("/")), f"{target}/{rel}")
                self.fs.put_file(marker, f"{target}/{MARKER}")  # last: the checkpoint is now visible
            except Exception as e:
                raise CheckpointWriteError(
                    f"checkpoint {target} was not written completely ({type(e).__name__}: {e}); "
                    f"it is not marked {MARKER} and will not be resumed from") from e
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        else:
            shutil.rmtree(target, ignore_errors=True)
            os.rename(staging, target)
        self.prune()
        return target

    def complete_steps(self) -> list[int]:
        """Steps of every checkpoint whose marker exists, ascending."""
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
        """Delete all but the newest `keep` complete checkpoints, incomplete uploads older than the
        newest complete one, and stale .tmp folders locally."""
        steps = self.complete_steps()
        for step in steps[: max(0, len(steps) - self.keep)]:
            self.fs.rm(f"{self.root}/ckpt-{step:08d}", recursive=True)
        if self.remote and steps:
            for entry in self.fs.ls(self.root, detail=False):
                m = _NAME.match(os.path.basename(entry.rstrip("/")))
                if m and int(m.group(1)) < steps[-1] and int(m.group(1)) not in steps:
                    self.fs.rm(f"{self.root}/{m.group(0)}", recursive=True)
        if not self.remote:
            for name in os.listdir(self.root):
                if name.endswith(".tmp") and steps and name != f"ckpt-{steps[-1]:08d}.tmp":
                    shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)

    def newest_intact(self) -> str | None:
        """A local directory of the newest complete checkpoint whose files match its manifest; each
        newer one that does not is skipped with a warning naming it and the file at fault."""
        for step in reversed(self.complete_steps()):
            path = None
            try:
                path = self.fetch(step)
                check_checkpoint(path)
            except (CheckpointCorruptError, OSError, ValueError) as e:
                log.warning("resume: skipping checkpoint %s: %s", self.location(step), e)
                if self.remote and path:
                    shutil.rmtree(path, ignore_errors=True)
                continue
            return path
        return None


def check_checkpoint(path: str) -> None:
    """Raise CheckpointCorruptError naming `path` and the file at fault when the checkpoint's files
    do not match the manifest in its marker (or the marker is unreadable)."""
    marker = os.path.join(path, MARKER)
    try:
        with open(marker) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointCorruptError(f"{marker} is unreadable ({type(e).__name__}: {e})") from None
    problems = manifest_problems(path, manifest)
    if problems:
        raise CheckpointCorruptError(f"{path}: " + "; ".join(problems))


def resolve_resume(store: CheckpointStore, resume: str) -> str | None:
    """A local checkpoint directory to resume from, per `train.resume` (none | auto | PATH)."""
    if resume in ("", "none"):
        return None
    if resume == "auto":
        return store.newest_intact()
    if not os.path.exists(os.path.join(resume, MARKER)):
        raise FileNotFoundError(f"train.resume: {resume} is not a complete checkpoint (no {MARKER} marker)")
    check_checkpoint(resume)
    return resume
