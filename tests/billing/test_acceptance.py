"""Acceptance: 10,000 usage events, with duplicate publishes and replays, while the billing
process (`python -m services.billing`, a real OS process) is killed with SIGKILL and restarted
twice, and Stripe fails one call in five (before or after taking effect).

Afterwards: the ledger holds exactly the distinct events; the report's totals are the
sums of what was published, priced as computed here by hand from the plans; and the
Stripe-like server received exactly one meter event per ledger group (no identifier twice),
whose values add up, per customer and skill, to the ledger's billable images.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from dreamforge.grpcio import channel, health_status
from dreamforge.infra import free_port
from dreamforge.v1 import billing_pb2, billing_pb2_grpc
from services.billing.plans import BUILTIN_PLANS, billable
from tests.billing.conftest import Publisher, caller, usage
from tests.billing.fake_stripe import FakeStripe, faults_every
from tests.helpers import eventually

EVENTS = 10_000
TENANTS = ("t_alpha", "t_beta", "t_gamma")
SKILLS = ("caption", "query", "detect", "point", "chat")
PLANS = {p.id: p for p in BUILTIN_PLANS}
ADMIN = caller("admin", "admin")


class BillingProcess:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env, self.proc = home, env, None  # type: ignore[var-annotated]
        self.port = int(env["DREAMFORGE_BILLING_PORT"])

    def _spawn(self) -> None:
        with open(self.home / "billing.log", "a") as log:   # the child keeps its own descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "services.billing"], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)

    async def start(self) -> None:
        self._spawn()
        await eventually(lambda: self._serving(), timeout_s=30, interval_s=0.1)

    async def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"billing exited {self.proc.returncode}: {(self.home / 'billing.log').read_text()}")
        return await health_status(f"127.0.0.1:{self.port}") == "SERVING"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def ledger_rows(db: Path) -> list[tuple[str, str, str, int, int, str | None]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT event_id, tenant_id, skill, images, billable_images, stripe_group "
                            "FROM billing_ledger").fetchall()


def ledger_count(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM billing_ledger").fetchone()[0])
        except sqlite3.OperationalError:   # not migrated yet
            return 0


async def test_ten_thousand_events_through_two_crashes_are_counted_and_billed_exactly_once(
        nats_url: str, redis_url: str, fake_stripe: FakeStripe, tmp_path: Path) -> None:
    fake_stripe.faults = faults_every(5, seed=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DREAMFORGE_")}
    env.update({"DREAMFORGE_HOME": str(tmp_path), "DREAMFORGE_NATS_URL": nats_url, "DREAMFORGE_REDIS_URL": redis_url,
                "DREAMFORGE_BILLING_PORT": str(free_port()), "DREAMFORGE_LOG_FORMAT": "text",
                "DREAMFORGE_STRIPE_API_KEY": "sk_test_dreamforge", "DREAMFORGE_STRIPE_API_BASE": fake_stripe.url,
                "DREAMFORGE_STRIPE_FLUSH_S": "0.5", "DREAMFORGE_STRIPE_POLL_S": "0.2",
                "DREAMFORGE_STRIPE_RETRY_MAX_S": "1"})
    billing = BillingProcess(tmp_path, env)
    rng = random.Random(11)
    try:
        await billing.start()
        async with channel(f"127.0.0.1:{billing.port}") as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            await stub.AssignPlan(billing_pb2.AssignPlanRequest(caller=ADMIN, tenant_id="t_beta", plan="research"))
        now = datetime.now(UTC)   # every event after the assignment: t_beta's are all on the research plan
        events = [usage(rng.choice(TENANTS), f"req_{i}:usage", rng.choice(SKILLS), images=rng.choice((1, 1, 1, 2)),
                        latency_ms=rng.uniform(5, 200), when=now, model=f"mdl_{i % 3}", version=1 + i % 2)
                  for i in range(EVENTS)]
        db = tmp_path / "data" / "billing.db"
        billing.stop()          # each part is published while billing is down, so it restarts into a backlog
        kills: list[tuple[int, int]] = []
        async with Publisher(nats_url) as pub:
            for part, (lo, hi) in enumerate(((0, 4000), (4000, 8000), (8000, EVENTS))):
                for event in events[lo:hi]:
                    await pub.publish(event)
                    roll = rng.random()
                    if roll < 0.2:
                        await pub.publish(event)                # a duplicate publish (JetStream drops it)
                    elif roll < 0.3:
                        await pub.publish(event, replay=True)   # a replay past the dedupe window
                await billing.start()
                if part < 2:   # SIGKILL in the middle of the backlog: batches in flight, Stripe calls in flight
                    await eventually(lambda lo=lo: ledger_count(db) > lo + 300, timeout_s=60, interval_s=0.02)
                    billing.kill()
                    kills.append((ledger_count(db), hi))
        assert len(kills) == 2 and all(done < published for done, published in kills), kills
        await eventually(lambda: ledger_count(db) >= EVENTS, timeout_s=60, interval_s=0.2)

        async with channel(f"127.0.0.1:{billing.port}") as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)
            await eventually(lambda: _all_sent(db), timeout_s=30, interval_s=0.2)
            rows = ledger_rows(db)
            assert len(rows) == EVENTS and {r[0] for r in rows} == {e.meta.event_id for e in events}

            # report totals = what was published, priced by hand (allowance per tenant and skill, then unit price)
            report = await stub.Report(billing_pb2.ReportRequest(caller=ADMIN, group_by=["tenant", "skill"]))
            expected_cost, expected_billable = 0, {}
            for tenant in TENANTS:
                plan = PLANS["research" if tenant == "t_beta" else "payg"]
                for skill in SKILLS:
                    images = sum(e.images for e in events if e.meta.tenant_id == tenant and e.skill == skill)
                    paid = billable(images, 0, plan.included(skill))
                    expected_billable[(tenant, skill)] = paid
                    expected_cost += paid * plan.price(skill)
                    row = next(r for r in report.rows if r.group == {"tenant": tenant, "skill": skill})
                    assert (row.images, row.billable_images) == (images, paid)
            assert report.totals.requests == EVENTS
            assert report.totals.images == sum(e.images for e in events)
            assert report.totals.cost_minor_units == expected_cost == sum(r.cost_minor_units for r in report.rows)

        # Stripe: one meter event per ledger group, never an identifier twice, values = billable images
        groups = {r[5] for r in rows if r[5]}
        assert set(fake_stripe.meter_events) == groups
        assert fake_stripe.duplicate_identifiers == []
        customers = {c["name"]: c["id"] for c in fake_stripe.customers.values()}
        assert len(customers) == len(fake_stripe.customers) == len(TENANTS)
        sent = fake_stripe.totals_by_customer_and_event()
        for (tenant, skill), paid in expected_billable.items():
            assert sent.get((customers[tenant], f"dreamforge_{skill}_images"), 0) == paid
        faults = sum(1 for _path, _key, status in fake_stripe.requests if status >= 429)
        print(f"\n{EVENTS} events, killed at {kills} (ledger rows, events published), {len(groups)} meter events, "
              f"{faults} injected Stripe faults, {fake_stripe.replays} idempotent replays")
        assert faults > 0
    finally:
        billing.stop()


async def _all_sent(db: Path) -> bool:
    await asyncio.sleep(0)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        states = dict(conn.execute("SELECT status, count(*) FROM billing_stripe_groups GROUP BY status").fetchall())
    return bool(states) and set(states) == {"sent"}
