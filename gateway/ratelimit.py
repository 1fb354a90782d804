"""Per-client limits on the screens that check a password or send a code (issue 9, item 12):
a token bucket per client address in Redis, shared by every worker and gateway instance.

The bucket holds at most ``burst`` tokens and gains ``per_minute / 60`` per second; each
password or code check takes one, and a request that finds less than one is refused (429)
with the time until the next token. Reading, refilling and taking are one Lua script, so
concurrent requests through any number of gateways never take the same token twice, and the
clock is Redis' own (``TIME``), the one clock every gateway shares.

Without Redis no password is checked (fail closed): the peer raises the gateway's
:class:`~gateway.errors.RedisUnavailable`, which ``Gateway.handle`` answers with its 503 page.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from ca_service.shared.redis_peer import RedisPeer
from gateway.client_address import Networks, client_address, limit_key
from gateway.errors import RateLimited
from gateway.server import Request

__all__ = ["ClientLimit", "Rate", "TokenBuckets"]

# KEYS[1] the bucket. ARGV: tokens per second, capacity, cost.
# Returns {1, 0} when the cost was taken, else {0, milliseconds until it would be there}.
# The hash: tokens (a decimal), at (epoch ms of the last refill); a full bucket is the same
# as a missing one, so the key expires once it would have refilled.
_TAKE = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = capacity
  at = now
end
if now > at then
  tokens = tokens + (now - at) * rate / 1000
  at = now
end
tokens = math.min(capacity, tokens)
local taken = 0
local wait_ms = 0
if tokens >= cost then
  tokens = tokens - cost
  taken = 1
else
  wait_ms = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%d', at))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return {taken, wait_ms}
"""


@dataclass(frozen=True, slots=True)
class Rate:
    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError("a rate needs a positive rate and a burst of at least 1")


class TokenBuckets:
    """Token buckets in Redis under ``prefix``."""

    def __init__(self, redis: RedisPeer, prefix: str = "gw:ratelimit:") -> None:
        self._redis = redis
        self._script = redis.client.register_script(_TAKE)
        self._prefix = prefix

    async def take(self, bucket: str, rate: Rate, cost: int = 1) -> float:
        """Takes ``cost`` tokens from ``bucket``: 0.0 when taken, else the seconds until
        they would be there (nothing is taken then)."""
        # Not sent again after a lost connection: a token must not be taken twice.
        taken, wait_ms = await self._redis.call(
            lambda: self._script(
                keys=[self._prefix + bucket], args=[rate.per_minute / 60, rate.burst, cost]
            ),
            idempotent=False,
        )
        return 0.0 if int(taken) else int(wait_ms) / 1000


class ClientLimit:
    """One limit per client address (see :mod:`gateway.client_address`) on one kind of
    request. A client refused once is refused by this process until its next token is due
    without asking Redis again: nobody else adds tokens, so the answer could not differ.

    A refusal is answered after ``delay`` seconds: a client
    that keeps its connections busy with guesses gets one answer per second per connection
    instead of thousands, which would otherwise take the CPU the CA and other clients need."""

    def __init__(
        self,
        buckets: TokenBuckets,
        name: str,
        rate: Rate,
        trusted_proxies: Networks = (),
        *,
        delay: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets = buckets
        self._monotonic = monotonic
        self._name = name
        self._rate = rate
        self._trusted = trusted_proxies
        self._delay = delay
        self._refused_until: dict[str, float] = {}

    def client(self, request: Request) -> str:
        forwarded = [v for n, v in request.head.headers if n.lower() == "x-forwarded-for"]
        return client_address(request.connection.client_address, forwarded, self._trusted)

    async def check(self, request: Request) -> None:
        """Takes a token for the request's client; raises :class:`RateLimited`."""
        key = limit_key(self.client(request))
        now = self._monotonic()
        until = self._refused_until.get(key)
        if until is not None and now >= until:
            del self._refused_until[key]
            until = None
        if until is None:
            wait = await self._buckets.take(f"{self._name}:{key}", self._rate)
            if wait <= 0:
                return
            if len(self._refused_until) > 10_000:
                self._refused_until.clear()
            until = self._refused_until[key] = now + wait
        await asyncio.sleep(self._delay)
        raise RateLimited(max(0.0, until - self._monotonic()))
