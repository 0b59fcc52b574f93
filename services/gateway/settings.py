"""Settings of the gateway: body limit, default rate limit, key and quota caches, bootstrap key file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from dreamforge.settings import PlatformSettings

MIB = 1024 * 1024


class GatewaySettings(PlatformSettings):
    """`PlatformSettings` plus what only the gateway reads (env `DREAMFORGE_<FIELD>`)."""

    max_body_bytes: int = Field(default=20 * MIB, ge=1024, description="Largest request body accepted (413 above)")
    body_timeout_s: float = Field(default=30.0, gt=0,
                                  description="Longest wait for the next chunk of a request body (408 after)")
    rate_limit_per_minute: int = Field(default=600, ge=1, description="Default sustained requests/minute per key")
    rate_limit_burst: int = Field(default=60, ge=1, description="Default token-bucket capacity per key")
    key_cache_ttl_s: float = Field(
        default=1.0, ge=0.0,
        description="How long a looked-up API key is trusted without asking the DB (bounds revocation delay)",
    )
    quota_cache_s: float = Field(
        default=1.0, ge=0.0,
        description="How long billing's quota allowance for a tenant is spent without asking billing again "
                    "(0 = ask before every skill call; see billing_client.QuotaGate)",
    )
    backend_timeout_s: float = Field(default=30.0, gt=0, description="Deadline of each call to an internal service")
    health_timeout_s: float = Field(default=1.0, gt=0, description="Timeout of each check behind GET /health")

    @property
    def admin_key_file(self) -> Path:
        """Where the bootstrap admin key is written (mode 0600) on first start."""
        return self.home / "admin-key"
