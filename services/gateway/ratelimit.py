"""Per-key token buckets in Redis: one Lua script, so check-and-take is atomic across replicas.

A bucket holds up to `capacity` tokens and refills at `per_minute / 60` tokens a second;
each request takes one. The clock is Redis's own (`TIME`), so gateway replicas with
skewed clocks share one bucket correctly. An idle bucket expires once it would be full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

from dreamforge.tracing import tracer
from services.gateway.keys import Principal

_tracer = tracer("dreamforge.gateway")

# KEYS[1] bucket; ARGV: capacity, refill tokens per second, cost.
# Returns {allowed (0/1), tokens left (floor), retry after in ms}.
_TOKEN_BUCKET = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
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
local allowed = 0
local retry_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry_ms = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) * 1000 / rate) + 1000)
return {allowed, math.floor(tokens), retry_ms}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after_s: int          # whole seconds to wait (0 when allowed)
    limit_per_minute: int


class RateLimiter:
    """Token buckets keyed by API key id."""

    def __init__(self, redis: Redis, per_minute: int, burst: int, prefix: str = "gateway:ratelimit") -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.burst = burst
        self.prefix = prefix
        self._script = redis.register_script(_TOKEN_BUCKET)

    def limits_for(self, principal: Principal) -> tuple[int, int]:
        """(per minute, capacity): a key's override keeps the default burst, capped at the rate."""
        per_minute = principal.rate_limit_per_minute or self.per_minute
        return per_minute, max(1, min(self.burst, per_minute))

    async def hit(self, principal: Principal, cost: int = 1) -> Decision:
        per_minute, capacity = self.limits_for(principal)
        with _tracer.start_as_current_span("gateway.rate_limit"):  # one Redis round trip, on every call
            allowed, remaining, retry_ms = await self._script(
                keys=[f"{self.prefix}:{principal.key_id}"], args=[capacity, per_minute / 60.0, cost])
        return Decision(bool(allowed), int(remaining), math.ceil(int(retry_ms) / 1000), per_minute)
