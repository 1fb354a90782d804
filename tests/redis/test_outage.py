"""The Redis adapters when Redis goes away: a real redis-server killed and started again on
the same port, and a TCP proxy that lets a command through and swallows its reply. Reads
are retried once on a fresh connection; the lockout script is never sent twice; while Redis
is down every call fails at once with REDIS_UNAVAILABLE, logged once; after the restart no
call fails on a dead pooled connection."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio

from ca_service.adapters.redis.client import connect, peer
from ca_service.adapters.redis.codes import RedisCodeStore
from ca_service.adapters.redis.lockout import RedisLockoutStore
from ca_service.domain.codes import token_key
from ca_service.domain.lockout import Event
from ca_service.errors import RedisUnavailable
from tests.faults import RestartableRedis, TcpProxy
from tests.redis.helpers import NOW

USER = "taro0001"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RestartableRedis]:
    started = RestartableRedis(tmp_path / "redis").start()
    yield started
    started.stop()


@pytest.fixture
def proxy(server: RestartableRedis) -> Iterator[TcpProxy]:
    started = TcpProxy("127.0.0.1", server.port).start()
    yield started
    started.close()


async def _failures(url: str) -> int:
    async with redis.asyncio.Redis.from_url(url, decode_responses=True) as direct:
        return int(await direct.hget(f"ca:lockout:{USER}", "failures") or 0)


def test_a_counted_failure_whose_reply_is_lost_is_not_sent_again(
    server: RestartableRedis, proxy: TcpProxy
) -> None:
    async def scenario() -> None:
        peer = connect(f"redis://127.0.0.1:{proxy.port}/0")
        store = RedisLockoutStore(peer)
        try:
            await store.record(USER, Event.FAILURE, NOW)
            proxy.swallow_next_answer()
            with pytest.raises(RedisUnavailable) as caught:
                await store.record(USER, Event.FAILURE, NOW)
            assert caught.value.reason == "REDIS_UNAVAILABLE"
            assert proxy.swallowed.is_set()
            # Redis ran the script once; it was not sent a second time.
            assert await _failures(server.url) == 2
            change = await store.record(USER, Event.FAILURE, NOW)  # a fresh connection
            assert (change.before.failures, change.after.failures) == (2, 3)
        finally:
            await peer.aclose()

    asyncio.run(scenario())


def test_a_read_whose_reply_is_lost_is_retried_once(
    server: RestartableRedis, proxy: TcpProxy
) -> None:
    async def scenario() -> None:
        peer = connect(f"redis://127.0.0.1:{proxy.port}/0")
        store, codes = RedisLockoutStore(peer), RedisCodeStore(peer)
        try:
            await store.record(USER, Event.FAILURE, NOW)
            proxy.swallow_next_answer()
            assert (await store.state(USER)).failures == 1
            assert proxy.swallowed.is_set()
            # A ticket's SET may run twice; its single-use GETDEL may not.
            proxy.swallow_next_answer()
            await codes.put_ticket(token_key("t"), USER, NOW.replace(year=2099), NOW)
            proxy.swallow_next_answer()
            with pytest.raises(RedisUnavailable):
                await codes.take_ticket(token_key("t"), NOW)
            assert await codes.take_ticket(token_key("t"), NOW) is None  # taken once
            assert peer.availability.available
        finally:
            await peer.aclose()

    asyncio.run(scenario())


def test_kill_and_restart(server: RestartableRedis, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ca_service.shared.availability")

    async def scenario() -> None:
        peer = connect(server.url)
        store = RedisLockoutStore(peer)
        try:
            # Fill the pool with connections that the restart will leave dead.
            await asyncio.gather(*(store.state(f"u{i}") for i in range(20)))
            server.kill()
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(store.state(f"u{i}") for i in range(10)),
                *(store.record(f"u{i}", Event.FAILURE, NOW) for i in range(10)),
                peer.ping(),
                return_exceptions=True,
            )
            assert time.monotonic() - started < 1.5
            assert all(isinstance(o, RedisUnavailable) for o in outcomes), outcomes
            assert not peer.availability.available

            server.start()
            back = time.monotonic()
            outcomes = await asyncio.gather(
                *(store.state(f"u{i}") for i in range(20)),
                *(store.record(f"u{i}", Event.FAILURE, NOW) for i in range(20)),
                return_exceptions=True,
            )
            assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
            assert time.monotonic() - back < 1.0
            assert peer.availability.available
            # The failures of the outage were not counted; each one after it, once.
            assert [(await store.state(f"u{i}")).failures for i in range(20)] == [1] * 20
        finally:
            await peer.aclose()

    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "ca_service.shared.availability"]
    assert len(lines) == 2, lines  # one when Redis went, one when it came back
    assert lines[0].startswith("Redis unavailable: ")
    assert lines[1].startswith("Redis available again after ")


def test_connections_a_restart_left_dead_are_replaced_before_use(
    server: RestartableRedis,
) -> None:
    """No call between the kill and the restart: the pool still holds 20 connections that
    the old server closed. Each is replaced when handed out (under RESP3, redis-py 8 hands
    them out as they are and every one fails once), so not even the scripts that are never
    retried fail."""

    async def scenario() -> None:
        peer = connect(server.url)
        store = RedisLockoutStore(peer)
        try:
            await asyncio.gather(*(store.record(f"u{i}", Event.FAILURE, NOW) for i in range(20)))
            # In a thread: this process's event loop runs on meanwhile, as a server's does.
            await asyncio.to_thread(server.kill)
            await asyncio.to_thread(server.start)
            changes = await asyncio.gather(
                *(store.record(f"u{i}", Event.FAILURE, NOW) for i in range(20))
            )
            assert [c.after.failures for c in changes] == [1] * 20  # an empty new server
            assert peer.availability.available
        finally:
            await peer.aclose()

    asyncio.run(scenario())


def test_redis_py_defaults_would_count_twice(server: RestartableRedis, proxy: TcpProxy) -> None:
    """Why the client is built with retries off: with its defaults (redis-py 6 and later)
    redis-py sends the script again after the lost reply, and the one wrong password counts
    twice."""
    if redis.asyncio.Redis(port=1).get_retry() is None:
        pytest.skip("this redis-py does not retry by default")

    async def scenario() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=proxy.port)
        store = RedisLockoutStore(peer(client))
        try:
            await store.record("other001", Event.FAILURE, NOW)  # connected, script loaded
            proxy.swallow_next_answer()
            await store.record(USER, Event.FAILURE, NOW)
            assert await _failures(server.url) == 2
        finally:
            await client.aclose()

    asyncio.run(scenario())
