"""Local or S3 storage behind one small interface (fsspec; s3fs for s3:// URLs).

S3 access comes from `S3Config` (endpoint, key, secret, region); empty fields fall back to the
usual AWS_* environment variables and botocore's own lookup.
"""
from __future__ import annotations

import os
import posixpath

import fsspec

from orchestrator.data.config import S3Config


def is_s3(url: str) -> bool:
    """True for s3:// URLs."""
    return url.startswith("s3://")


def filesystem(url: str, s3: S3Config | None = None) -> fsspec.AbstractFileSystem:
    """The filesystem that holds `url`: s3fs for s3:// (configured from `s3`), the local one otherwise."""
    if not is_s3(url):
        return fsspec.filesystem("file")
    s3 = s3 or S3Config()
    try:
        import s3fs
    except ImportError as e:  # pragma: no cover - s3fs is a project dependency
        raise RuntimeError(f"reading or writing {url} needs the s3fs package") from e
    client_kwargs = {"region_name": s3.region} if s3.region else {}
    return s3fs.S3FileSystem(
        key=s3.key or None,
        secret=s3.secret or None,
        endpoint_url=s3.endpoint_url or None,
        client_kwargs=client_kwargs,
    )


def join(base: str, relative: str) -> str:
    """`relative` under directory `base`; an absolute path or a URL in `relative` is returned as is."""
    if "://" in relative or os.path.isabs(relative):
        return relative
    if is_s3(base):
        return base.rstrip("/") + "/" + relative
    return os.path.join(base, relative)


def parent(url: str) -> str:
    """The directory that holds `url` (a local path or an s3:// URL)."""
    if is_s3(url):
        return "s3://" + posixpath.dirname(url[len("s3://") :].rstrip("/"))
    return os.path.dirname(os.path.abspath(url))


def read_bytes(url: str, s3: S3Config | None = None) -> bytes:
    """The whole content of a file; FileNotFoundError naming `url` when it is missing."""
    fs = filesystem(url, s3)
    try:
        return fs.cat_file(url)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {url}") from None


def write_bytes(url: str, data: bytes, s3: S3Config | None = None) -> None:
    """Write a whole file, creating local parent directories as needed."""
    fs = filesystem(url, s3)
    if not is_s3(url):
        os.makedirs(os.path.dirname(os.path.abspath(url)), exist_ok=True)
    fs.pipe_file(url, data)


def exists(url: str, s3: S3Config | None = None) -> bool:
    """Whether a file exists."""
    return bool(filesystem(url, s3).exists(url))
