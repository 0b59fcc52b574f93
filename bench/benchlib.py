"""What the benchmarks share: percentiles, a whole platform's settings on free ports, an app key
on it, the `--skills` and `--client` arguments of the skill benchmarks, and the lean HTTP client.

The scripts run as `python bench/<name>.py`, so this module is imported as `benchlib`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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


_json_dumps = json.dumps  # `StdlibClient.post` takes a parameter named `json`, as httpx's does

#: `--client` choices: the HTTP client a skill benchmark times its requests with.
CLIENTS = ("stdlib", "httpx")


class StdlibResponse:
    """What the benchmarks read of a response, as httpx names it."""

    def __init__(self, status_code: int, content: bytes) -> None:
        self.status_code = status_code
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}: {self.content[:500]!r}")


class StdlibClient:
    """JSON POSTs over one keep-alive connection with the standard library's `http.client`.

    Why: a benchmark of the gateway's overhead should time the gateway, not its HTTP client.
    httpx spends about 2 ms of CPU per request on 2 cores and an empty round trip through the
    gateway's own HTTP server takes 0.8 ms with it against 0.3 ms with this client
    (`bench/stack_floor.py`). The call blocks the benchmark's event loop while it runs, which
    is what a benchmark at concurrency 1 wants: nothing else of the benchmark's runs meanwhile.
    The platform's processes log to files, not to pipes this process reads. A connection idle
    for `IDLE_S` is opened anew before the next call, since the server may have closed it
    (uvicorn keeps an idle connection 5 s). Same call shape as `httpx.AsyncClient.post`, so
    `--client` swaps one for the other.
    """

    IDLE_S = 2.0

    def __init__(self, base_url: str, timeout: float = 60) -> None:
        url = urlsplit(base_url)
        self._connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=timeout)
        self._last_used = 0.0

    async def post(self, path: str, json: Any, headers: dict[str, str]) -> StdlibResponse:
        if time.monotonic() - self._last_used > self.IDLE_S:
            self._connection.close()  # the next request connects again
        body = _json_dumps(json).encode()
        self._connection.request("POST", path, body=body, headers={**headers, "content-type": "application/json"})
        response = self._connection.getresponse()
        content = response.read()
        self._last_used = time.monotonic()
        return StdlibResponse(response.status, content)

    async def aclose(self) -> None:
        self._connection.close()


def timing_client(name: str, base_url: str) -> StdlibClient | httpx.AsyncClient:
    """The `--client` a skill benchmark times its requests with (see `StdlibClient`)."""
    return StdlibClient(base_url) if name == "stdlib" else httpx.AsyncClient(base_url=base_url, timeout=60)
