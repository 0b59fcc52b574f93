"""Registry-only settings (where artifacts live, how big they may be), on top of the
platform's `DREAMFORGE_*` settings so one environment configures the whole process."""

from __future__ import annotations

from pydantic import Field

from dreamforge.settings import PlatformSettings

MIB = 1024 * 1024


class RegistrySettings(PlatformSettings):
    artifact_store: str = Field(
        default="",
        description="Where artifacts live: empty = local directory $home/artifacts, "
                    "an absolute path or file:// URL = that directory, s3://bucket/prefix = S3",
    )
    s3_endpoint_url: str = Field(default="", description="S3-compatible endpoint (MinIO, ...); empty = AWS")
    max_artifact_bytes: int = Field(default=512 * MIB, gt=0, description="Largest artifact CreateVersion accepts")
    artifact_chunk_bytes: int = Field(default=1 * MIB, gt=0, le=4 * MIB,
                                      description="Chunk size of the GetArtifact stream")
