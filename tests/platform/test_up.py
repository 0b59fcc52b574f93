"""`dreamforge up` end to end, as a user runs it: from nothing (NATS and Redis started
from their wheels on free ports), through tenants, keys, models and aliases, a plain
NATS subscriber seeing the model updates, a registry crash, Ctrl-C, and a second start
that finds everything again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dreamforge.infra import port_open
from dreamforge.v1 import events_pb2
from tests.platform.harness import Up, platform_env_for, processes_using

pytestmark = pytest.mark.slow
HERE = Path(__file__).parent


@pytest.fixture
def platform_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = platform_env_for(tmp_path / "home")
    yield env
    for line in processes_using(Path(env["DREAMFORGE_HOME"])):
        os.kill(int(line.split(":")[0]), signal.SIGKILL)


def test_up_from_nothing_to_rollback_and_back(platform_env: dict[str, str]) -> None:
    env = platform_env
    home = Path(env["DREAMFORGE_HOME"])
    base = f"http://127.0.0.1:{env['DREAMFORGE_GATEWAY_HTTP_PORT']}"
    nats_port = int(env["DREAMFORGE_NATS_URL"].rsplit(":", 1)[1])
    assert not port_open("127.0.0.1", nats_port)

    up = Up(env)
    try:
        up.wait_for("DreamForge is up")
        assert any("nats      started" in line for line in up.lines)
        assert any("redis     started" in line for line in up.lines)
        key_file = home / "admin-key"
        assert (key_file.stat().st_mode & 0o777) == 0o600
        admin_key = key_file.read_text().strip()
        assert any(admin_key in line for line in up.lines)

        health = httpx.get(f"{base}/health", timeout=10).json()
        assert health["status"] == "ok", health
        assert set(health["services"]) == {"gateway", "registry", "inference", "feedback", "trainer", "billing"}
        assert all(v == "SERVING" for v in health["services"].values()), health
        assert all(v == "ok" for v in health["dependencies"].values()), health

        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)
        acme = admin.post("/v1/admin/tenants", json={"name": "acme"}).json()
        other = admin.post("/v1/admin/tenants", json={"name": "other"}).json()
        ml_key = admin.post("/v1/admin/keys", json={"tenant_id": acme["id"], "scopes": ["ml"]}).json()["key"]
        other_key = admin.post("/v1/admin/keys", json={"tenant_id": other["id"], "scopes": ["ml"]}).json()["key"]
        ml = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ml_key}"}, timeout=30)

        subscriber = subprocess.Popen(
            [sys.executable, str(HERE / "plain_subscriber.py"), env["DREAMFORGE_NATS_URL"],
             "dreamforge.v1.model.updated.>", "3"], stdout=subprocess.PIPE, text=True)
        assert subscriber.stdout is not None
        assert subscriber.stdout.readline().strip() == "subscribed"

        assert ml.post("/v1/models", json={"name": "shapes", "base_checkpoint": "/models/tiny"}).status_code == 201
        for i in (1, 2):
            r = ml.post("/v1/models/shapes/versions", json={"notes": f"v{i}", "artifact_base64": ""})
            assert r.status_code == 201, r.text
            assert r.json()["version"] == i
        assert ml.post("/v1/models/shapes/promote", json={"version": 1}).status_code == 200
        assert ml.post("/v1/models/shapes/promote", json={"version": 2}).status_code == 200
        rolled = ml.post("/v1/models/shapes/rollback", json={})
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["version"] == 1

        out, _ = subscriber.communicate(timeout=30)
        events = [json.loads(line) for line in out.splitlines()]
        assert len(events) == 3
        decoded = []
        for event in events:
            payload = events_pb2.ModelUpdated.FromString(bytes.fromhex(event["data"]))
            assert event["subject"] == f"dreamforge.v1.model.updated.{acme['id']}"
            assert event["headers"]["Nats-Msg-Id"] == payload.meta.event_id
            assert event["headers"]["traceparent"].startswith("00-")
            decoded.append((payload.action, payload.version, payload.alias))
        assert decoded == [("promote", 1, "production"), ("promote", 2, "production"), ("rollback", 1, "production")]

        # tenant isolation through the whole stack
        outsider = {"Authorization": f"Bearer {other_key}"}
        assert httpx.get(f"{base}/v1/models/shapes", headers=outsider).status_code == 404

        # a registry crash loses nothing: the supervisor restarts it and the data is there
        registry_pid = next(int(p.split(":")[0]) for p in processes_using(home) if "services.registry" in p)
        os.kill(registry_pid, signal.SIGKILL)
        up.wait_for("registry exited with code -9; restarting")
        deadline = time.monotonic() + 60
        while True:
            r = ml.get("/v1/models/shapes/aliases")
            if r.status_code == 200:
                break
            assert time.monotonic() < deadline, r.text
            time.sleep(0.3)
        aliases = {a["name"]: a["version"] for a in r.json()["aliases"]}
        assert aliases["production"] == 1
        assert len(ml.get("/v1/models/shapes/versions").json()["versions"]) == 2
    finally:
        code = up.interrupt()
    assert code == 0, "\n".join(up.lines)
    assert up.lines[-1] == "stopped"
    assert processes_using(home) == []
    assert not port_open("127.0.0.1", nats_port)

    # second start: same home, same data, same keys
    again = Up(env)
    try:
        again.wait_for("DreamForge is up")
        assert (home / "admin-key").read_text().strip() == admin_key
        r = httpx.get(f"{base}/v1/models/shapes/aliases", headers={"Authorization": f"Bearer {ml_key}"}, timeout=10)
        assert r.status_code == 200, r.text
        assert {a["name"]: a["version"] for a in r.json()["aliases"]}["production"] == 1
    finally:
        assert again.interrupt() == 0
    assert processes_using(home) == []
