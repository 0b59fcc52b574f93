"""Per-key token buckets in Redis: one Lua script, so check-and-take is atomic across replicas.

A bucket holds up to `capacity` tokens and refills at `per_minute / 60` tokens a second;
each request takes one. The clock is Redis's own (`TIME`), so gateway replicas with
skewed clocks share one bucket correctly. An idle bucket expires once it would be full.

Leases: a request that finds no local token takes up to a tenth of the bucket from Redis at once
(`lease_size`), spends one and keeps the rest in this process for the key's next requests, so at
the default burst of 60 five requests in six skip the Redis round trip (about half a millisecond
on the request path). The tokens were taken from the shared bucket, so every replica together
never grants more than the bucket holds plus what it refills; a replica's unspent lease (at most
a tenth of the burst) can only be spent later, the one way the burst is exceeded. Buckets of
fewer than 20 tokens lease one token at a time: every request asks Redis, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

from dreamforge.tracing import tracer
from services.gateway.keys import Principal

_tracer = tracer("dreamforge.gateway")

# KEYS[1] bucket; ARGV: capacity, refill tokens per second, cost, tokens wanted (>= cost).
# Takes up to `wanted` whole tokens when at least `cost` are there.
# Returns {tokens granted (0 = refused), tokens left (floor), retry after in ms}.
_TOKEN_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil then
  tokens = capacity
  ts = now
end
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate / 1000)
local granted = 0
local retry_ms = 0
if tokens >= cost then
  granted = math.max(cost, math.min(wanted, math.floor(tokens)))
  tokens = tokens - granted
else
  retry_ms = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) * 1000 / rate) + 1000)
return {granted, math.floor(tokens), retry_ms}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int              # the bucket as of this replica's last lease, plus the lease's unspent tokens
    retry_after_s: int          # whole seconds to wait (0 when allowed)
    limit_per_minute: int


#: A lease is at most this share of the bucket (see the module docstring).
LEASE_SHARE = 10


def lease_size(capacity: int) -> int:
    """Tokens one Redis round trip takes for a bucket of `capacity`: a tenth of it, at least one."""
    return max(1, capacity // LEASE_SHARE)


@dataclass
class _Lease:
    """Tokens this process took from a key's bucket and has not spent yet."""

    tokens: int
    bucket_left: int            # what the bucket held after the lease, for the `remaining` header


class RateLimiter:
    """Token buckets keyed by API key id, spent through local leases."""

    def __init__(self, redis: Redis, per_minute: int, burst: int, prefix: str = "gateway:ratelimit") -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.burst = burst
        self.prefix = prefix
        self._script = redis.register_script(_TOKEN_BUCKET)
        self._leases: dict[str, _Lease] = {}

    def limits_for(self, principal: Principal) -> tuple[int, int]:
        """(per minute, capacity): a key's override keeps the default burst, capped at the rate."""
        per_minute = principal.rate_limit_per_minute or self.per_minute
        return per_minute, max(1, min(self.burst, per_minute))

    async def hit(self, principal: Principal, cost: int = 1) -> Decision:
        per_minute, capacity = self.limits_for(principal)
        with _tracer.start_as_current_span("gateway.rate_limit") as span:
            spent = self._spend(principal.key_id, cost, per_minute)
            if spent is not None:
                return spent
            wanted = max(cost, lease_size(capacity))
            span.set_attribute("dreamforge.rate_limit.lease", wanted)
            granted, left, retry_ms = await self._script(  # the one Redis round trip: no lease left
                keys=[f"{self.prefix}:{principal.key_id}"], args=[capacity, per_minute / 60.0, cost, wanted])
        if granted:
            lease = self._leases.setdefault(principal.key_id, _Lease(0, 0))
            lease.tokens += int(granted)
            lease.bucket_left = int(left)
        # Refused by Redis, this call may still be covered by a lease a concurrent call just took.
        return self._spend(principal.key_id, cost, per_minute) or Decision(
            False, 0, math.ceil(int(retry_ms) / 1000), per_minute)

    def _spend(self, key_id: str, cost: int, per_minute: int) -> Decision | None:
        """The allowed decision when this process's lease for `key_id` covers `cost`, else None."""
        lease = self._leases.get(key_id)
        if lease is None or lease.tokens < cost:
            return None
        lease.tokens -= cost
        if not lease.tokens:
            del self._leases[key_id]
        return Decision(True, lease.bucket_left + lease.tokens, 0, per_minute)
