"""The gateway's quota gate: billing's "allowed" is spent locally for `cache_s`, never beyond the
images it leaves the tenant; refusals always come from billing."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from dreamforge.v1 import billing_pb2, common_pb2
from services.gateway.billing_client import QuotaExceeded, QuotaGate


class Billing:
    """A BillingService stub that counts `CheckQuota` calls and answers from a plan limit and a usage count."""

    def __init__(self, limit: int = 0, used: int = 0) -> None:
        self.limit, self.used, self.calls = limit, used, 0
        self.down = False

    async def CheckQuota(self, request: billing_pb2.CheckQuotaRequest, **_: Any) -> Any:
        self.calls += 1
        if self.down:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())
        if self.limit and self.used + request.images > self.limit:
            return billing_pb2.CheckQuotaResponse(allowed=False, reason=f"{self.used} of {self.limit} images",
                                                  http_status=429, used_images=self.used,
                                                  limit_images=self.limit, retry_after_s=60)
        return billing_pb2.CheckQuotaResponse(allowed=True, used_images=self.used, limit_images=self.limit)


def caller(tenant: str = "t1") -> common_pb2.Caller:
    return common_pb2.Caller(tenant_id=tenant, key_id="k1")


async def test_an_allowance_is_spent_without_asking_billing_until_it_runs_out() -> None:
    billing = Billing(limit=5, used=1)
    gate = QuotaGate(billing, cache_s=60)  # type: ignore[arg-type]
    await gate.admit(caller(), "query")          # billing: 1 of 5 used -> this call and 3 more
    for _ in range(3):
        await gate.admit(caller(), "query")
    assert billing.calls == 1
    billing.used = 5                             # the ledger caught up with the 4 calls (and one more elsewhere)
    with pytest.raises(QuotaExceeded) as refused:
        await gate.admit(caller(), "query")      # not covered: billing is asked, and refuses
    assert (billing.calls, refused.value.http_status, str(refused.value)) == (2, 429, "5 of 5 images")
    with pytest.raises(QuotaExceeded):
        await gate.admit(caller(), "query")      # a refusal is never kept: billing is asked again
    assert billing.calls == 3


async def test_a_call_the_allowance_does_not_cover_asks_billing() -> None:
    billing = Billing(limit=4, used=1)
    gate = QuotaGate(billing, cache_s=60)  # type: ignore[arg-type]
    await gate.admit(caller(), "chat", images=2)  # billing: 1 of 4 used -> these 2 and 1 more
    billing.used = 3
    with pytest.raises(QuotaExceeded):
        await gate.admit(caller(), "chat", images=2)  # 2 > the 1 left: billing is asked (3 + 2 > 4)
    await gate.admit(caller(), "caption")             # 1 image: still billing's (nothing kept from a refusal)
    assert billing.calls == 3


async def test_without_a_hard_limit_tenants_are_kept_apart_and_expire() -> None:
    billing = Billing()
    gate = QuotaGate(billing, cache_s=60)  # type: ignore[arg-type]
    for _ in range(3):
        await gate.admit(caller("a"), "caption")
    await gate.admit(caller("b"), "caption")
    assert billing.calls == 2                    # once per tenant
    expired = QuotaGate(billing, cache_s=1e-9)  # type: ignore[arg-type]
    await expired.admit(caller("a"), "caption")
    await expired.admit(caller("a"), "caption")
    assert billing.calls == 4


async def test_cache_off_asks_before_every_call_and_billing_away_fails_open() -> None:
    billing = Billing(limit=100)
    gate = QuotaGate(billing, cache_s=0)  # type: ignore[arg-type]
    for _ in range(3):
        await gate.admit(caller(), "query")
    assert billing.calls == 3
    billing.down = True
    cached = QuotaGate(billing, cache_s=60)  # type: ignore[arg-type]
    await cached.admit(caller(), "query")        # served (fail open) ...
    await cached.admit(caller(), "query")        # ... but nothing kept: billing is asked again
    assert billing.calls == 5
