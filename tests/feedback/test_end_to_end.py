"""End to end on a whole platform (`dreamforge up`): serve real outputs of the default model, rate them
through the HTTP API with three raters (scores, a pairwise preference, a correction), and see the
`reward.scored` events on NATS with the right rewards, retrievable images and the agreement figure;
then ratings of a tenant's own model start its online training policy's GRPO job, whose version the
gate promotes and inference serves."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import krippendorff
import numpy as np
import pytest

from dreamforge.image_store import load_ref
from dreamforge.images import to_data_url
from dreamforge.rewards.matching import normalise
from dreamforge.world import get_sample
from tests.feedback.conftest import stream_events
from tests.platform.harness import Up, platform_env_for

REWARD = {"terms": [{"metric": "human_rating", "weight": 1.0}, {"metric": "pairwise_preference", "weight": 1.0},
                    {"metric": "exact_match", "weight": 2.0}]}
SCORES = {"rater_a": [5, 4, 2, 1, 3], "rater_b": [5, 5, 2, 1, 4], "rater_c": [4, 4, 1, 2, 3]}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, dict[str, str], Path]]:
    home = tmp_path_factory.mktemp("feedback-e2e") / "home"
    env = {**platform_env_for(home), "DREAMFORGE_EVAL_IMAGES": "2"}  # a short gate evaluation
    up = Up(env)
    try:
        up.wait_for("DreamForge is up", timeout_s=180)
        yield (f"http://127.0.0.1:{env['DREAMFORGE_GATEWAY_HTTP_PORT']}", (home / "admin-key").read_text().strip(),
               env, home)
    finally:
        assert up.interrupt() == 0, "\n".join(up.lines[-40:])


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def _wait_stored(c: httpx.Client, request_id: str) -> None:
    deadline = time.monotonic() + 30
    while c.get(f"/v1/feedback/outputs/{request_id}").status_code != 200:
        assert time.monotonic() < deadline, f"{request_id} never reached feedback"
        time.sleep(0.1)


def test_three_raters_to_reward_events(platform: tuple[str, str, dict[str, str], Path]) -> None:
    base, admin_key, env, home = platform
    with _client(base, admin_key) as admin:
        tenant = admin.post("/v1/admin/tenants", json={"name": "raters-inc"}).json()["id"]

        def key(*scopes: str) -> str:
            r = admin.post("/v1/admin/keys", json={"tenant_id": tenant, "scopes": list(scopes)})
            assert r.status_code == 201, r.text
            return str(r.json()["key"])

        app_key, raters = key("app", "ml"), {name: key("rater") for name in SCORES}
        assert admin.put("/v1/feedback/data/settings", params={"tenant_id": tenant},
                         json={"retention_days": 30, "queue_overlap": 3}).status_code == 200

    with _client(base, app_key) as app:
        rf = app.post("/v1/reward-functions", json={"name": "human", "definition": REWARD, "active": True})
        assert rf.status_code == 201, rf.text
        # serve: four images, plus the first question asked twice (two outputs of one input, for a preference)
        served: list[dict[str, Any]] = []
        truths: dict[str, str] = {}
        for i in range(4):
            sample = get_sample("test", i, 64)
            question = "how many shapes are there?"
            r = app.post("/v1/query", json={"image_url": to_data_url(sample.image), "question": question})
            assert r.status_code == 200, r.text
            assert r.headers["X-Request-Id"] == r.json()["request_id"]
            served.append(r.json())
            truths[r.json()["request_id"]] = str(len(sample.objects))
        twin = app.post("/v1/query", json={"image_url": to_data_url(get_sample("test", 0, 64).image),
                                           "question": "how many shapes are there?"}).json()
        served.append(twin)
        truths[twin["request_id"]] = truths[served[0]["request_id"]]
        for s in served:
            _wait_stored(app, s["request_id"])
    ids = [s["request_id"] for s in served]

    # every rater works through the queue (overlap 3: each sees every output, each once)
    given: dict[str, dict[str, int]] = {}
    for name, key_ in raters.items():
        with _client(base, key_) as c:
            seen = []
            while (item := c.get("/v1/rater/queue/next").json()["item"]) is not None:
                seen.append(item["request_id"])
            assert sorted(seen) == sorted(ids)
            given[name] = {}
            for rid, score in zip(ids, SCORES[name], strict=True):
                r = c.post("/v1/feedback", json={"request_id": rid, "kind": "score", "value": score},
                           headers={"Idempotency-Key": f"{name}-{rid}"})
                assert r.status_code == 201, r.text
                given[name][rid] = score
    with _client(base, raters["rater_b"]) as c:
        pair = c.post("/v1/feedback", json={"request_id": ids[0], "other_request_id": ids[4], "kind": "pairwise",
                                            "value": ids[4]})
        assert pair.status_code == 201, pair.text
    with _client(base, raters["rater_a"]) as c:
        correction = c.post("/v1/feedback", json={"request_id": ids[1], "kind": "correction",
                                                  "value": truths[ids[1]]})
        assert correction.status_code == 201, correction.text

    # reward.scored on NATS: one event per rating, each with the right reward
    expected_n = 3 * len(ids) + 2
    events = asyncio.run(_events(env["DREAMFORGE_NATS_URL"], expected_n))
    assert len(events) == expected_n and len({e.meta.event_id for e in events}) == expected_n
    assert {e.reward_function_id for e in events} == {rf.json()["id"]}
    by_feedback = {e.feedback_id: e for e in events}
    with _client(base, app_key) as app:
        ratings = [f for rid in ids for f in app.get("/v1/feedback", params={"request_id": rid}).json()["feedback"]]
    for f in {f["id"]: f for f in ratings}.values():
        event = by_feedback[f["id"]]
        assert event.meta.tenant_id == tenant and event.prompt and event.image_ref
        if f["kind"] == "score":
            assert event.reward == pytest.approx((f["value"] - 1) / 4) and event.request_id == f["request_id"]
        elif f["kind"] == "pairwise":
            assert (event.request_id, event.reward, dict(event.terms)) == (ids[4], 1.0, {"pairwise_preference": 1.0})
            assert event.rejected_output_json and event.output_json
        else:
            output = json.loads(event.output_json)["text"]
            right = normalise(output) == normalise(truths[ids[1]])
            assert event.correction == truths[ids[1]] and event.reward == (2.0 if right else 0.0)
    # the trainer can load each rated image from its ref
    image = load_ref(events[0].image_ref, tenant, home / "images")
    assert image.size == (64, 64)

    with _client(base, raters["rater_c"]) as c:
        tasks = {(t["skill"], t["kind"]): t for t in c.get("/v1/rater/agreement").json()["tasks"]}
    score_task = tasks[("query", "score")]
    matrix = np.array([[given[r][rid] for rid in ids] for r in SCORES], dtype=float)
    expected_alpha = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    assert (score_task["items"], score_task["raters"], score_task["ratings"]) == (5, 3, 15)
    assert score_task["alpha"] == pytest.approx(expected_alpha)
    print(f"\nKrippendorff's alpha (query, score, 3 raters x 5 outputs): {score_task['alpha']:.3f}")


def test_ratings_start_the_online_job_and_its_version_is_served(
        platform: tuple[str, str, dict[str, str], Path]) -> None:
    """The whole loop over HTTP: serve v1 of a model, rate four answers, and the policy (every 4 rewards)
    trains on them; the gate (made permissive: a 2-step job proves the loop, not a gain) promotes v2."""
    base, admin_key, _, _ = platform
    with _client(base, admin_key) as admin:
        tenant = admin.post("/v1/admin/tenants", json={"name": "online-inc"}).json()["id"]
        ml_key, rater_key = (admin.post("/v1/admin/keys", json={"tenant_id": tenant, "scopes": scopes}).json()["key"]
                             for scopes in (["app", "ml"], ["rater"]))
    image = to_data_url(get_sample("test", 3, 96).image)
    with _client(base, ml_key) as ml:
        assert ml.post("/v1/models", json={"name": "shapes"}).status_code == 201
        assert ml.post("/v1/models/shapes/versions", json={}).status_code == 201
        assert ml.post("/v1/models/shapes/promote", json={"version": 1}).status_code == 200
        assert ml.post("/v1/reward-functions", json={"name": "stars", "definition": {
            "terms": [{"metric": "human_rating", "weight": 1.0}]}, "active": True}).status_code == 201
        policy = ml.put("/v1/training/policy", json={
            "model": "shapes", "every_n_rewards": 4, "min_rewards": 4, "method": "grpo",
            "reward_function": {"terms": [{"metric": "colour_mention", "weight": 1.0}]},
            "config": {"steps": 2, "prompts_per_step": 2, "num_generations": 4, "heldout_images": 2,
                       "gate": {"min_gain": -1.0, "max_skill_drop": 1.0}}})
        assert policy.status_code == 200, policy.text
        served = []
        for question in ("what colour is the circle?", "how many shapes are there?", "is there a star?",
                         "what shape is the red one?"):
            r = ml.post("/v1/query", json={"model": "shapes", "image_url": image, "question": question})
            assert r.status_code == 200 and r.json()["version"] == 1, r.text
            served.append(r.json()["request_id"])
        for rid in served:
            _wait_stored(ml, rid)
    with _client(base, rater_key) as rater:
        for score, rid in zip((5, 2, 4, 1), served, strict=True):
            r = rater.post("/v1/feedback", json={"request_id": rid, "kind": "score", "value": score})
            assert r.status_code == 201, r.text
    with _client(base, ml_key) as ml:
        deadline = time.monotonic() + 240
        while not (jobs := ml.get("/v1/training/jobs", params={"model": "shapes"}).json()["jobs"]) \
                or jobs[0]["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, f"no finished job from the policy: {jobs}"
            time.sleep(0.5)
        job = ml.get(f"/v1/training/jobs/{jobs[0]['id']}").json()  # the list leaves out each job's history
        assert (job["status"], job["trigger"], job["method"]) == ("succeeded", "policy", "grpo"), job
        assert job["result_version"] == 2 and job["promoted"] and job["gate"]["passed"]
        assert job["eval_before"] and job["eval_after"] and [p["step"] for p in job["history"]] == [1, 2]
        policy = ml.get("/v1/training/policy", params={"model": "shapes"}).json()
        assert policy["pending_rewards"] == 0 and policy["last_triggered_at"]  # the four ratings were used
        deadline = time.monotonic() + 30
        while (r := ml.post("/v1/query", json={"model": "shapes", "image_url": image,
                                              "question": "what colour is the circle?"})).json()["version"] != 2:
            assert r.status_code == 200 and time.monotonic() < deadline, r.text
            time.sleep(0.1)


async def _events(nats_url: str, n: int) -> list[Any]:
    deadline = time.monotonic() + 30
    while True:
        events = await stream_events(nats_url, "dreamforge.v1.reward.scored.*")
        if len(events) >= n or time.monotonic() > deadline:
            await asyncio.sleep(1.0)  # a duplicate, if any, would show up too
            return await stream_events(nats_url, "dreamforge.v1.reward.scored.*")
        await asyncio.sleep(0.2)
