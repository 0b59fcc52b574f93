"""What the benchmarks share: percentiles, a whole platform's settings on free ports, an app key
on it, and the `--skills` argument of the skill benchmarks.

The scripts run as `python bench/<name>.py`, so this module is imported as `benchlib`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import httpx

from dreamforge.infra import free_port
from dreamforge.settings import SERVICES, PlatformSettings


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile (0..1) of `values`; NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def pct(seconds: list[float], q: float) -> float:
    """`percentile` of durations in seconds, in milliseconds."""
    return percentile(seconds, q) * 1000


def platform_on_free_ports(home: Path, **overrides: Any) -> PlatformSettings:
    """Settings for a private platform (`dreamforge up` machinery) under `home`: NATS, Redis and
    every service on a free port, so a benchmark never meets another running platform."""
    ports = {f"{s}_port": free_port() for s in SERVICES if s != "gateway"}
    return PlatformSettings(
        home=home, nats_url=f"nats://127.0.0.1:{free_port()}", redis_url=f"redis://127.0.0.1:{free_port()}/0",
        gateway_http_port=free_port(), gateway_grpc_port=free_port(), **ports, **overrides)


async def app_key_headers(client: httpx.AsyncClient, admin_key: str, tenant_name: str = "bench") -> dict[str, str]:
    """Auth headers of a new tenant's `app` key, made through the admin API of `client`'s platform."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    tenant = (await client.post("/v1/admin/tenants", json={"name": tenant_name}, headers=admin)).json()
    key = (await client.post("/v1/admin/keys", json={"tenant_id": tenant["id"], "scopes": ["app"]},
                             headers=admin)).json()["key"]
    return {"Authorization": f"Bearer {key}"}


def chosen_skills(parser: argparse.ArgumentParser, text: str, known: tuple[str, ...]) -> list[str]:
    """The comma-separated `--skills` value as a list; a usage error naming any unknown skill."""
    chosen = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        parser.error(f"unknown skill(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return chosen
