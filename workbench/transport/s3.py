"""S3 as the job's storage: the output layout goes under ``s3://bucket/<prefix>/<job-id>/``, inputs come from S3.

boto3 is imported lazily (see :mod:`workbench.transport.aws_sdk`), so local jobs never load it.
"""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path, PurePosixPath
from typing import Any

from workbench.errors import RunnerError
from workbench.transport import aws_sdk as aws
from workbench.transport.storage import Storage

log = logging.getLogger(__name__)

mimetypes.add_type("video/mp4", ".mp4")
mimetypes.add_type("text/csv", ".csv")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")`` (no leading or trailing slash on the key)."""
    if not uri.startswith("s3://"):
        raise RunnerError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise RunnerError(f"no bucket in {uri!r}")
    return bucket, key.strip("/")


class S3Storage(Storage):
    """Uploads the output layout under an S3 prefix, keeping relative paths."""

    def __init__(self, uri: str, client: Any = None) -> None:
        self.source = uri
        self.bucket, self.prefix = split_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("s3")
        return self._client

    def key_for(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def upload(self, local_dir: Path) -> None:
        files = sorted(p for p in Path(local_dir).rglob("*") if p.is_file())
        total = 0
        for path in files:
            relative = path.relative_to(local_dir).as_posix()
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            try:
                self.client.upload_file(
                    str(path), self.bucket, self.key_for(relative), ExtraArgs={"ContentType": content_type}
                )
            except aws.sdk_errors() as exc:
                raise RunnerError(f"could not upload {relative} to {self.uri}: {aws.error_message(exc)}") from exc
            total += path.stat().st_size
        log.info("uploaded %d files (%.1f MB) to %s", len(files), total / 1e6, self.uri)

    def fetch(self, dest_dir: Path) -> Path:
        return download(self.source, dest_dir, self._client)


def download(uri: str, dest_dir: Path, client: Any = None) -> Path:
    """Download one S3 object into ``dest_dir`` (keeping its file name) and return the local path.

    A URI ending in ``/`` names a prefix: everything under it is downloaded into ``dest_dir/<last part>/``.
    """
    if uri.endswith("/"):
        bucket, prefix = split_s3_uri(uri)
        return download_tree(uri, Path(dest_dir) / PurePosixPath(prefix).name, client)
    bucket, key = split_s3_uri(uri)
    if not key:
        raise RunnerError(f"{uri!r} names a bucket, not an object")
    client = client or aws.client("s3")
    dest = Path(dest_dir) / PurePosixPath(key).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        client.download_file(bucket, key, str(dest))
    except aws.sdk_errors() as exc:
        code = aws.error_code(exc)
        if code in ("404", "NoSuchKey", "NotFound"):
            raise RunnerError(f"input not found: {uri}") from exc
        if code in ("403", "AccessDenied"):
            raise RunnerError(f"access denied to input {uri}; the job role may not read it") from exc
        raise RunnerError(f"could not download {uri}: {aws.error_message(exc)}") from exc
    log.info("downloaded %s (%d bytes)", uri, dest.stat().st_size)
    return dest


def list_keys(uri: str, client: Any = None) -> list[tuple[str, int]]:
    """``(relative path, size)`` of every object under the prefix ``uri``, in key order."""
    bucket, prefix = split_s3_uri(uri)
    client = client or aws.client("s3")
    base = f"{prefix}/" if prefix else ""
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base):
        for item in page.get("Contents", []):
            found.append((item["Key"][len(base):], item["Size"]))
    return sorted(found)


def download_tree(uri: str, dest_dir: Path, client: Any = None) -> Path:
    """Download everything under the prefix ``uri`` into ``dest_dir``, keeping relative paths.

    Files already there with the same size are skipped, so a second call only fetches what is new.
    """
    bucket, prefix = split_s3_uri(uri)
    client = client or aws.client("s3")
    dest_dir = Path(dest_dir)
    entries = list_keys(uri, client)
    if not entries:
        raise RunnerError(f"nothing found under {uri}")
    root = dest_dir.resolve()
    for relative, size in entries:
        target = (dest_dir / relative).resolve()
        if root not in target.parents:
            raise RunnerError(f"refusing to write {relative!r} outside {dest_dir}")
        if target.exists() and target.stat().st_size == size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        key = f"{prefix}/{relative}" if prefix else relative
        client.download_file(bucket, key, str(target))
    return dest_dir
