"""The official `moondream` client drives DreamForge's tuning API unchanged: finetune ->
rollouts (rewards from ground truth) -> train_step xN -> save_checkpoint -> query the checkpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import moondream as md
import pytest

from dreamforge.images import to_data_url
from dreamforge.world import get_sample
from tests.trainer.conftest import Stack, needs_model

pytestmark = needs_model


def tuning_loop(base_url: str, key: str) -> dict[str, Any]:
    """What a user's script does with the official client (blocking, as the client is)."""
    sample = get_sample("train", 3, 96)
    target = sample.objects[0]
    name = f"{target.colour} {target.shape}"
    ft = md.ft(key, name="point-at-shapes", rank=4, endpoint=f"{base_url}/v1/tuning")
    truth = {"boxes": [{"x_min": b[0], "y_min": b[1], "x_max": b[2], "y_max": b[3]}
                       for b in sample.detect_targets()[name]]}
    steps = []
    for step in range(3):
        response = ft.rollouts("point", image=sample.image, object=name, num_rollouts=4,
                               settings={"temperature": 1.0}, ground_truth=truth)
        assert len(response["rollouts"]) == 4 and len(response["rewards"]) == 4
        rl = {"mode": "rl", "request": response["request"], "rollouts": response["rollouts"],
              "rewards": response["rewards"]}
        sft = {"mode": "sft", "request": {"skill": "query", "image": sample.image,
                                          "question": "how many shapes are there?"},
               "target": {"answer": str(len(sample.objects))}}
        steps.append(ft.train_step([rl, sft], lr=1e-4))
        ft.log_metrics(step, {"reward": sum(response["rewards"]) / 4})
    saved = ft.save_checkpoint()
    listed = ft.list_checkpoints()
    again = md.ft(key, finetune_id=ft.finetune_id, endpoint=f"{base_url}/v1/tuning")
    vl = md.vl(api_key=key, endpoint=f"{base_url}/v1", model=ft.model(saved["checkpoint"]["step"]))
    answer = vl.query(sample.image, "what colour is the " + target.shape + "?")
    return {"ft": ft, "steps": steps, "saved": saved, "listed": listed, "again": again, "answer": answer,
            "image": to_data_url(sample.image)}


async def test_official_client_runs_an_rl_loop_and_queries_the_checkpoint(stack: Stack) -> None:
    _, key = await stack.tenant_key(("app", "ml"))
    out = await asyncio.to_thread(tuning_loop, stack.base_url, key)
    ft, steps, saved = out["ft"], out["steps"], out["saved"]
    assert [s["step"] for s in steps] == [1, 2, 3] and all(s["applied"] for s in steps)
    assert all(s["sft_loss"] is not None and s["grad_norm"] > 0 for s in steps)
    assert saved["ok"] and saved["checkpoint"]["step"] == 3
    assert [c["step"] for c in out["listed"]["checkpoints"]] == [3]
    assert out["again"].rank == 4 and out["again"].name == "point-at-shapes"
    assert isinstance(out["answer"]["answer"], str) and out["answer"]["answer"]
    async with stack.client(key) as c:
        reply = await c.post("/v1/query", json={"model": ft.model(3), "image_url": out["image"],
                                                "question": "what colour is the circle?"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["version"] == saved["checkpoint"]["version"]
        missing = await c.post("/v1/query", json={"model": ft.model(2), "image_url": out["image"],
                                                  "question": "what colour is the circle?"})
        assert missing.status_code == 404  # never saved
        bad = await c.post("/v1/tuning/train_step", json={"finetune_id": ft.finetune_id, "groups": [
            {"mode": "rl", "request": {"skill": "query", "image_url": out["image"], "question": "x"},
             "rollouts": [{"output": {"answer": "red"}}], "rewards": [1.0, 2.0]}]})
        assert bad.status_code == 400 and "groups[0].rewards" in bad.json()["error"]["message"]
        assert (await c.delete(f"/v1/tuning/finetunes/{ft.finetune_id}/checkpoints/3")).status_code == 204
        gone = await c.post("/v1/query", json={"model": ft.model(3), "image_url": out["image"],
                                               "question": "what colour is the circle?"})
        assert gone.status_code == 404
        assert (await c.delete(f"/v1/tuning/finetunes/{ft.finetune_id}")).status_code == 204
        assert (await c.get(f"/v1/tuning/finetunes/{ft.finetune_id}")).status_code == 404


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/tuning/finetunes", {"name": "x", "rank": 0}, "rank"),
    ("/v1/tuning/rollouts", {"finetune_id": "ft-0000000000000000", "request": {"skill": "query"}}, "not found"),
])
async def test_bad_tuning_calls_are_4xx(stack: Stack, path: str, body: dict[str, Any], field: str) -> None:
    _, key = await stack.tenant_key()
    async with stack.client(key) as c:
        reply = await c.post(path, json=body)
    assert reply.status_code in (400, 404), reply.text
    assert field in reply.json()["error"]["message"]
