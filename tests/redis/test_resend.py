"""The resend limits (``domain.resend``) and code renewal on a real redis-server: the Lua
script gives the same answers as the pure rule for the same sequences, counts concurrent
resends exactly once, and a renewed code replaces the old one for the same authentication."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta

from ca_service.adapters.redis.client import peer
from ca_service.adapters.redis.codes import RedisCodeStore
from ca_service.adapters.redis.resend import RedisResendLimiter
from ca_service.domain.codes import CODE_MAX_TRIES, CODE_TTL, code_mac, token_key
from ca_service.domain.resend import RESEND_INTERVAL, RESEND_WINDOW, ResendLimits
from ca_service.ports import CodeOutcome, ResendLimiter
from tests.fakes import MemoryResends
from tests.redis.helpers import NOW, client

MAC_KEY = b"test mac key, 32 bytes long ...."


def _sequence(seed: int) -> list[tuple[str, datetime]]:
    """Sends and resends at random steps, some shorter than the interval, some long."""
    rng = random.Random(seed)
    now, steps = NOW, []
    for _ in range(40):
        now += timedelta(seconds=rng.choice([0, 1, 30, 59, 60, 61, 120, 400, 1800]))
        now += timedelta(microseconds=rng.choice([0, 0, 1, 999_999]))
        steps.append(("sent" if rng.random() < 0.15 else "take", now))
    return steps


async def _run(limiter: ResendLimiter, user_id: str, steps: list[tuple[str, datetime]]) -> list:
    answers: list[datetime | str | None] = []
    for op, now in steps:
        if op == "sent":
            await limiter.sent(user_id, now)
            answers.append("sent")
        else:
            answers.append(await limiter.take_resend(user_id, now))
    return answers


def test_the_script_answers_like_the_pure_rule(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            for limits in (ResendLimits(), ResendLimits(timedelta(seconds=1), 2, RESEND_WINDOW)):
                for seed in range(12):
                    steps = _sequence(seed)
                    user = f"user{seed:04d}{limits.per_window}"
                    expected = await _run(MemoryResends(limits), user, steps)
                    got = await _run(RedisResendLimiter(peer(redis), limits=limits), user, steps)
                    assert got == expected, seed
                    assert any(isinstance(a, datetime) for a in expected)
                    assert any(a is None for a in expected)

    asyncio.run(scenario())


def test_a_refusal_names_the_instant_and_changes_nothing(redis_url: str) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            limiter = RedisResendLimiter(peer(redis))
            await limiter.sent("taro0001", NOW)
            assert await limiter.take_resend("taro0001", NOW) == NOW + RESEND_INTERVAL
            later = NOW + timedelta(seconds=59)
            assert await limiter.take_resend("taro0001", later) == NOW + RESEND_INTERVAL
            assert await limiter.take_resend("taro0001", NOW + RESEND_INTERVAL) is None
            assert await redis.zcard("ca:resends:taro0001") == 1
            # Keys expire on their own, well after they stop mattering.
            ttl = await redis.pttl("ca:resends:taro0001")
            assert ttl > RESEND_WINDOW // timedelta(milliseconds=1) - 60_000

    asyncio.run(scenario())


def test_concurrent_resends_from_several_processes_count_once(redis_url: str) -> None:
    async def scenario() -> None:
        clients = [client(redis_url) for _ in range(4)]
        async with clients[0] as a, clients[1] as b, clients[2] as c, clients[3] as d:
            limiters = [RedisResendLimiter(peer(r)) for r in (a, b, c, d)]
            answers = await asyncio.gather(
                *(limiters[i % 4].take_resend("taro0001", NOW) for i in range(40))
            )
            assert answers.count(None) == 1
            assert set(answers) - {None} == {NOW + RESEND_INTERVAL}

    asyncio.run(scenario())


def test_a_renewed_code_replaces_the_old_one_of_the_same_authentication(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        async with client(redis_url) as redis:
            store = RedisCodeStore(peer(redis))
            handle = token_key("handle-1")
            old, new = (
                code_mac(MAC_KEY, "handle-1", "111111"),
                code_mac(MAC_KEY, "handle-1", "222222"),
            )
            assert await store.holder(handle, NOW) is None
            assert await store.renew(handle, new, NOW + CODE_TTL, NOW) is None
            await store.put("taro0001", handle, old, NOW + CODE_TTL, NOW)
            assert await store.holder(handle, NOW) == "taro0001"
            wrong = await store.check(handle, code_mac(MAC_KEY, "handle-1", "9"), 5, NOW)
            assert wrong.tries_left == CODE_MAX_TRIES - 1
            later = NOW + timedelta(minutes=10)
            assert await store.renew(handle, new, later + CODE_TTL, later) == "taro0001"
            assert await redis.hget(f"ca:code:{handle}", "tries") == "0"
            assert 1_795_000 < await redis.pttl(f"ca:code:{handle}") <= 1_800_000
            assert (await store.check(handle, old, CODE_MAX_TRIES, later)).outcome is (
                CodeOutcome.WRONG
            )
            # Valid for the code's time from the resend, not from the first code.
            after_first = NOW + CODE_TTL + timedelta(seconds=1)
            assert await store.holder(handle, after_first) == "taro0001"
            assert (await store.check(handle, new, CODE_MAX_TRIES, after_first)).outcome is (
                CodeOutcome.MATCH
            )
            assert await store.holder(handle, after_first) is None

            # A new authentication replaces this one: the old handle can no longer renew.
            await store.put("taro0001", handle, old, NOW + CODE_TTL, NOW)
            other = token_key("handle-2")
            await store.put("taro0001", other, old, NOW + CODE_TTL, NOW)
            assert await store.renew(handle, new, NOW + CODE_TTL, NOW) is None
            assert await store.holder(other, NOW) == "taro0001"
            # An expired code cannot be renewed.
            expired = NOW + CODE_TTL
            assert await store.renew(other, new, expired + CODE_TTL, expired) is None

    asyncio.run(scenario())
