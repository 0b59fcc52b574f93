"""The feedback service over gRPC: ratings, the rater queue, agreement, reward functions, scoring."""

from __future__ import annotations

import asyncio
import json
import random

import grpc
import pytest
import sqlalchemy as sa

from dreamforge.v1 import feedback_pb2
from tests.feedback.conftest import FeedbackHarness, caller, rpc_error, serve, stream_events
from tests.helpers import eventually

REWARDS = "dreamforge.v1.reward.scored.*"


def submit(tenant: str, request_id: str, kind: str, value: object, rater: str = "rater1", **kw: str
           ) -> feedback_pb2.SubmitFeedbackRequest:
    return feedback_pb2.SubmitFeedbackRequest(caller=caller(tenant, rater), request_id=request_id, kind=kind,
                                              value_json=json.dumps(value), **kw)


async def test_ratings_are_validated_idempotent_once_per_rater_and_tenant_scoped(feedback: FeedbackHarness) -> None:
    stub = feedback.stub
    await feedback.serve("t_a", "r1")
    await feedback.serve("t_a", "r2", output="blue")
    await feedback.serve("t_a", "r3", image_ref="cd" * 32)
    await feedback.serve("t_b", "rb")
    bad = [
        (submit("t_a", "r1", "stars", 5), "kind 'stars' is not a rating kind"),
        (submit("t_a", "r1", "score", 6), "whole number from 1 to 5"),
        (submit("t_a", "r1", "score", 2.5), "whole number from 1 to 5"),
        (submit("t_a", "r1", "thumbs", "sideways"), '"up" or "down"'),
        (submit("t_a", "r1", "flag", "boring"), "wrong, unsafe, other"),
        (submit("t_a", "r1", "correction", ""), "corrected output as text"),
        (submit("t_a", "r1", "pairwise", "r1"), "other_request_id"),
        (submit("t_a", "r1", "pairwise", "zz", other_request_id="r2"), "request id of the preferred output"),
        (submit("t_a", "r1", "pairwise", "r1", other_request_id="r3"), "same image"),
        (submit("t_a", "", "thumbs", "up"), "request_id is required"),
    ]
    for request, words in bad:
        err = await rpc_error(stub.SubmitFeedback(request))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (err.details() or ""), err.details()
    refused = await rpc_error(stub.SubmitFeedback(submit("t_a", "rb", "thumbs", "up")))
    assert refused.code() == grpc.StatusCode.NOT_FOUND and "in your tenant" in (refused.details() or "")

    first = await stub.SubmitFeedback(submit("t_a", "r1", "thumbs", "up", idempotency_key="k-1"))
    again = await stub.SubmitFeedback(submit("t_a", "r1", "thumbs", "up", idempotency_key="k-1"))
    assert again.id == first.id
    twice = await rpc_error(stub.SubmitFeedback(submit("t_a", "r1", "thumbs", "down")))
    assert twice.code() == grpc.StatusCode.ALREADY_EXISTS and first.id in (twice.details() or "")
    reused = await rpc_error(stub.SubmitFeedback(submit("t_a", "r2", "thumbs", "up", idempotency_key="k-1")))
    assert reused.code() == grpc.StatusCode.ALREADY_EXISTS
    other_rater = await stub.SubmitFeedback(submit("t_a", "r1", "thumbs", "down", rater="rater2"))
    assert other_rater.id != first.id

    # list, edit and withdraw: only one's own
    listed = await stub.ListFeedback(feedback_pb2.ListFeedbackRequest(caller=caller("t_a"), request_id="r1"))
    assert {f.id for f in listed.feedback} == {first.id, other_rater.id}
    mine = await stub.ListFeedback(feedback_pb2.ListFeedbackRequest(caller=caller("t_a"), mine=True))
    assert [f.id for f in mine.feedback] == [first.id]
    assert not (await stub.ListFeedback(feedback_pb2.ListFeedbackRequest(caller=caller("t_b")))).feedback
    edited = await stub.UpdateFeedback(feedback_pb2.UpdateFeedbackRequest(
        caller=caller("t_a"), id=first.id, value_json='"down"', comment="on reflection"))
    assert (edited.value_json, edited.revision, edited.comment) == ('"down"', 2, "on reflection")
    foreign = await rpc_error(stub.UpdateFeedback(feedback_pb2.UpdateFeedbackRequest(
        caller=caller("t_a", "rater2"), id=first.id, value_json='"up"')))
    assert foreign.code() == grpc.StatusCode.PERMISSION_DENIED
    gone = await stub.WithdrawFeedback(feedback_pb2.WithdrawFeedbackRequest(caller=caller("t_a"), id=first.id))
    assert gone.withdrawn
    assert (await rpc_error(stub.WithdrawFeedback(feedback_pb2.WithdrawFeedbackRequest(
        caller=caller("t_a"), id=first.id)))).code() == grpc.StatusCode.NOT_FOUND

    # every accepted rating (and the edit) produced its reward event exactly once, with the default function
    events = await eventually(lambda: _at_least(feedback, 3))
    ids = [e.meta.event_id for e in events]
    assert len(ids) == len(set(ids)) == 3
    assert sorted(e.reward for e in events) == [0.0, 0.0, 1.0]
    assert {e.reward_function_id for e in events} == {"default"}


async def _at_least(feedback: FeedbackHarness, n: int) -> list[feedback_pb2.Feedback] | None:
    events = await stream_events(feedback.nats_url, REWARDS)
    return events if len(events) >= n else None


async def test_reward_functions_are_versioned_validated_and_score_ratings(feedback: FeedbackHarness) -> None:
    stub = feedback.stub
    bad = await rpc_error(stub.SaveRewardFunction(feedback_pb2.SaveRewardFunctionRequest(
        caller=caller("t_a"), name="x", definition_json=json.dumps({"terms": [{"metric": "nope", "weight": 1}]}))))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT and "definition.terms[0].metric" in (bad.details() or "")
    v1 = await stub.SaveRewardFunction(feedback_pb2.SaveRewardFunctionRequest(
        caller=caller("t_a"), name="accuracy", active=True, definition_json=json.dumps(
            {"terms": [{"metric": "exact_match", "weight": 2.0}, {"metric": "human_rating", "weight": 1.0}]})))
    v2 = await stub.SaveRewardFunction(feedback_pb2.SaveRewardFunctionRequest(
        caller=caller("t_a"), id=v1.id, active=True, definition_json=json.dumps(
            {"terms": [{"metric": "token_f1", "weight": 1.0},
                       {"metric": "latency_ms", "weight": 1.0, "direction": "minimize", "params": {"max_ms": 100}}]})))
    assert (v1.version, v2.version, v2.name) == (1, 2, "accuracy")
    old = await stub.GetRewardFunction(feedback_pb2.GetRewardFunctionRequest(caller=caller("t_a"), id=v1.id, version=1))
    assert json.loads(old.definition_json)["terms"][0]["metric"] == "exact_match"
    latest = await stub.GetRewardFunction(feedback_pb2.GetRewardFunctionRequest(caller=caller("t_a"), id=v1.id))
    assert latest.version == 2
    versions = await stub.ListRewardFunctionVersions(feedback_pb2.ListRewardFunctionVersionsRequest(
        caller=caller("t_a"), id=v1.id))
    assert [f.version for f in versions.functions] == [1, 2]
    assert (await rpc_error(stub.GetRewardFunction(feedback_pb2.GetRewardFunctionRequest(
        caller=caller("t_b"), id=v1.id)))).code() == grpc.StatusCode.NOT_FOUND

    await feedback.serve("t_a", "q1", output="a red circle", latency_ms=25.0)
    rating = await stub.SubmitFeedback(submit("t_a", "q1", "correction", "a red square"))
    events = await eventually(lambda: _at_least(feedback, 1))
    assert len(events) == 1
    event = events[0]
    assert (event.reward_function_id, event.reward_function_version, event.feedback_id) == (v1.id, 2, rating.id)
    assert event.correction == "a red square" and event.prompt == "what colour?" and event.image_ref == "ab" * 32
    assert dict(event.terms) == pytest.approx({"token_f1": 2 * (2 / 3) * (2 / 3) / (4 / 3), "latency_ms": 0.75})
    assert event.reward == pytest.approx(sum(event.terms.values()))

    scored = await stub.ScoreOutputs(feedback_pb2.ScoreOutputsRequest(
        caller=caller("t_a"), reward_function_id=v1.id, reward_function_version=1, reference_json='{"answer": "red"}',
        outputs=[feedback_pb2.Output(request_id="q1"),
                 feedback_pb2.Output(skill="query", prompt="what colour?", output_json="Red.")]))
    assert [s.reward for s in scored.scores] == [0.0, 2.0]
    assert dict(scored.scores[1].terms) == {"exact_match": 2.0}


async def test_queue_never_repeats_respects_overlap_and_samples_versions(feedback: FeedbackHarness) -> None:
    stub = feedback.stub
    for i in range(6):
        await feedback.serve("t_a", f"v1_{i}", version=1)
    for i in range(2):
        await feedback.serve("t_a", f"v2_{i}", version=2)
    await feedback.serve("t_b", "other")

    async def drain(rater: str, overlap: int = 2) -> list[str]:
        got = []
        while True:
            item = await stub.NextQueueItem(feedback_pb2.NextQueueItemRequest(caller=caller("t_a", rater)))
            if not item.HasField("output"):
                return got
            assert item.overlap == overlap
            got.append(item.output.request_id)

    class NewestVersion(random.Random):
        """Draws the last of the versions offered, so the order below is exact rather than likely."""

        def choice(self, seq):  # type: ignore[no-untyped-def, override]
            return seq[-1]

    feedback.state.queue.rng = NewestVersion()
    first = await drain("r1")
    # The version is drawn among those with open items, then its oldest item: version 2 is reached
    # at once, not after the backlog of version 1 (oldest-first would start with v1_0).
    assert first == ["v2_0", "v2_1"] + [f"v1_{i}" for i in range(6)]
    feedback.state.queue.rng = random.Random()
    second = await drain("r2")
    assert sorted(second) == sorted(first)
    assert await drain("r3") == []  # every item has had its two raters
    await feedback.state.data.update("t_a", type(await feedback.state.data.settings("t_a"))(90, 3))
    assert len(await drain("r3", 3)) == 8 and await drain("r1", 3) == []


async def test_agreement_per_task_uses_krippendorff_alpha(feedback: FeedbackHarness) -> None:
    stub = feedback.stub
    for i in range(4):
        await feedback.serve("t_a", f"a{i}")
    scores = {"k1": [5, 4, 1, 2], "k2": [5, 5, 1, 2], "k3": [4, 4, 2, 1]}
    for rater, values in scores.items():
        for i, v in enumerate(values):
            await stub.SubmitFeedback(submit("t_a", f"a{i}", "score", v, rater=rater))
    await stub.SubmitFeedback(submit("t_a", "a0", "thumbs", "up", rater="k1"))
    report = await stub.GetAgreement(feedback_pb2.GetAgreementRequest(caller=caller("t_a")))
    tasks = {(t.skill, t.kind): t for t in report.tasks}
    score = tasks[("query", "score")]
    assert (score.level, score.items, score.raters, score.ratings) == ("ordinal", 4, 3, 12)
    import krippendorff
    import numpy as np
    expected = krippendorff.alpha(reliability_data=np.array(list(scores.values()), dtype=float),
                                  level_of_measurement="ordinal")
    assert score.alpha == pytest.approx(expected) and 0.7 < score.alpha <= 1.0
    assert tasks[("query", "thumbs")].note and tasks[("query", "thumbs")].alpha != tasks[("query", "thumbs")].alpha


async def test_tables_hold_what_the_api_says(feedback: FeedbackHarness) -> None:
    await feedback.serve("t_a", "d1")
    await feedback.stub.SubmitFeedback(submit("t_a", "d1", "flag", "unsafe"))
    async with feedback.state.ratings.db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(feedback.state.tables.ratings))).all()
    assert [(r.kind, json.loads(r.value_json)) for r in rows] == [("flag", "unsafe")]


async def test_concurrent_edits_never_collide(feedback: FeedbackHarness) -> None:
    stub = feedback.stub
    await feedback.serve("t_a", "e1")
    rating = await stub.SubmitFeedback(submit("t_a", "e1", "score", 3))
    results = await asyncio.gather(*(stub.UpdateFeedback(feedback_pb2.UpdateFeedbackRequest(
        caller=caller("t_a"), id=rating.id, value_json=str(v))) for v in (1, 2, 4, 5)), return_exceptions=True)
    ok = [r for r in results if isinstance(r, feedback_pb2.Feedback)]
    refused = [r for r in results if not isinstance(r, feedback_pb2.Feedback)]
    assert ok and all(isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.ABORTED for e in refused)
    assert sorted(r.revision for r in ok) == list(range(2, 2 + len(ok)))
    events = await eventually(lambda: _at_least(feedback, 1 + len(ok)))
    assert len({e.meta.event_id for e in events}) == len(events) == 1 + len(ok)


async def test_a_rating_sent_as_the_output_is_served_waits_for_it(feedback: FeedbackHarness) -> None:
    """A client may rate the moment it has its answer, before inference.completed reaches feedback."""
    async def serve_late() -> None:
        await asyncio.sleep(0.3)
        await serve(feedback.nats_url, "t_a", "late")

    rating, _ = await asyncio.gather(feedback.stub.SubmitFeedback(submit("t_a", "late", "thumbs", "up")), serve_late())
    assert rating.request_id == "late" and rating.kind == "thumbs"
    never = await rpc_error(feedback.stub.SubmitFeedback(submit("t_a", "never-served", "thumbs", "up")))
    assert never.code() == grpc.StatusCode.NOT_FOUND and "never-served" in (never.details() or "")
