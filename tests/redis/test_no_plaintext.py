"""Nothing secret rests in Redis (SPEC A3, B2): after a whole enrollment scenario, no key
or value holds a code, password, bearer token or the MAC key in clear."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from ca_service.adapters.redis.client import peer
from ca_service.adapters.redis.codes import RedisCodeStore
from ca_service.adapters.redis.lockout import RedisLockoutStore
from ca_service.domain.codes import CODE_MAX_TRIES, CODE_TTL, TICKET_TTL, code_mac, token_key
from ca_service.domain.lockout import Event
from ca_service.ports import CodeOutcome
from tests.redis.helpers import NOW, client

# Fixed, so the result is deterministic (a random value could collide with a hex digest).
PASSWORD = "Pl4in!Passwd"
CODES = ("482915", "730164", "591372")
HANDLES = ("handle-PLAIN-aaaa", "handle-PLAIN-bbbb")
TICKET = "ticket-PLAIN-cccc"
MAC_KEY = b"mac-key-PLAIN-dddd-0123456789abc"
SECRETS = [PASSWORD, *CODES, *HANDLES, TICKET, MAC_KEY.decode(), MAC_KEY.hex()]


async def _dump(redis: Redis) -> str:
    """Every key and every value of every type, as one text."""
    parts: list[object] = []
    async for key in redis.scan_iter(count=100):
        parts.append(key)
        kind = await redis.type(key)
        if kind == "string":
            parts.append(await redis.get(key))
        elif kind == "hash":
            parts.extend((await redis.hgetall(key)).items())
        elif kind == "list":
            parts.extend(await redis.lrange(key, 0, -1))
        elif kind == "set":
            parts.extend(await redis.smembers(key))
        elif kind == "zset":
            parts.extend(await redis.zrange(key, 0, -1))
        else:
            raise AssertionError(f"unexpected type {kind!r} at {key!r}")
    return "\n".join(map(str, parts))


def test_no_secret_in_any_key_or_value(redis_url: str) -> None:
    async def scenario() -> str:
        async with client(redis_url) as redis:
            lockout, codes = RedisLockoutStore(peer(redis)), RedisCodeStore(peer(redis))
            # B1: wrong passwords counted for a known and an unknown ID, then one success.
            for user in ("taro0001", "nobody99"):
                for _ in range(3):
                    await lockout.record(user, Event.FAILURE, NOW)
            await lockout.record("jiro0002", Event.FAILURE, NOW)
            # B2: a code, replaced by a second request; one wrong try at the second.
            for handle, code in zip(HANDLES, CODES, strict=False):
                await codes.put(
                    "taro0001",
                    token_key(handle),
                    code_mac(MAC_KEY, handle, code),
                    NOW + CODE_TTL,
                    NOW,
                )
            wrong = await codes.check(
                token_key(HANDLES[1]), code_mac(MAC_KEY, HANDLES[1], CODES[2]), CODE_MAX_TRIES, NOW
            )
            assert wrong.outcome is CodeOutcome.WRONG
            await codes.put_ticket(token_key(TICKET), "taro0001", NOW + TICKET_TTL, NOW)
            return await _dump(redis)

    dump = asyncio.run(scenario())
    # The scenario did leave data behind: lockout hashes, the code, its pointer, the ticket.
    assert "ca:lockout:taro0001" in dump and "ca:lockout:nobody99" in dump
    assert token_key(HANDLES[1]) in dump and token_key(TICKET) in dump
    leaked = [secret for secret in SECRETS if secret in dump]
    assert leaked == [], f"plaintext in Redis: {leaked}"
