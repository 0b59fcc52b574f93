"""What `/health` and `/ready` report: each service's gRPC health and the gateway's dependencies.

All checks run concurrently, each bounded by `timeout_s`, so one hung dependency makes
the report say "down" instead of hanging the probe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from dreamforge.bus import EventBus
from dreamforge.db import Database
from dreamforge.grpcio import health_status
from dreamforge.settings import SERVICES, PlatformSettings


class HealthService:
    def __init__(self, settings: PlatformSettings, db: Database, redis: Redis, bus: EventBus,
                 timeout_s: float = 1.0, serving: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.bus = bus
        self.timeout_s = timeout_s
        self.serving = serving

    async def services(self) -> dict[str, str]:
        async def one(name: str) -> str:
            try:
                return await asyncio.wait_for(
                    health_status(self.settings.grpc_target(name), timeout_s=self.timeout_s), self.timeout_s + 0.5)
            except TimeoutError:
                return "UNREACHABLE"

        statuses = await asyncio.gather(*(one(name) for name in SERVICES))
        return dict(zip(SERVICES, statuses, strict=True))

    async def dependencies(self) -> dict[str, str]:
        async def nats() -> bool:
            if not self.bus.is_connected():
                return False
            await self.bus.nc.flush(timeout=max(1, round(self.timeout_s)))  # a round trip, not just a socket
            return True

        async def redis() -> bool:
            return bool(await self.redis.ping())

        checks: dict[str, Callable[[], Awaitable[bool]]] = {"nats": nats, "redis": redis, "database": self.db.ping}

        async def run(check: Callable[[], Awaitable[bool]]) -> str:
            try:
                return "ok" if await asyncio.wait_for(check(), self.timeout_s) else "down"
            except Exception:
                return "down"

        results = await asyncio.gather(*(run(check) for check in checks.values()))
        return dict(zip(checks, results, strict=True))

    async def ready(self) -> tuple[bool, dict[str, str]]:
        """Gateway readiness: its own dependencies answer and it is not draining."""
        deps = await self.dependencies()
        return self.serving() and all(v == "ok" for v in deps.values()), deps

    async def services_and_dependencies(self) -> tuple[dict[str, str], dict[str, str]]:
        return await asyncio.gather(self.services(), self.dependencies())
