"""The artifact stores' contract — content addressing, idempotent atomic puts, chunked
reads, missing blobs — on a local directory and on a real S3-compatible server (moto's
standalone server over HTTP, driven by boto3 exactly as in production)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from dreamforge.infra import free_port
from services.registry.artifacts import (
    ArtifactMissing,
    ArtifactStore,
    LocalArtifactStore,
    S3ArtifactStore,
    make_artifact_store,
)

BUCKET = "dreamforge-artifacts"


@pytest.fixture(scope="module")
def s3_client() -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield client
    finally:
        server.stop()


@pytest.fixture(params=["local", "s3"])
def artifact_store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    return S3ArtifactStore(BUCKET, f"t/{tmp_path.name}", client=request.getfixturevalue("s3_client"))


async def test_put_is_content_addressed_and_idempotent(artifact_store: ArtifactStore) -> None:
    data = b"adapter weights " * 1000
    sha = await artifact_store.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert await artifact_store.put(data) == sha
    assert await artifact_store.exists(sha)
    assert await artifact_store.get(sha) == data
    chunks = [c async for c in await artifact_store.open(sha, chunk_size=4096)]
    assert b"".join(chunks) == data and len(chunks) == 4 and all(len(c) == 4096 for c in chunks[:3])


async def test_missing_and_malformed_digests(artifact_store: ArtifactStore) -> None:
    absent = hashlib.sha256(b"never stored").hexdigest()
    assert not await artifact_store.exists(absent)
    with pytest.raises(ArtifactMissing):
        await artifact_store.get(absent)
    with pytest.raises(ArtifactMissing):
        await artifact_store.open(absent)
    with pytest.raises(ValueError, match="not a sha256"):
        await artifact_store.get("../../etc/passwd")


async def test_local_layout_keeps_one_file_and_no_temp_files(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "a")
    data = b"x" * 100_000
    shas = await asyncio.gather(*[store.put(data) for _ in range(8)])  # concurrent puts of the same bytes
    sha = shas[0]
    assert set(shas) == {sha}
    files = [p for p in (tmp_path / "a").rglob("*") if p.is_file()]
    assert files == [tmp_path / "a" / sha[:2] / sha]
    assert files[0].read_bytes() == data


async def test_s3_keys_are_prefix_slash_sha256(s3_client: Any) -> None:
    store = S3ArtifactStore(BUCKET, "/layout/", client=s3_client)
    sha = await store.put(b"one")
    await store.put(b"one")
    listed = s3_client.list_objects_v2(Bucket=BUCKET, Prefix="layout/")
    assert [o["Key"] for o in listed["Contents"]] == [f"layout/{sha}"]
    assert listed["Contents"][0]["Size"] == 3
    assert store.describe() == f"s3://{BUCKET}/layout"


def test_store_url_parsing(tmp_path: Path) -> None:
    default = make_artifact_store("", tmp_path)
    assert isinstance(default, LocalArtifactStore) and default.root == tmp_path / "artifacts"
    explicit = make_artifact_store(f"file://{tmp_path}/blobs", tmp_path)
    assert isinstance(explicit, LocalArtifactStore) and explicit.root == tmp_path / "blobs"
    s3 = make_artifact_store("s3://bucket/some/prefix", tmp_path, endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3ArtifactStore) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    assert s3.key("a" * 64) == "some/prefix/" + "a" * 64
    with pytest.raises(ValueError, match="DREAMFORGE_ARTIFACT_STORE"):
        make_artifact_store("ftp://x", tmp_path)
