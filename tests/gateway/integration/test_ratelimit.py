"""The token bucket against a real Redis: burst, refusal with a retry time, refill, per key."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from services.gateway.keys import Principal
from services.gateway.ratelimit import RateLimiter


def principal(key_id: str, per_minute: int | None = None) -> Principal:
    return Principal("t_x", key_id, frozenset({"app"}), per_minute)


async def test_bucket_allows_the_burst_then_refuses_then_refills(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    limiter = RateLimiter(redis, per_minute=120, burst=3)  # 2 tokens/s
    key = principal("k1")
    decisions = [await limiter.hit(key) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3].retry_after_s == 1
    assert (await limiter.hit(principal("k2"))).allowed  # another key has its own bucket
    await asyncio.sleep(0.55)  # 1.1 tokens back
    assert (await limiter.hit(key)).allowed
    assert not (await limiter.hit(key)).allowed
    assert 0 < await redis.pttl("gateway:ratelimit:k1") <= 1000 + 3 * 500  # gone once it would be full
    await redis.aclose()


async def test_key_override_sets_rate_and_caps_burst(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    limiter = RateLimiter(redis, per_minute=600, burst=60)
    slow = principal("slow", per_minute=2)
    assert limiter.limits_for(slow) == (2, 2)
    assert limiter.limits_for(principal("fast", per_minute=6000)) == (6000, 60)
    assert [(await limiter.hit(slow)).allowed for _ in range(3)] == [True, True, False]
    refused = await limiter.hit(slow)
    assert 25 <= refused.retry_after_s <= 30 and refused.limit_per_minute == 2
    await redis.aclose()


async def test_concurrent_hits_never_overspend(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    limiter = RateLimiter(redis, per_minute=60, burst=10)
    results = await asyncio.gather(*(limiter.hit(principal("busy")) for _ in range(50)))
    assert sum(d.allowed for d in results) == 10
    await redis.aclose()


async def test_a_lease_spends_a_tenth_of_the_bucket_locally_and_never_overspends(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    replicas = [RateLimiter(redis, per_minute=60, burst=60) for _ in range(2)]  # two gateways, one bucket
    key = principal("leased")
    first = await replicas[0].hit(key)
    assert first.allowed and first.remaining == 59
    assert int(float(await redis.hget("gateway:ratelimit:leased", "tokens"))) == 54  # 6 taken at once
    for _ in range(5):  # the lease's other five: no Redis round trip
        assert (await replicas[0].hit(key)).allowed
    assert int(float(await redis.hget("gateway:ratelimit:leased", "tokens"))) == 54
    allowed = 6 + sum([(await replicas[i % 2].hit(key)).allowed for i in range(120)])
    assert allowed in (60, 61)  # the burst, plus at most the one token refilled while the test ran
    refused = await replicas[1].hit(key)
    assert not refused.allowed and refused.retry_after_s == 1
    await redis.aclose()
