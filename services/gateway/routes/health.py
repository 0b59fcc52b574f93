"""`GET /health` (every service + the gateway's dependencies) and `GET /ready` (the gateway's own
readiness). No API key needed; 200 when all is well, 503 otherwise."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec

from services.gateway.auth import PUBLIC
from services.gateway.health import HealthService


class HealthReport(msgspec.Struct):
    status: str                      # ok | degraded
    services: dict[str, str]         # gateway, registry, ... -> SERVING | NOT_SERVING | UNREACHABLE | ...
    dependencies: dict[str, str]     # nats, redis, database -> ok | down


class Readiness(msgspec.Struct):
    ready: bool
    dependencies: dict[str, str]


class HealthController(Controller):
    tags = ["ops"]
    opt = {PUBLIC: True}

    @get("/health", operation_id="health", summary="Health of every service and of the gateway's dependencies",
         responses={503: ResponseSpec(HealthReport, generate_examples=False,
                                      description="Degraded: a service or dependency is down (see the report)")})
    async def health(self, health: HealthService) -> Response[HealthReport]:
        services, deps = await health.services_and_dependencies()
        ok = all(v == "SERVING" for v in services.values()) and all(v == "ok" for v in deps.values())
        return Response(HealthReport("ok" if ok else "degraded", services, deps), status_code=200 if ok else 503)

    @get("/ready", operation_id="ready", summary="Whether this gateway can take traffic",
         responses={503: ResponseSpec(Readiness, generate_examples=False,
                                      description="Not ready (starting, draining, or a dependency is down)")})
    async def ready(self, health: HealthService) -> Response[Readiness]:
        ready, deps = await health.ready()
        return Response(Readiness(ready, deps), status_code=200 if ready else 503)
