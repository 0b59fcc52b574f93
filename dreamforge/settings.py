"""Platform settings, read from `DREAMFORGE_*` environment variables.

One settings object per process: `PlatformSettings` holds what every service needs
(where NATS, Redis and the database are, which ports the services use); a service
with settings of its own subclasses it. `masked()` is what gets logged at start-up,
with secrets hidden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("gateway", "registry", "inference", "feedback", "trainer", "billing")

#: Default gRPC port of each service (the gateway's is its public gRPC front).
DEFAULT_GRPC_PORTS = {
    "gateway": 50050,
    "registry": 50051,
    "inference": 50052,
    "feedback": 50053,
    "trainer": 50054,
    "billing": 50055,
}

_SECRET_WORDS = ("password", "secret", "token", "key")


class PlatformSettings(BaseSettings):
    """Settings shared by every service. Env var = `DREAMFORGE_` + field name, upper case."""

    model_config = SettingsConfigDict(env_prefix="DREAMFORGE_", extra="ignore")

    home: Path = Field(default=Path(".dreamforge"), description="Data directory of this installation")
    host: str = Field(default="127.0.0.1", description="Address the services bind to")
    nats_url: str = "nats://127.0.0.1:4222"
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = Field(
        default="",
        description="SQLAlchemy async URL; empty = one SQLite file per service under $home/data",
    )
    otlp_endpoint: str = Field(default="", description="OTLP gRPC endpoint for traces; empty = no export")
    trace_file: str = Field(default="", description="Append every span to this file as JSON lines; empty = none")
    metrics_port: int = Field(default=0, ge=0, le=65535,
                              description="Serve Prometheus metrics at http://<host>:<port>/metrics; 0 = off "
                                          "(one port per process: dreamforge/metrics.py)")
    log_level: str = "INFO"
    log_format: str = Field(default="json", description="json | text")

    gateway_http_port: int = 8080
    gateway_grpc_port: int = DEFAULT_GRPC_PORTS["gateway"]
    registry_port: int = DEFAULT_GRPC_PORTS["registry"]
    inference_port: int = DEFAULT_GRPC_PORTS["inference"]
    feedback_port: int = DEFAULT_GRPC_PORTS["feedback"]
    trainer_port: int = DEFAULT_GRPC_PORTS["trainer"]
    billing_port: int = DEFAULT_GRPC_PORTS["billing"]

    # Explicit host:port targets override host + port (e.g. "registry:50051" in Compose).
    registry_addr: str = ""
    inference_addr: str = ""
    feedback_addr: str = ""
    trainer_addr: str = ""
    billing_addr: str = ""

    max_deliveries: int = Field(default=5, description="Deliveries before an event goes to the dead-letter subject")
    shutdown_grace_s: float = Field(default=10.0, description="How long SIGTERM waits for in-flight work")

    @staticmethod
    def grpc_port_field(service: str) -> str:
        """The setting that holds `service`'s gRPC port (env var: DREAMFORGE_ + it, upper case)."""
        return "gateway_grpc_port" if service == "gateway" else f"{service}_port"

    def grpc_port(self, service: str) -> int:
        port: int = getattr(self, self.grpc_port_field(service))
        return port

    def grpc_target(self, service: str) -> str:
        """host:port where `service` answers gRPC."""
        explicit = getattr(self, f"{service}_addr", "")
        return explicit or f"{self.host}:{self.grpc_port(service)}"

    def database_url_for(self, service: str) -> str:
        """The database URL of `service`: the shared server by URL, or its own SQLite file."""
        if self.database_url:
            return self.database_url
        path = (self.home / "data" / f"{service}.db").resolve()
        return f"sqlite+aiosqlite:///{path}"

    def masked(self) -> dict[str, Any]:
        """Settings as a dict for the start-up log: passwords in URLs and secret fields hidden."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, str) and "://" in value:
                value = mask_url(value)
            elif any(word in name for word in _SECRET_WORDS) and value:
                value = "***"
            out[name] = str(value) if isinstance(value, Path) else value
        return out


def mask_url(url: str) -> str:
    """Replace the password of a URL with *** so it can be logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
