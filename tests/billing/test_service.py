"""The billing service running for real (JetStream, SQLite or PostgreSQL, Redis, the Stripe SDK
against the local Stripe-like server): a hand-computed example priced by the ledger, the
report and the quote alike; plan changes that are not retroactive; tenant isolation;
Stripe meter events exactly once through injected faults; quotas; signed webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from dreamforge.grpcio import channel
from dreamforge.v1 import billing_pb2, billing_pb2_grpc
from services.billing.main import build
from services.billing.settings import BillingSettings
from tests.billing.conftest import Publisher, caller, usage
from tests.billing.fake_stripe import FakeStripe, faults_every, sign_webhook
from tests.helpers import eventually, running_service

ADMIN = caller("admin", "admin")
SECRET = "whsec_test_secret"
#: A plan made for the hand computation: 3 free captions a month, then 5 per caption; 7 per query; 11 per detect.
HAND_PLAN = billing_pb2.Plan(id="hand", name="Hand", currency="usd", included_images={"caption": 3},
                             unit_price_minor_units={"caption": 5, "query": 7, "detect": 11},
                             hard_limit_images=12, limit_status=429)


def settings(tmp_path: Path, nats_url: str, redis_url: str, stripe_url: str, database_url: str = "",
             **extra: object) -> BillingSettings:
    return BillingSettings(home=tmp_path, nats_url=nats_url, redis_url=redis_url, database_url=database_url,
                           log_format="text", stripe_api_key="sk_test_dreamforge", stripe_api_base=stripe_url,
                           stripe_webhook_secret=SECRET, stripe_flush_s=0.3, stripe_poll_s=0.1,
                           stripe_retry_max_s=0.5, quota_reconcile_s=0.5, **extra)


async def test_hand_computed_month_priced_reported_quoted_and_metered_once(
        database_url: str, nats_url: str, redis_url: str, fake_stripe: FakeStripe, tmp_path: Path) -> None:
    db_url = database_url   # once on SQLite, once on PostgreSQL
    fake_stripe.faults = faults_every(3, seed=7)           # a third of Stripe calls fail, before or after effect
    base = fake_stripe.url
    async with running_service("billing", build, settings(tmp_path, nats_url, redis_url, base, db_url)) as rt, \
            channel(f"127.0.0.1:{rt.port}") as ch:
        stub = billing_pb2_grpc.BillingServiceStub(ch)
        await stub.PutPlan(billing_pb2.PutPlanRequest(caller=ADMIN, plan=HAND_PLAN))
        await stub.AssignPlan(billing_pb2.AssignPlanRequest(caller=ADMIN, tenant_id="t_a", plan="hand"))
        now = datetime.now(UTC)
        caption_latencies = [50.0, 10.0, 40.0, 20.0, 30.0]
        events = ([usage("t_a", f"c{i}:usage", "caption", latency_ms=ms, when=now)
                   for i, ms in enumerate(caption_latencies)]
                  + [usage("t_a", f"q{i}:usage", "query", latency_ms=100.0 + i, when=now) for i in range(3)]
                  + [usage("t_a", "d0:usage", "detect", images=2, latency_ms=7.0, when=now, preview=True,
                           alias="blue")]
                  + [usage("t_b", f"b{i}:usage", "caption", when=now) for i in range(4)])
        async with Publisher(nats_url) as pub:
            for event in events:
                await pub.publish(event)
                await pub.publish(event)                 # dropped by JetStream's dedupe window
                await pub.publish(event, replay=True)    # delivered again: the inbox must drop it

        async def report(*group_by: str, who=caller("t_a")) -> billing_pb2.ReportResponse:  # type: ignore[no-untyped-def]
            return await stub.Report(billing_pb2.ReportRequest(caller=who, group_by=list(group_by)))

        await eventually(lambda: _requests(report(), 9), timeout_s=20)
        # hand computation: captions 5 - 3 free = 2 x 5 = 10; queries 3 x 7 = 21; detect 2 images x 11 = 22
        by_skill = {r.group["skill"]: r for r in (await report("skill")).rows}
        assert {s: (r.requests, r.images, r.billable_images, r.cost_minor_units) for s, r in by_skill.items()} == {
            "caption": (5, 5, 2, 10), "query": (3, 3, 3, 21), "detect": (1, 2, 2, 22)}
        assert (by_skill["caption"].latency_p50_ms, by_skill["caption"].latency_p95_ms) == (30.0, 50.0)
        assert (by_skill["query"].latency_p50_ms, by_skill["query"].latency_p95_ms) == (101.0, 102.0)
        totals = (await report("skill")).totals
        assert (totals.requests, totals.images, totals.cost_minor_units) == (9, 10, 53)
        # totals' percentiles over all 9 latencies [7, 10, 20, 30, 40, 50, 100, 101, 102], grouped or not
        assert (totals.latency_p50_ms, totals.latency_p95_ms) == (40.0, 102.0)
        plain = (await report()).totals
        assert (plain.latency_p50_ms, plain.latency_p95_ms, plain.cost_minor_units) == (40.0, 102.0, 53)
        summary = await stub.GetUsage(billing_pb2.GetUsageRequest(caller=caller("t_a")))
        assert (summary.requests, summary.cost_minor_units, summary.latency_p50_ms, summary.latency_p95_ms) == (
            9, 53, 40.0, 102.0)
        assert [(r.group["skill"], r.cost_minor_units, r.latency_p95_ms) for r in summary.skills] == [
            ("caption", 10, 50.0), ("detect", 22, 7.0), ("query", 21, 102.0)]
        quote = await stub.Quote(billing_pb2.QuoteRequest(caller=caller("t_a"), plan="hand",
                                                          images_per_month={"caption": 5, "query": 3, "detect": 2}))
        assert quote.total_minor_units == 53
        assert [(x.skill, x.billable_images, x.amount_minor_units) for x in quote.lines] == [
            ("caption", 2, 10), ("query", 3, 21), ("detect", 2, 22)]
        previews = {r.group["preview"]: r.images for r in (await report("preview")).rows}
        assert previews == {"": 8, "blue": 2}

        # tenant isolation: t_a's report is t_a's, whatever it asks; the operator sees both
        assert {r.group["tenant"] for r in (await report("tenant")).rows} == {"t_a"}
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Report(billing_pb2.ReportRequest(caller=caller("t_a"), tenant="t_b"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await eventually(lambda: _requests(report(who=ADMIN), 13), timeout_s=20)
        assert {r.group["tenant"]: r.requests for r in (await report("tenant", who=ADMIN)).rows} == {
            "t_a": 9, "t_b": 4}

        # Stripe: exactly one meter event per group, the ledger's billable images, despite the faults
        state = rt.state
        await eventually(lambda: _all_sent(state.outbox), timeout_s=30)
        customer = next(c["id"] for c in fake_stripe.customers.values() if c["name"] == "t_a")
        assert fake_stripe.totals_by_customer_and_event() == {
            (customer, "dreamforge_caption_images"): 2, (customer, "dreamforge_query_images"): 3,
            (customer, "dreamforge_detect_images"): 2,
            **{(c["id"], "dreamforge_caption_images"): 4 for c in fake_stripe.customers.values()
               if c["name"] == "t_b"}}
        assert fake_stripe.duplicate_identifiers == []
        assert len(fake_stripe.customers) == 2

        # quota: the hand plan stops at 12 images a month; t_a used 10
        ok = await stub.CheckQuota(billing_pb2.CheckQuotaRequest(caller=caller("t_a"), images=2))
        assert ok.allowed and ok.used_images == 10
        refused = await stub.CheckQuota(billing_pb2.CheckQuotaRequest(caller=caller("t_a"), images=3))
        assert (refused.allowed, refused.http_status) == (False, 429)
        assert "10 of 12 images" in refused.reason and refused.retry_after_s > 0
        # the Redis counter is repaired from the ledger when it drifts
        month = now.strftime("%Y-%m")
        await state.redis.set(state.quotas.key("t_a", month), 0)
        await state.quotas.reconcile()
        assert int(await state.redis.get(state.quotas.key("t_a", month))) == 10


async def _requests(reply, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return bool((await reply).totals.requests == expected)


async def _all_sent(outbox) -> bool:  # type: ignore[no-untyped-def]
    counts = await outbox.counts()
    return bool(counts) and set(counts) == {"sent"}


async def test_plan_changes_apply_from_their_time_and_never_retroactively(
        nats_url: str, redis_url: str, fake_stripe: FakeStripe, tmp_path: Path) -> None:
    base = fake_stripe.url
    async with running_service("billing", build, settings(tmp_path, nats_url, redis_url, base)) as rt, \
            channel(f"127.0.0.1:{rt.port}") as ch:
        stub = billing_pb2_grpc.BillingServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.AssignPlan(billing_pb2.AssignPlanRequest(caller=caller("t_a", "finance"), tenant_id="t_a",
                                                                plan="free"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        past = billing_pb2.AssignPlanRequest(caller=ADMIN, tenant_id="t_a", plan="free")
        past.effective_from.FromDatetime(datetime.now(UTC) - timedelta(days=1))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.AssignPlan(past)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "retroactively" in (err.value.details() or "")
        later = datetime.now(UTC) + timedelta(seconds=2)
        future = billing_pb2.AssignPlanRequest(caller=ADMIN, tenant_id="t_a", plan="research")
        future.effective_from.FromDatetime(later)
        await stub.AssignPlan(future)
        before, after = later - timedelta(seconds=1), later + timedelta(seconds=1)
        async with Publisher(nats_url) as pub:
            await pub.publish(usage("t_a", "old:usage", "caption", when=before))    # payg: 2 a caption
            await pub.publish(usage("t_a", "new:usage", "caption", when=after))     # research: inside allowance
        rows = await eventually(lambda: _rows_by(stub, "day", 2), timeout_s=20)
        assert sum(r.cost_minor_units for r in rows) == 2
        plan = await stub.GetTenantPlan(billing_pb2.GetTenantPlanRequest(caller=caller("t_a")))
        assert [a.plan for a in plan.assignments] == ["research"]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetTenantPlan(billing_pb2.GetTenantPlanRequest(caller=caller("t_a"), tenant_id="t_b"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetTenantPlan(billing_pb2.GetTenantPlanRequest(caller=ADMIN, tenant_id="t\x00b"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "tenant_id" in (err.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PutPlan(billing_pb2.PutPlanRequest(caller=ADMIN, plan=billing_pb2.Plan(
                id="x", name="X", unit_price_minor_units={"juggle": 1})))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "juggle" in (err.value.details() or "")


async def _rows_by(stub, dimension: str, requests: int):  # type: ignore[no-untyped-def]
    reply = await stub.Report(billing_pb2.ReportRequest(caller=caller("t_a"), group_by=[dimension]))
    return list(reply.rows) if reply.totals.requests == requests else None


async def test_webhooks_are_verified_recorded_once_and_a_failed_invoice_blocks(
        nats_url: str, redis_url: str, fake_stripe: FakeStripe, tmp_path: Path) -> None:
    base = fake_stripe.url
    async with running_service("billing", build, settings(tmp_path, nats_url, redis_url, base)) as rt, \
            channel(f"127.0.0.1:{rt.port}") as ch:
        stub = billing_pb2_grpc.BillingServiceStub(ch)
        customer = await rt.state.stripe.customer_for("t_a")
        body = json.dumps({"id": "evt_1", "object": "event", "type": "invoice.payment_failed",
                           "data": {"object": {"id": "in_1", "object": "invoice", "customer": customer}}})
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.RecordStripeWebhook(billing_pb2.StripeWebhookRequest(
                payload=body.encode(), signature=sign_webhook(body, "whsec_wrong")))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Stripe-Signature" in (err.value.details() or "")
        good = billing_pb2.StripeWebhookRequest(payload=body.encode(), signature=sign_webhook(body, SECRET))
        first, again = await stub.RecordStripeWebhook(good), await stub.RecordStripeWebhook(good)
        assert (first.event_id, first.type, first.duplicate, again.duplicate) == (
            "evt_1", "invoice.payment_failed", False, True)
        blocked = await stub.CheckQuota(billing_pb2.CheckQuotaRequest(caller=caller("t_a")))
        assert (blocked.allowed, blocked.http_status) == (False, 402) and "in_1" in blocked.reason
        paid = body.replace("evt_1", "evt_2").replace("invoice.payment_failed", "invoice.paid")
        await stub.RecordStripeWebhook(billing_pb2.StripeWebhookRequest(
            payload=paid.encode(), signature=sign_webhook(paid, SECRET)))
        assert (await stub.CheckQuota(billing_pb2.CheckQuotaRequest(caller=caller("t_a")))).allowed


async def test_a_poison_event_in_a_batch_is_dead_lettered_and_the_rest_recorded(
        nats_url: str, redis_url: str, fake_stripe: FakeStripe, tmp_path: Path) -> None:
    async with running_service("billing", build, settings(tmp_path, nats_url, redis_url, fake_stripe.url)) as rt:
        await rt.bus.stop_consuming()   # let a backlog build, so the events arrive in one fetch
        async with Publisher(nats_url) as pub:
            for i in range(5):
                await pub.publish(usage("t_a", f"ok{i}:usage", "caption"))
            poison = usage("t_a", "x:usage", "caption")
            poison.meta.event_id = ""
            await pub.publish(poison, replay=True)       # no event id anywhere: cannot be counted once
            for i in range(5, 8):
                await pub.publish(usage("t_a", f"ok{i}:usage", "caption"))
    async with running_service("billing", build, settings(tmp_path, nats_url, redis_url, fake_stripe.url)) as rt, \
            channel(f"127.0.0.1:{rt.port}") as ch:
        stub = billing_pb2_grpc.BillingServiceStub(ch)
        await eventually(lambda: _requests(stub.Report(billing_pb2.ReportRequest(caller=caller("t_a"))), 8),
                         timeout_s=20)
        info = await rt.bus.js.stream_info("DF_DLQ")
        assert info.state.messages == 1
