"""Content-addressed artifact storage (adapter weights, tarballs): the blob's key is its
SHA-256, so storing the same bytes twice keeps one copy, a key never changes meaning,
and a version row only needs the digest and size.

Two implementations of `ArtifactStore`:
- `LocalArtifactStore`: files at `<root>/<sha[:2]>/<sha>`, written to a temp file in the
  same directory and renamed into place, so a reader never sees a partial blob;
- `S3ArtifactStore`: objects at `<prefix>/<sha>` in an S3-compatible bucket; boto3 is
  blocking, so every call runs in a worker thread (`asyncio.to_thread`).
Blobs are never deleted by the registry (versions are immutable and may share bytes).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

DEFAULT_CHUNK = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ArtifactMissing(LookupError):
    """The store has no blob with this digest."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_digest(sha256: str) -> str:
    """A digest is 64 lowercase hex characters; anything else could escape the store's keyspace."""
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


class ArtifactStore(Protocol):
    async def put(self, data: bytes) -> str:
        """Store `data` (idempotently) and return its sha256 hex digest."""
        ...

    async def exists(self, sha256: str) -> bool: ...

    async def get(self, sha256: str) -> bytes:
        """The whole blob; raises ArtifactMissing."""
        ...

    async def open(self, sha256: str, chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        """An iterator over the blob in chunks; raises ArtifactMissing before yielding anything."""
        ...

    def describe(self) -> str: ...


class LocalArtifactStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return f"file://{self.root.resolve()}"

    def path(self, sha256: str) -> Path:
        check_digest(sha256)
        return self.root / sha256[:2] / sha256

    async def put(self, data: bytes) -> str:
        sha = sha256_of(data)
        await asyncio.to_thread(self._write, self.path(sha), data)
        return sha

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():  # content-addressed: same key, same bytes
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic on POSIX; a concurrent writer renames identical bytes
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path(sha256).is_file)

    async def get(self, sha256: str) -> bytes:
        path = self.path(sha256)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise ArtifactMissing(sha256) from None

    async def open(self, sha256: str, chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        path = self.path(sha256)
        try:
            f = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise ArtifactMissing(sha256) from None
        return _chunks(f, chunk_size)


class S3ArtifactStore:
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str = "", client: Any = None) -> None:
        if not bucket:
            raise ValueError("S3 artifact store needs a bucket (s3://bucket/prefix)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url or None)
        self.client = client

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def key(self, sha256: str) -> str:
        check_digest(sha256)
        return f"{self.prefix}/{sha256}" if self.prefix else sha256

    async def put(self, data: bytes) -> str:
        sha = sha256_of(data)
        key = self.key(sha)
        if not await self._head(key):
            # One PUT is atomic in S3; the checksum makes the server verify what it stored.
            digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
            await asyncio.to_thread(
                self.client.put_object, Bucket=self.bucket, Key=key, Body=data,
                ContentType="application/octet-stream", ChecksumSHA256=digest)
        return sha

    async def exists(self, sha256: str) -> bool:
        return await self._head(self.key(sha256))

    async def _head(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=key)
            return True
        except Exception as exc:
            if _is_not_found(exc):
                return False
            raise

    async def _get_object(self, sha256: str) -> Any:
        try:
            return await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=self.key(sha256))
        except Exception as exc:
            if _is_not_found(exc):
                raise ArtifactMissing(sha256) from None
            raise

    async def get(self, sha256: str) -> bytes:
        body = (await self._get_object(sha256))["Body"]
        try:
            data: bytes = await asyncio.to_thread(body.read)
        finally:
            body.close()
        return data

    async def open(self, sha256: str, chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        return _chunks((await self._get_object(sha256))["Body"], chunk_size)


async def _chunks(f: BinaryIO | Any, chunk_size: int) -> AsyncIterator[bytes]:
    try:
        while True:
            data = await asyncio.to_thread(f.read, chunk_size)
            if not data:
                return
            yield data
    finally:
        f.close()


def _is_not_found(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    code = str((response or {}).get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


def make_artifact_store(url: str, home: Path, *, endpoint_url: str = "") -> ArtifactStore:
    """`""` = `<home>/artifacts`; `/abs/path` or `file:///abs/path` = that directory;
    `s3://bucket/prefix` = S3 (credentials from the usual AWS environment)."""
    if not url:
        return LocalArtifactStore(home / "artifacts")
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return S3ArtifactStore(parts.netloc, parts.path, endpoint_url=endpoint_url)
    if parts.scheme == "file":
        return LocalArtifactStore(Path(parts.path))
    if parts.scheme == "" and url.startswith("/"):
        return LocalArtifactStore(Path(url))
    raise ValueError(f"DREAMFORGE_ARTIFACT_STORE={url!r}: use s3://bucket/prefix, file:///dir, an absolute "
                     "path, or leave it empty for $DREAMFORGE_HOME/artifacts")
