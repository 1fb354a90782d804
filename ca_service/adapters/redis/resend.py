"""The limits on resending authentication codes (``domain.resend``) in Redis, as one Lua
script, so that several ca-service processes keep one count per user (like the lockout).

Per user ID (nothing secret):

- ``<prefix>code-sent:<user_id>``  when the user's last code went out (epoch µs)
- ``<prefix>resends:<user_id>``    a sorted set of the user's resends (score: epoch µs)

Time is the caller's ``now`` only; Redis' own clock only expires the keys, well after they
stop mattering (the window plus the interval).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ca_service.adapters.redis._wire import EPOCH, epoch_us
from ca_service.domain.resend import DEFAULT_RESEND_LIMITS, ResendLimits
from ca_service.shared.redis_peer import RedisPeer

__all__ = ["RedisResendLimiter"]

# KEYS[1] code-sent, KEYS[2] resends. ARGV: now (µs), interval (µs), resends per window,
# window (µs), TTL (ms). Returns {1} when the resend is taken, {0, retry_at_us} otherwise.
# Mirrors domain.resend.resend_retry_at; keep the two in step.
_TAKE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local per_window = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local wait = false
local last = tonumber(redis.call('GET', KEYS[1]) or '')
if last and now < last + interval then
  wait = last + interval
end
-- Resends at or before now - window are out of the window.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%d', now - window))
local count = redis.call('ZCARD', KEYS[2])
if count >= per_window then
  local oldest = redis.call('ZRANGE', KEYS[2], count - per_window, count - per_window,
                            'WITHSCORES')
  local until_us = tonumber(oldest[2]) + window
  if not wait or until_us > wait then
    wait = until_us
  end
end
if wait then
  return {0, wait}
end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[5])
return {1}
"""


class RedisResendLimiter:
    """:class:`ca_service.ports.ResendLimiter` on one Redis shared by every service process."""

    def __init__(
        self, redis: RedisPeer, prefix: str = "ca:", limits: ResendLimits = DEFAULT_RESEND_LIMITS
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._limits = limits
        self._ttl_ms = (limits.window + limits.interval) // timedelta(milliseconds=1)
        self._take = redis.client.register_script(_TAKE)

    def _keys(self, user_id: str) -> list[str]:
        return [f"{self._prefix}code-sent:{user_id}", f"{self._prefix}resends:{user_id}"]

    async def sent(self, user_id: str, now: datetime) -> None:
        key = self._keys(user_id)[0]
        value = str(epoch_us(now))
        await self._redis.call(
            lambda: self._redis.client.set(key, value, px=self._ttl_ms), idempotent=True
        )

    async def take_resend(self, user_id: str, now: datetime) -> datetime | None:
        limits = self._limits
        microsecond = timedelta(microseconds=1)
        args = [
            epoch_us(now),
            limits.interval // microsecond,
            limits.per_window,
            limits.window // microsecond,
            self._ttl_ms,
        ]
        # Never sent twice: a resend whose reply was lost may have been counted already.
        reply = await self._redis.write(
            lambda client: self._take(keys=self._keys(user_id), args=args, client=client),
            idempotent=False,
        )
        if int(reply[0]):
            return None
        return EPOCH + timedelta(microseconds=int(reply[1]))
