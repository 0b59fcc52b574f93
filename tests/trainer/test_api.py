"""The training API through the gateway: a job queued over HTTP, watched over the WebSocket,
registered, promoted and then served by inference; cancel; policies; 4xx naming the field."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from dreamforge.images import to_data_url
from dreamforge.world import get_sample
from tests.helpers import eventually
from tests.trainer.conftest import COLOUR_AND_SHORT, TINY, Stack, needs_model

pytestmark = needs_model


def ws_url(stack: Stack, job_id: str, key: str) -> str:
    return stack.base_url.replace("http://", "ws://") + f"/v1/training/jobs/{job_id}/stream?api_key={key}"


async def test_a_job_over_http_streams_progress_and_its_version_is_served(stack: Stack) -> None:
    _, key = await stack.tenant_key()
    async with stack.client(key) as c:
        assert (await c.post("/v1/models", json={"name": "shapes"})).status_code == 201
        reply = await c.post("/v1/training/jobs", json={
            "model": "shapes", "method": "grpo", "reward_function": COLOUR_AND_SHORT,
            "config": {**TINY, "gate": {"min_gain": -1.0, "max_skill_drop": 1.0}}})
        assert reply.status_code == 201, reply.text
        job = reply.json()
        assert job["status"] in ("queued", "running") and job["config"]["beta"] > 0
        frames: list[dict[str, Any]] = []
        async with websockets.connect(ws_url(stack, job["id"], key)) as socket:
            async with asyncio.timeout(150):
                async for raw in socket:
                    frames.append(json.loads(raw))
        assert frames[0]["type"] == "job"
        steps = [f["event"]["step"] for f in frames if f["type"] == "training.progress"]
        history = [p["step"] for p in frames[0]["job"]["history"]]
        assert sorted(set(steps + history)) == [1, 2]
        assert frames[-1]["type"] == "training.finished" and frames[-1]["event"]["promoted"]
        done = (await c.get(f"/v1/training/jobs/{job['id']}")).json()
        assert done["status"] == "succeeded" and done["result_version"] == 1 and done["gate"]["passed"]
        listed = (await c.get("/v1/training/jobs", params={"model": "shapes"})).json()
        assert [j["id"] for j in listed["jobs"]] == [job["id"]]
        image = to_data_url(get_sample("test", 0, 96).image)

        async def served_version() -> int:
            answer = await c.post("/v1/query", json={"model": "shapes", "image_url": image,
                                                     "question": "what colour is the circle?"})
            assert answer.status_code == 200, answer.text
            return int(answer.json()["version"])

        assert await eventually(lambda: served_version(), timeout_s=30) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "shapes", "method": "ppo"}, "method"),
    ({"model": "shapes", "method": "grpo", "reward_function": COLOUR_AND_SHORT, "config": {"stepz": 1}},
     "config.stepz"),
    ({"model": "shapes", "method": "grpo",
      "reward_function": {"terms": [{"metric": "exact_match", "weight": "heavy"}]}}, "reward_function.terms[0].weight"),
    ({"model": "shapes", "method": "grpo"}, "reward_function"),
    ({"model": "shapes", "method": "sft", "config": {"steps": 0}}, "config.steps"),
])
async def test_bad_jobs_are_400_naming_the_field(stack: Stack, body: dict[str, Any], field: str) -> None:
    _, key = await stack.tenant_key()
    async with stack.client(key) as c:
        reply = await c.post("/v1/training/jobs", json=body)
    assert reply.status_code == 400, reply.text
    assert field in reply.json()["error"]["message"]


async def test_cancel_a_running_job_registers_nothing(stack: Stack) -> None:
    _, key = await stack.tenant_key()
    async with stack.client(key) as c:
        assert (await c.post("/v1/models", json={"name": "long"})).status_code == 201
        job = (await c.post("/v1/training/jobs", json={
            "model": "long", "method": "sft", "config": {**TINY, "steps": 500}})).json()

        async def running() -> bool:
            got = (await c.get(f"/v1/training/jobs/{job['id']}")).json()
            return bool(got["status"] == "running")

        await eventually(running, timeout_s=60, interval_s=0.2)
        reply = await c.post(f"/v1/training/jobs/{job['id']}/cancel")
        assert reply.status_code == 200, reply.text

        async def cancelled() -> dict[str, Any] | None:
            got = (await c.get(f"/v1/training/jobs/{job['id']}")).json()
            return got if got["status"] == "cancelled" else None

        got = await eventually(cancelled, timeout_s=30, interval_s=0.2)
        assert got["result_version"] == 0
        assert (await c.get("/v1/models/long/versions")).json()["versions"] == []
        again = await c.post(f"/v1/training/jobs/{job['id']}/cancel")
        assert again.status_code == 409


async def test_policy_round_trip_and_validation(stack: Stack) -> None:
    _, key = await stack.tenant_key()
    async with stack.client(key) as c:
        assert (await c.post("/v1/models", json={"name": "online"})).status_code == 201
        fresh = await c.get("/v1/training/policy", params={"model": "online"})
        assert fresh.status_code == 200 and fresh.json()["enabled"] is False
        put = await c.put("/v1/training/policy", json={
            "model": "online", "every_n_rewards": 8, "min_rewards": 4, "reward_function": COLOUR_AND_SHORT,
            "config": {"steps": 3}})
        assert put.status_code == 200, put.text
        got = (await c.get("/v1/training/policy", params={"model": "online"})).json()
        assert got["enabled"] and got["every_n_rewards"] == 8 and got["config"]["source"] == "rewards"
        assert got["pending_rewards"] == 0
        bad = await c.put("/v1/training/policy", json={"model": "online", "enabled": True})
        assert bad.status_code == 400 and "every_n_rewards" in bad.json()["error"]["message"]
        missing = await c.get("/v1/training/policy", params={"model": "nope"})
        assert missing.status_code == 404
        _, app_key = await stack.tenant_key(("app",))
    async with stack.client(app_key) as c:
        assert (await c.get("/v1/training/jobs")).status_code == 403


def _sdk_and_cli(base_url: str, key: str) -> tuple[int, str, str]:
    from click.testing import CliRunner

    from dreamforge.cli import main
    from dreamforge.client import DreamForge, DreamForgeError

    with DreamForge(api_key=key, base_url=base_url) as client:
        try:
            client.train("no-such-model", "sft")
            status = 0
        except DreamForgeError as exc:
            status = exc.status
        listed = client.training_jobs()
    out = CliRunner().invoke(main, ["--api-key", key, "--url", base_url, "train", "status"])
    return status, json.dumps(listed), out.output


async def test_sdk_and_cli_reach_the_training_api(stack: Stack) -> None:
    _, key = await stack.tenant_key()
    status, listed, cli_output = await asyncio.to_thread(_sdk_and_cli, stack.base_url, key)
    assert status == 404
    assert json.loads(listed) == {"jobs": [], "next_page_token": ""}
    assert json.loads(cli_output) == {"jobs": [], "next_page_token": ""}
