"""Authentication codes and tickets (SPEC B2) in Redis, each change one atomic script.

Keys (nothing secret: handle and ticket keys are already hashes of the bearer tokens, see
``domain.codes.token_key``; values are user IDs, keyed MACs and numbers):

- ``<prefix>code:<handle_key>``  hash {user_id, mac, tries, expires_at}
- ``<prefix>code-of:<user_id>``  the handle key of the user's current code (B2: a new
  request replaces the old code, so there is at most one live code per user; a resend
  gives the same authentication a new code)
- ``<prefix>ticket:<ticket_key>`` string ``"<user_id>|<expires_at>"``

``expires_at`` is whole epoch seconds, rounded *down*, so a code never outlives the instant
it was given; it is checked against the caller's ``now`` (the rule), and Redis' TTL removes
the key at about the same instant (housekeeping, so expired codes do not pile up).

The scripts build the old code's key from the prefix, a key not declared in ``KEYS``; that
is fine on one Redis (what we run), not on Redis Cluster.
"""

from __future__ import annotations

from datetime import datetime

from ca_service.adapters.redis._wire import epoch_us, text
from ca_service.ports import CodeCheck, CodeOutcome
from ca_service.shared.redis_peer import RedisPeer

__all__ = ["RedisCodeStore"]

# KEYS[1] the new code, KEYS[2] the user's pointer. ARGV: prefix, handle key, user ID, MAC,
# expires_at (s), TTL (ms).
_PUT = """
local previous = redis.call('GET', KEYS[2])
if previous and previous ~= ARGV[2] then
  redis.call('DEL', ARGV[1] .. 'code:' .. previous)
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'user_id', ARGV[3], 'mac', ARGV[4], 'tries', 0,
           'expires_at', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[6])
return 1
"""

# KEYS[1] the code. ARGV: prefix, handle key, MAC, max tries, now (epoch µs).
# Returns {outcome, user_id, tries_left}. The MAC comparison need not be constant-time:
# the caller cannot choose MAC values without the MAC key, so timing tells them nothing.
_CHECK = """
local h = redis.call('HMGET', KEYS[1], 'user_id', 'mac', 'tries', 'expires_at')
local user_id = h[1]
if not user_id then
  return {'unknown'}
end
local pointer = ARGV[1] .. 'code-of:' .. user_id
local function drop()
  redis.call('DEL', KEYS[1])
  -- Only if no newer code has replaced this one since.
  if redis.call('GET', pointer) == ARGV[2] then
    redis.call('DEL', pointer)
  end
end
if tonumber(h[4]) * 1000000 <= tonumber(ARGV[5]) then
  drop()
  return {'unknown'}
end
if h[2] == ARGV[3] then
  drop()
  return {'match', user_id, 0}
end
local tries = redis.call('HINCRBY', KEYS[1], 'tries', 1)
local left = tonumber(ARGV[4]) - tries
if left <= 0 then
  drop()
  return {'voided', user_id, 0}
end
return {'wrong', user_id, left}
"""

# KEYS[1] the code. ARGV: prefix, handle key, now (epoch µs). Returns the user ID while the
# code is live (it is the user's current one), else false.
_HOLDER = """
local h = redis.call('HMGET', KEYS[1], 'user_id', 'expires_at')
if not h[1] or tonumber(h[2]) * 1000000 <= tonumber(ARGV[3]) then
  return false
end
if redis.call('GET', ARGV[1] .. 'code-of:' .. h[1]) ~= ARGV[2] then
  return false
end
return h[1]
"""

# KEYS[1] the code. ARGV: prefix, handle key, now (epoch µs), new MAC, expires_at (s),
# TTL (ms). A resend: the live code of this authentication gets a new MAC, its tries start
# again. Returns the user ID, or false (nothing changed) when the code is not live.
_RENEW = """
local h = redis.call('HMGET', KEYS[1], 'user_id', 'expires_at')
if not h[1] or tonumber(h[2]) * 1000000 <= tonumber(ARGV[3]) then
  return false
end
local pointer = ARGV[1] .. 'code-of:' .. h[1]
if redis.call('GET', pointer) ~= ARGV[2] then
  return false
end
redis.call('HSET', KEYS[1], 'mac', ARGV[4], 'tries', 0, 'expires_at', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('SET', pointer, ARGV[2], 'PX', ARGV[6])
return h[1]
"""

_MS = 1000
_S = 1_000_000


def _expiry(expires_at: datetime, now: datetime) -> tuple[int, int]:
    """expires_at as whole epoch seconds (rounded down) and the Redis TTL in ms (≥ 1 s)."""
    expires_us, now_us = epoch_us(expires_at), epoch_us(now)
    if expires_us <= now_us:
        raise ValueError(f"expires_at {expires_at} is not after now {now}")
    expires_s = expires_us // _S
    return expires_s, max(_MS, expires_s * _MS - now_us // _MS)


class RedisCodeStore:
    """:class:`ca_service.ports.CodeStore` on one Redis shared by every service process."""

    def __init__(self, redis: RedisPeer, prefix: str = "ca:") -> None:
        self._redis = redis
        self._prefix = prefix
        # Registered once: later calls send EVALSHA and reload the script after a restart.
        self._put = redis.client.register_script(_PUT)
        self._check = redis.client.register_script(_CHECK)
        self._holder = redis.client.register_script(_HOLDER)
        self._renew = redis.client.register_script(_RENEW)

    async def put(
        self, user_id: str, handle_key: str, mac: str, expires_at: datetime, now: datetime
    ) -> None:
        expires_s, ttl_ms = _expiry(expires_at, now)
        # Safe to send twice: the same new code, its tries at 0, replaces the old one.
        await self._redis.call(
            lambda: self._put(
                keys=[f"{self._prefix}code:{handle_key}", f"{self._prefix}code-of:{user_id}"],
                args=[self._prefix, handle_key, user_id, mac, expires_s, ttl_ms],
            ),
            idempotent=True,
        )

    async def check(self, handle_key: str, mac: str, max_tries: int, now: datetime) -> CodeCheck:
        if max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        # Never sent twice: a wrong code whose reply was lost may have been counted already.
        # A try counts once a replica has it (with Sentinel): a failover does not give tries
        # back.
        reply = await self._redis.write(
            lambda client: self._check(
                keys=[f"{self._prefix}code:{handle_key}"],
                args=[self._prefix, handle_key, mac, max_tries, epoch_us(now)],
                client=client,
            ),
            idempotent=False,
        )
        outcome = CodeOutcome(text(reply[0]))
        if outcome is CodeOutcome.UNKNOWN:
            return CodeCheck(outcome)
        return CodeCheck(outcome, user_id=text(reply[1]), tries_left=int(reply[2]))

    async def holder(self, handle_key: str, now: datetime) -> str | None:
        reply = await self._redis.call(
            lambda: self._holder(
                keys=[f"{self._prefix}code:{handle_key}"],
                args=[self._prefix, handle_key, epoch_us(now)],
            ),
            idempotent=True,
        )
        return None if reply is None else text(reply)

    async def renew(
        self, handle_key: str, mac: str, expires_at: datetime, now: datetime
    ) -> str | None:
        expires_s, ttl_ms = _expiry(expires_at, now)
        # A resent code voids the old one: done once a replica has it, so that a failover
        # does not bring the old code (and its tries) back. Safe to send twice: the same
        # new code replaces the old one.
        reply = await self._redis.write(
            lambda client: self._renew(
                keys=[f"{self._prefix}code:{handle_key}"],
                args=[self._prefix, handle_key, epoch_us(now), mac, expires_s, ttl_ms],
                client=client,
            ),
            idempotent=True,
        )
        return None if reply is None else text(reply)

    async def put_ticket(
        self, ticket_key: str, user_id: str, expires_at: datetime, now: datetime
    ) -> None:
        expires_s, ttl_ms = _expiry(expires_at, now)
        key, value = f"{self._prefix}ticket:{ticket_key}", f"{user_id}|{expires_s}"
        await self._redis.call(
            lambda: self._redis.client.set(key, value, px=ttl_ms), idempotent=True
        )

    async def take_ticket(self, ticket_key: str, now: datetime) -> str | None:
        # GETDEL: of two concurrent takers exactly one sees the value (single use). Never
        # sent twice: a second GETDEL after a lost reply would find nothing. Taken once a
        # replica has it (with Sentinel): a failover does not bring the ticket back.
        key = f"{self._prefix}ticket:{ticket_key}"
        value = await self._redis.write(lambda client: client.getdel(key), idempotent=False)
        if value is None:
            return None
        user_id, _, expires_s = text(value).rpartition("|")
        if int(expires_s) * _S <= epoch_us(now):
            return None
        return user_id
