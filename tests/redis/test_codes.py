"""RedisCodeStore against a real redis-server: codes (SPEC B2) and tickets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from ca_service.adapters.redis.client import peer
from ca_service.adapters.redis.codes import RedisCodeStore
from ca_service.domain.codes import CODE_MAX_TRIES, CODE_TTL, TICKET_TTL, code_mac, token_key
from ca_service.ports import CodeCheck, CodeOutcome, CodeStore
from tests.redis.helpers import NOW, client

USER = "taro0001"
MAC_KEY = b"test mac key, 32 bytes long ...."
SECOND = timedelta(seconds=1)
EXPIRES = NOW + CODE_TTL


def _code(handle: str, code: str = "123456") -> tuple[str, str]:
    """(handle_key, mac) as the service computes them."""
    return token_key(handle), code_mac(MAC_KEY, handle, code)


HANDLE, MAC = _code("handle-1")
WRONG_MAC = _code("handle-1", "654321")[1]


async def _put(store: RedisCodeStore, handle_key: str = HANDLE, mac: str = MAC) -> None:
    await store.put(USER, handle_key, mac, EXPIRES, NOW)


def test_store_satisfies_the_port(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store: CodeStore = RedisCodeStore(peer(redis))
            assert await store.check(HANDLE, MAC, CODE_MAX_TRIES, NOW) == CodeCheck(
                CodeOutcome.UNKNOWN
            )

    asyncio.run(scenario())


def test_layout_and_ttl(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            await _put(RedisCodeStore(peer(redis)))
            assert await redis.hgetall(f"ca:code:{HANDLE}") == {
                "user_id": USER,
                "mac": MAC,
                "tries": "0",
                "expires_at": str(int(EXPIRES.timestamp())),
            }
            assert await redis.get(f"ca:code-of:{USER}") == HANDLE
            # The TTL is expires_at - now (30 min) whatever the real clock says.
            for key in (f"ca:code:{HANDLE}", f"ca:code-of:{USER}"):
                assert 1_795_000 < await redis.pttl(key) <= 1_800_000

    asyncio.run(scenario())


def test_match_is_single_use(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisCodeStore(peer(redis))
            await _put(store)
            assert await store.check(HANDLE, MAC, CODE_MAX_TRIES, NOW) == CodeCheck(
                CodeOutcome.MATCH, USER
            )
            assert await store.check(HANDLE, MAC, CODE_MAX_TRIES, NOW) == CodeCheck(
                CodeOutcome.UNKNOWN
            )
            assert await redis.keys("*") == []  # code and pointer both gone

    asyncio.run(scenario())


def test_five_wrong_tries_void_the_code(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisCodeStore(peer(redis))
            await _put(store)
            checks = [await store.check(HANDLE, WRONG_MAC, CODE_MAX_TRIES, NOW) for _ in range(6)]
            assert checks == [
                *(CodeCheck(CodeOutcome.WRONG, USER, left) for left in (4, 3, 2, 1)),
                CodeCheck(CodeOutcome.VOIDED, USER),
                CodeCheck(CodeOutcome.UNKNOWN),
            ]
            # The right code no longer helps.
            assert (await store.check(HANDLE, MAC, CODE_MAX_TRIES, NOW)).outcome is (
                CodeOutcome.UNKNOWN
            )

    asyncio.run(scenario())


def test_wrong_then_right_matches(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisCodeStore(peer(redis))
            await _put(store)
            for _ in range(CODE_MAX_TRIES - 1):
                await store.check(HANDLE, WRONG_MAC, CODE_MAX_TRIES, NOW)
            assert (await store.check(HANDLE, MAC, CODE_MAX_TRIES, NOW)).outcome is (
                CodeOutcome.MATCH
            )

    asyncio.run(scenario())


def test_twenty_concurrent_wrong_tries_count_exactly_five(redis_url: str) -> None:
    async def scenario() -> None:
        async with (
            client(redis_url) as a,
            client(redis_url) as b,
            client(redis_url) as c,
            client(redis_url) as d,
        ):
            stores = [RedisCodeStore(peer(r)) for r in (a, b, c, d)]
            await _put(stores[0])
            checks = await asyncio.gather(
                *(stores[i % 4].check(HANDLE, WRONG_MAC, CODE_MAX_TRIES, NOW) for i in range(20))
            )
            outcomes = [check.outcome for check in checks]
            assert outcomes.count(CodeOutcome.WRONG) == 4
            assert outcomes.count(CodeOutcome.VOIDED) == 1
            assert outcomes.count(CodeOutcome.UNKNOWN) == 15
            wrong = sorted(c.tries_left for c in checks if c.outcome is CodeOutcome.WRONG)
            assert wrong == [1, 2, 3, 4]  # each try counted once
            assert (await stores[1].check(HANDLE, MAC, CODE_MAX_TRIES, NOW)).outcome is (
                CodeOutcome.UNKNOWN
            )
            assert await a.keys("*") == []

    asyncio.run(scenario())


def test_a_new_code_replaces_the_old_one(redis_url: str) -> None:
    handle2, mac2 = _code("handle-2", "777777")
    other_handle, other_mac = _code("handle-3")

    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisCodeStore(peer(redis))
            await _put(store)
            await store.put("hanako02", other_handle, other_mac, EXPIRES, NOW)
            await _put(store, handle2, mac2)
            assert await redis.exists(f"ca:code:{HANDLE}") == 0
            assert await store.check(HANDLE, MAC, CODE_MAX_TRIES, NOW) == CodeCheck(
                CodeOutcome.UNKNOWN
            )
            assert (await store.check(handle2, mac2, CODE_MAX_TRIES, NOW)).outcome is (
                CodeOutcome.MATCH
            )
            # Another user's code is untouched.
            assert await store.check(other_handle, other_mac, CODE_MAX_TRIES, NOW) == CodeCheck(
                CodeOutcome.MATCH, "hanako02"
            )

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("offset", "outcome"),
    [
        (-SECOND, CodeOutcome.MATCH),
        (timedelta(0), CodeOutcome.UNKNOWN),
        (SECOND, CodeOutcome.UNKNOWN),
    ],
    ids=["one second before expiry", "at expiry", "one second after expiry"],
)
def test_code_expires_after_30_minutes(
    redis_url: str, offset: timedelta, outcome: CodeOutcome
) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisCodeStore(peer(redis))
            await _put(store)
            check = await store.check(HANDLE, MAC, CODE_MAX_TRIES, NOW + CODE_TTL + offset)
            assert check.outcome is outcome
            if check.outcome is CodeOutcome.UNKNOWN:
                # An expired code is deleted on sight, pointer included.
                assert await redis.keys("*") == []

    asyncio.run(scenario())


def test_a_wrong_try_after_expiry_is_unknown_not_counted(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisCodeStore(peer(redis))
            await _put(store)
            late = NOW + CODE_TTL
            assert (await store.check(HANDLE, WRONG_MAC, CODE_MAX_TRIES, late)).outcome is (
                CodeOutcome.UNKNOWN
            )

    asyncio.run(scenario())


def test_tickets_are_single_use(redis_url: str) -> None:
    ticket = token_key("ticket-1")

    async def scenario() -> None:
        async with client(redis_url) as a, client(redis_url) as b:
            store_a, store_b = RedisCodeStore(peer(a)), RedisCodeStore(peer(b))
            await store_a.put_ticket(ticket, USER, NOW + TICKET_TTL, NOW)
            assert (
                await a.get(f"ca:ticket:{ticket}")
                == f"{USER}|{int((NOW + TICKET_TTL).timestamp())}"
            )
            takes = await asyncio.gather(
                *(s.take_ticket(ticket, NOW) for s in [store_a, store_b] * 5)
            )
            assert takes.count(USER) == 1 and takes.count(None) == 9
            assert await store_a.take_ticket(token_key("never issued"), NOW) is None

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("offset", "taken"),
    [(-SECOND, True), (timedelta(0), False), (SECOND, False)],
    ids=["one second before expiry", "at expiry", "one second after expiry"],
)
def test_ticket_expiry(redis_url: str, offset: timedelta, taken: bool) -> None:
    ticket = token_key("ticket-2")

    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisCodeStore(peer(redis))
            await store.put_ticket(ticket, USER, NOW + TICKET_TTL, NOW)
            got = await store.take_ticket(ticket, NOW + TICKET_TTL + offset)
            assert got == (USER if taken else None)
            assert await redis.keys("*") == []  # taken or not, it is gone

    asyncio.run(scenario())


def test_redis_ttl_removes_codes_and_tickets_in_real_time(redis_url: str) -> None:
    """With real time: the keys vanish by Redis' own expiry, not by a later check."""

    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisCodeStore(peer(redis))
            now = datetime.now(UTC)
            await store.put(USER, HANDLE, MAC, now + SECOND, now)
            await store.put_ticket(token_key("ticket-3"), USER, now + SECOND, now)
            assert len(await redis.keys("*")) == 3
            await asyncio.sleep(1.5)
            assert await redis.keys("*") == []
            # Asked "as of" the put instant, the rule would still accept: only the TTL acted.
            assert (await store.check(HANDLE, MAC, CODE_MAX_TRIES, now)).outcome is (
                CodeOutcome.UNKNOWN
            )
            assert await store.take_ticket(token_key("ticket-3"), now) is None

    asyncio.run(scenario())


def test_bad_arguments_are_refused(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisCodeStore(peer(redis))
            with pytest.raises(ValueError, match="not after now"):
                await store.put(USER, HANDLE, MAC, NOW, NOW)
            with pytest.raises(ValueError, match="not after now"):
                await store.put_ticket(HANDLE, USER, NOW - SECOND, NOW)
            with pytest.raises(ValueError, match="naive"):
                await store.put(USER, HANDLE, MAC, EXPIRES.replace(tzinfo=None), NOW)
            with pytest.raises(ValueError, match="max_tries"):
                await store.check(HANDLE, MAC, 0, NOW)
            assert await redis.keys("*") == []

    asyncio.run(scenario())


def test_works_with_a_client_that_does_not_decode(redis_url: str) -> None:
    async def scenario() -> None:
        raw = Redis.from_url(redis_url)
        try:
            store = RedisCodeStore(peer(raw))
            await _put(store)
            assert await store.check(HANDLE, WRONG_MAC, 5, NOW) == CodeCheck(
                CodeOutcome.WRONG, USER, 4
            )
            assert await store.check(HANDLE, MAC, 5, NOW) == CodeCheck(CodeOutcome.MATCH, USER)
            await store.put_ticket(token_key("t"), USER, NOW + TICKET_TTL, NOW)
            assert await store.take_ticket(token_key("t"), NOW) == USER
        finally:
            await raw.aclose()

    asyncio.run(scenario())
