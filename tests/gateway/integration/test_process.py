"""`python -m services.gateway` as an operator runs it: ready, serves its OpenAPI document,
writes the bootstrap admin key (0600) once and reuses it, and exits cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
from pathlib import Path

import httpx

from dreamforge.infra import ManagedService, free_ports
from tests.helpers import prometheus_value

ROOT = Path(__file__).resolve().parents[3]


def read(path: Path) -> str:
    return path.read_text()


async def run_once(env: dict[str, str], base_url: str, log: Path) -> tuple[str, int, str, str]:
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.gateway", cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
            for _ in range(300):
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.returncode is None, read(log)
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"gateway never became ready:\n{read(log)}")
            assert (await client.get("/docs/openapi.json")).json()["info"]["title"] == "DreamForge API"
            key = read(Path(env["DREAMFORGE_HOME"]) / "admin-key").strip()
            whoami = await client.get("/v1/whoami", headers={"Authorization": f"Bearer {key}"})
            assert whoami.status_code == 200 and whoami.json()["scopes"] == ["admin"]
            metrics = (await client.get(f"http://127.0.0.1:{env['DREAMFORGE_METRICS_PORT']}/metrics")).text
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    return key, code, read(log), metrics


async def test_process_starts_bootstraps_and_stops_on_sigterm(
        shared_nats_url: str, redis_server: ManagedService, tmp_path: Path) -> None:
    http_port, grpc_port, metrics_port = free_ports(3)
    env = {**os.environ, "DREAMFORGE_HOME": str(tmp_path / "home"), "DREAMFORGE_NATS_URL": shared_nats_url,
           "DREAMFORGE_REDIS_URL": redis_server.url, "DREAMFORGE_GATEWAY_HTTP_PORT": str(http_port),
           "DREAMFORGE_GATEWAY_GRPC_PORT": str(grpc_port), "DREAMFORGE_LOG_FORMAT": "json",
           "DREAMFORGE_METRICS_PORT": str(metrics_port)}
    base_url = f"http://127.0.0.1:{http_port}"
    first_key, code, log, metrics = await run_once(env, base_url, tmp_path / "first.log")
    assert code == 0, log
    # every request is in the HTTP metric, by route template and status
    assert prometheus_value(metrics, "http_server_request_duration_seconds_count", http_route="/v1/whoami",
                            http_request_method="GET", http_response_status_code="200") == 1
    assert prometheus_value(metrics, "http_server_request_duration_seconds_count", http_route="/ready",
                            http_response_status_code="200") == 1
    assert '"msg": "ready"' in log and '"msg": "stopped"' in log and "Traceback" not in log
    assert first_key not in log  # the key is written to the file, never logged
    key_file = tmp_path / "home" / "admin-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    second_key, code, log, _ = await run_once(env, base_url, tmp_path / "second.log")
    assert code == 0, log
    assert second_key == first_key  # restart: the same, still valid, admin key
