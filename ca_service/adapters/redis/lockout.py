"""Lockout counters (SPEC B3–B7) in Redis: ``domain.lockout.transition`` as one Lua script.

Per user ID one hash ``<prefix>lockout:<user_id>`` with the fields ``failures``, ``locks``,
``locked_until`` (whole epoch seconds; absent when never locked) and ``blocked`` (0/1). A
missing hash is the fresh state, so SUCCESS and UNLOCK simply delete it. The script reads,
decides and writes in one step, which is what makes concurrent attempts from several
service processes count exactly once each (B7); Python only converts values.

Time is the caller's ``now`` only, never Redis ``TIME``: the table stays testable and every
process agrees with the pure machine. ``locked_until`` is ``now`` + the lock duration,
rounded *up* to the whole second, so with a sub-second ``now`` a lock lasts up to one second
longer than the pure machine says, never shorter; with whole-second ``now`` the two agree exactly.

Expiry (the only use of Redis' own clock): an OPEN or LOCKED hash expires ``idle_ttl``
after its last write (but never before its lock lifts), so IDs that stop trying (B9 counts
unknown IDs too) do not accumulate. A BLOCKED hash has no TTL: B4 says a blocked ID stays
blocked until someone unlocks it, and an expiry would unblock it silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from string import Template

from ca_service.adapters.redis._wire import epoch_us, from_epoch_s, seconds, text
from ca_service.domain.lockout import (
    FAILURES_TO_LOCK,
    LOCK_DURATION,
    LOCKS_TO_BLOCK,
    Event,
    LockoutState,
)
from ca_service.ports import LockoutChange
from ca_service.shared.redis_peer import RedisPeer

__all__ = ["DEFAULT_IDLE_TTL", "RedisLockoutStore"]

DEFAULT_IDLE_TTL = timedelta(days=30)

_FIELDS = ("failures", "locks", "locked_until", "blocked")

# KEYS[1] the hash. ARGV: event, now (epoch µs), lock duration (s), failures to lock,
# locks to block, idle TTL (s). Returns {applied, before..., after...}, each state as
# failures, locks, locked_until (false = absent), blocked (0/1).
# Mirrors domain.lockout.transition line by line; keep the two in step. Every figure of the
# rules (failures to lock, locks to block, the lock's duration) is an argument taken from
# domain.lockout, and the event names are filled in from domain.lockout.Event:
# tests/test_figures.py checks that the script holds no figure of its own.
_TRANSITION = Template("""
local key = KEYS[1]
local event = ARGV[1]
local now_us = tonumber(ARGV[2])
local lock_s = tonumber(ARGV[3])
local failures_to_lock = tonumber(ARGV[4])
local locks_to_block = tonumber(ARGV[5])
local idle_s = tonumber(ARGV[6])

local h = redis.call('HMGET', key, 'failures', 'locks', 'locked_until', 'blocked')
local failures = tonumber(h[1]) or 0
local locks = tonumber(h[2]) or 0
local locked_until = tonumber(h[3]) or false
local blocked = tonumber(h[4]) or 0
local before = {failures, locks, locked_until, blocked}

local function reply(applied, after)
  return {applied, before[1], before[2], before[3], before[4],
          after[1], after[2], after[3], after[4]}
end

if event == '$unlock' then
  redis.call('DEL', key)
  return reply(1, {0, 0, false, 0})
end
-- access(): refused attempts are not events and change nothing, not even the TTL.
if blocked == 1 or (locked_until and now_us < locked_until * 1000000) then
  return reply(0, before)
end
if event == '$success' then
  redis.call('DEL', key)
  return reply(1, {0, 0, false, 0})
end
if event ~= '$failure' then
  return redis.error_reply('unknown lockout event ' .. event)
end

failures = failures + 1
local now_s = math.floor(now_us / 1000000)
if failures < failures_to_lock then
  -- A lock that lifted by time stays recorded, as in the pure machine.
  redis.call('HSET', key, 'failures', failures, 'locks', locks, 'blocked', 0)
  redis.call('EXPIRE', key, idle_s)
  return reply(1, {failures, locks, locked_until, 0})
end
locks = locks + 1
if locks >= locks_to_block then
  redis.call('HSET', key, 'failures', 0, 'locks', locks, 'blocked', 1)
  redis.call('HDEL', key, 'locked_until')
  redis.call('PERSIST', key)
  return reply(1, {0, locks, false, 1})
end
-- Round up: a lock never ends before now + lock duration.
local until_s = math.floor((now_us + lock_s * 1000000 + 999999) / 1000000)
redis.call('HSET', key, 'failures', 0, 'locks', locks,
           'locked_until', string.format('%d', until_s), 'blocked', 0)
redis.call('EXPIRE', key, math.max(idle_s, until_s - now_s))
return reply(1, {0, locks, until_s, 0})
""").substitute({event.value: event.value for event in Event})


def _state(fields: Sequence[object]) -> LockoutState:
    """A state from the four stored values, as HMGET or the script answers them."""
    failures, locks, locked_until, blocked = (
        None if value is None else int(text(value)) for value in fields
    )
    return LockoutState(
        failures=failures or 0,
        locks=locks or 0,
        locked_until=None if locked_until is None else from_epoch_s(locked_until),
        blocked=bool(blocked),
    )


class RedisLockoutStore:
    """:class:`ca_service.ports.LockoutStore` on one Redis shared by every service process."""

    def __init__(
        self,
        redis: RedisPeer,
        prefix: str = "ca:",
        idle_ttl: timedelta = DEFAULT_IDLE_TTL,
        lock_duration: timedelta = LOCK_DURATION,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._idle_s = seconds(idle_ttl)
        # SPEC B3's 60 minutes; only tests with real short durations pass another value.
        self._lock_s = seconds(lock_duration)
        # Registered once: later calls send EVALSHA and reload the script after a restart.
        self._transition = redis.client.register_script(_TRANSITION)

    def _key(self, user_id: str) -> str:
        return f"{self._prefix}lockout:{user_id}"

    async def state(self, user_id: str) -> LockoutState:
        key = self._key(user_id)
        fields = await self._redis.call(
            lambda: self._redis.client.hmget(key, list(_FIELDS)), idempotent=True
        )
        return _state(fields)

    async def record(self, user_id: str, event: Event, now: datetime) -> LockoutChange:
        args = [
            event.value,
            epoch_us(now),
            self._lock_s,
            FAILURES_TO_LOCK,
            LOCKS_TO_BLOCK,
            self._idle_s,
        ]
        # Never sent twice: a failure whose reply was lost may have been counted already.
        # Done once a replica has it (with Sentinel): a failover loses no acknowledged count.
        reply = await self._redis.write(
            lambda client: self._transition(keys=[self._key(user_id)], args=args, client=client),
            idempotent=False,
        )
        return LockoutChange(
            applied=bool(reply[0]), before=_state(reply[1:5]), after=_state(reply[5:9])
        )
