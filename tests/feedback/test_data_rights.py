"""Retention purge, tenant deletion and export, checked in the database itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from dreamforge.images import encode_png
from dreamforge.v1 import feedback_pb2
from dreamforge.world import get_sample
from tests.feedback.conftest import FeedbackHarness, caller
from tests.helpers import eventually


async def _rows(feedback: FeedbackHarness, tenant: str) -> dict[str, int]:
    t, o = feedback.state.tables, feedback.state.outputs.outputs
    out = {}
    async with feedback.state.ratings.db.engine.connect() as conn:
        for name, table in (("outputs", o), ("ratings", t.ratings), ("assignments", t.assignments),
                            ("reward_functions", t.reward_functions), ("settings", t.data_settings)):
            out[name] = (await conn.execute(sa.select(sa.func.count()).select_from(table)
                                            .where(table.c.tenant_id == tenant))).scalar_one()
        box = feedback.state.outbox.table
        out["outbox"] = (await conn.execute(sa.select(sa.func.count()).select_from(box)
                                            .where(box.c.subject.like(f"%.{tenant}")))).scalar_one()
    return out


async def _seed(feedback: FeedbackHarness, tenant: str, old: datetime) -> None:
    stub = feedback.stub
    images = feedback.state.data.images
    images.save(tenant, encode_png(get_sample("test", 1, 32).image))
    await feedback.serve(tenant, f"{tenant}_old", at=old)
    await feedback.serve(tenant, f"{tenant}_new")
    for rid in (f"{tenant}_old", f"{tenant}_new"):
        await stub.SubmitFeedback(feedback_pb2.SubmitFeedbackRequest(
            caller=caller(tenant), request_id=rid, kind="score", value_json="4"))
    await stub.NextQueueItem(feedback_pb2.NextQueueItemRequest(caller=caller(tenant, "r9")))
    await stub.SaveRewardFunction(feedback_pb2.SaveRewardFunctionRequest(
        caller=caller(tenant), name="f", definition_json='{"terms": [{"metric": "bleu", "weight": 1}]}'))


async def test_purge_delete_and_export(feedback: FeedbackHarness) -> None:
    stub = feedback.stub
    old = datetime.now(UTC) - timedelta(days=10)
    await _seed(feedback, "t_a", old)
    await _seed(feedback, "t_b", old)
    settings = await stub.UpdateDataSettings(feedback_pb2.UpdateDataSettingsRequest(
        caller=caller("t_a"), settings=feedback_pb2.DataSettings(retention_days=7, queue_overlap=2)))
    assert settings.retention_days == 7

    # export: everything, as JSON documents
    records = [(r.type, json.loads(r.json)) async for r in stub.ExportTenantData(
        feedback_pb2.ExportTenantDataRequest(caller=caller("t_a")))]
    kinds = [k for k, _ in records]
    assert kinds.count("output") == 2 and kinds.count("feedback") == 2 and kinds.count("reward_function") == 1
    assert records[0] == ("settings", {"retention_days": 7, "queue_overlap": 2})
    assert {d["request_id"] for k, d in records if k == "feedback"} == {"t_a_old", "t_a_new"}
    assert all(d["tenant_id"] == "t_a" for k, d in records if k != "settings")

    # purge: the output older than 7 days and its rating go, the rest stays
    counts = await stub.PurgeExpired(feedback_pb2.PurgeExpiredRequest(caller=caller("t_a")))
    assert (counts.outputs, counts.feedback) == (1, 1)
    assert (await feedback.state.outputs.get("t_a", "t_a_old")) is None
    assert (await feedback.state.outputs.get("t_a", "t_a_new")) is not None
    rows = await _rows(feedback, "t_a")
    assert (rows["outputs"], rows["ratings"]) == (1, 1)
    # t_b keeps the default retention (90 days): nothing of it was touched
    assert (await _rows(feedback, "t_b"))["outputs"] == 2

    # delete everything of t_a, verified table by table; t_b untouched
    await eventually(lambda: _all_published(feedback))
    deleted = await stub.DeleteTenantData(feedback_pb2.DeleteTenantDataRequest(caller=caller("t_a")))
    assert (deleted.outputs, deleted.feedback, deleted.reward_functions, deleted.images) == (1, 1, 1, 1)
    assert await _rows(feedback, "t_a") == {"outputs": 0, "ratings": 0, "assignments": 0, "reward_functions": 0,
                                            "settings": 0, "outbox": 0}
    assert not (feedback.state.data.images.root / "t_a").exists()
    assert [r async for r in stub.ExportTenantData(feedback_pb2.ExportTenantDataRequest(caller=caller("t_a")))
            if r.type != "settings"] == []
    b = await _rows(feedback, "t_b")
    assert (b["outputs"], b["ratings"], b["reward_functions"]) == (2, 2, 1) and b["outbox"] > 0


async def _all_published(feedback: FeedbackHarness) -> bool:
    box = feedback.state.outbox.table
    async with feedback.state.ratings.db.engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(box)
                                   .where(box.c.published_at.is_(None)))).scalar_one() == 0


async def test_periodic_purge_runs_for_every_tenant(feedback: FeedbackHarness) -> None:
    await feedback.serve("t_c", "c_old", at=datetime.now(UTC) - timedelta(days=200))
    await feedback.serve("t_c", "c_new")
    await feedback.state.data.purge_all()  # what the service's purge task runs every purge_interval_s
    assert (await feedback.state.outputs.get("t_c", "c_old")) is None
    assert (await feedback.state.outputs.get("t_c", "c_new")) is not None
