"""The manifest a checkpoint's `COMPLETE` marker holds: every file's size and SHA-256.

The marker is written last (after every file is in place), so a checkpoint whose marker exists
was finished; the manifest then tells a finished checkpoint from one damaged since (a file cut
short, overwritten, or removed), which `resume=auto` skips with a warning naming the file.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

CHUNK = 1 << 20


def file_digest(path: str) -> str:
    """SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def build_manifest(directory: str, step: int, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """{"step", "files": {relative path: {"size", "sha256"}}} of every file under `directory`
    (relative paths with '/'), except the names in `skip` at its top."""
    files: dict[str, dict[str, Any]] = {}
    for dirpath, _, names in os.walk(directory):
        for name in names:
            local = os.path.join(dirpath, name)
            rel = os.path.relpath(local, directory).replace(os.sep, "/")
            if rel in skip:
                continue
            files[rel] = {"size": os.path.getsize(local), "sha256": file_digest(local)}
    return {"step": int(step), "files": dict(sorted(files.items()))}


def manifest_problems(directory: str, manifest: dict[str, Any]) -> list[str]:
    """What is wrong with the files of `directory` against its manifest, one line each (empty = intact).

    A marker without a file list (written before manifests existed) only proves completion."""
    problems = []
    for rel, want in (manifest.get("files") or {}).items():
        local = os.path.join(directory, *rel.split("/"))
        if not os.path.isfile(local):
            problems.append(f"{rel} is missing")
            continue
        size = os.path.getsize(local)
        if size != want["size"]:
            problems.append(f"{rel} has {size} bytes, the manifest says {want['size']} (truncated or rewritten)")
        elif file_digest(local) != want["sha256"]:
            problems.append(f"{rel} does not match its SHA-256 in the manifest (corrupted)")
    return problems
