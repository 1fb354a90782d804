"""Leases in the SQL store (SQLite and PostgreSQL) and DutyLease on them: one holder at a
time, even when many processes (each its own connections) race for a lease; a lease not
renewed runs out and another process takes it; a released lease is free at once; the
holder's duty runs only while it holds the lease, and at once when it takes it over."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from ca_service.adapters.sql.database import Database, open_database
from ca_service.adapters.sql.leases import SqlLeaseStore
from ca_service.services.leases import DutyLease
from ca_service.shared.clock import SystemClock
from tests.fakes import FakeClock
from tests.support import migrated_database

TTL = timedelta(seconds=4)


@pytest.fixture
def stores(database_url: str) -> Iterator[list[SqlLeaseStore]]:
    """Five stores on one database, each with its own connections, as five processes."""
    with migrated_database(database_url):
        pass
    databases: list[Database] = [open_database(database_url, readers=1) for _ in range(5)]
    yield [SqlLeaseStore(database) for database in databases]
    for database in databases:
        database.close()


async def test_one_holder_until_the_lease_runs_out(stores: list[SqlLeaseStore]) -> None:
    clock = FakeClock()
    first, second = stores[0], stores[1]
    assert await first.acquire("crl", "a", clock.now(), TTL)
    assert await first.acquire("crl", "a", clock.now(), TTL)  # a renewal
    assert not await second.acquire("crl", "b", clock.now(), TTL)
    assert await second.acquire("notices", "b", clock.now(), TTL)  # another lease
    assert await second.holder("crl", clock.now()) == "a"

    clock.advance(TTL - timedelta(milliseconds=1))
    assert not await second.acquire("crl", "b", clock.now(), TTL)
    clock.advance(timedelta(milliseconds=1))  # a's lease has run out, not renewed
    assert await second.holder("crl", clock.now()) is None
    assert await second.acquire("crl", "b", clock.now(), TTL)
    assert not await first.acquire("crl", "a", clock.now(), TTL)  # a lost it for good
    assert await first.holder("crl", clock.now()) == "b"


async def test_release_frees_the_lease_at_once_but_only_the_holders(
    stores: list[SqlLeaseStore],
) -> None:
    clock = FakeClock()
    assert await stores[0].acquire("crl", "a", clock.now(), TTL)
    await stores[1].release("crl", "b")  # not b's: nothing happens
    assert not await stores[1].acquire("crl", "b", clock.now(), TTL)
    await stores[0].release("crl", "a")
    assert await stores[1].acquire("crl", "b", clock.now(), TTL)


async def test_racing_processes_get_one_holder(stores: list[SqlLeaseStore]) -> None:
    clock = FakeClock()
    for round_ in range(10):
        clock.advance(TTL)  # the previous round's lease has run out
        results = await asyncio.gather(
            *(
                store.acquire("crl", f"p{index}.{task}-{round_}", clock.now(), TTL)
                for index, store in enumerate(stores)
                for task in range(3)
            )
        )
        assert sum(results) == 1, results


class _Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_duty_lease_holds_only_while_renewed(stores: list[SqlLeaseStore]) -> None:
    clock, monotonic = FakeClock(), _Monotonic()
    leader = DutyLease(stores[0], "crl", "a", clock, TTL, monotonic=monotonic)
    standby = DutyLease(stores[1], "crl", "b", clock, TTL, monotonic=monotonic)
    assert await leader.try_acquire() and leader.held
    assert not await standby.try_acquire() and not standby.held

    # The leader stops renewing (killed): its lease runs out in the store and in its own view.
    clock.advance(TTL)
    monotonic.now += TTL.total_seconds()
    assert not leader.held
    assert await standby.try_acquire() and standby.held
    assert not await leader.try_acquire()


async def test_the_duty_runs_only_at_the_holder_and_at_once_on_takeover(
    stores: list[SqlLeaseStore],
) -> None:
    ttl = timedelta(seconds=0.4)  # real time here: run() renews every 0.1 s
    runs: dict[str, int] = {"a": 0, "b": 0}

    def duty(name: str) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            runs[name] += 1

        return work

    first = DutyLease(stores[0], "notices", "a", SystemClock(), ttl)
    second = DutyLease(stores[1], "notices", "b", SystemClock(), ttl)
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    assert await first.try_acquire()
    tasks = [
        asyncio.create_task(first.run(stop_first)),
        asyncio.create_task(first.every(60, stop_first, duty("a"), "a")),
        asyncio.create_task(second.run(stop_second)),
        asyncio.create_task(second.every(60, stop_second, duty("b"), "b")),
    ]
    await asyncio.sleep(1.0)
    assert runs == {"a": 1, "b": 0}  # once (the interval is a minute), at the holder only
    assert first.held and not second.held

    stop_first.set()  # a graceful stop gives the lease up: b takes over within a renewal
    await asyncio.wait_for(asyncio.gather(*tasks[:2]), 5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while runs["b"] == 0:
        assert loop.time() - started < 1.0, "no takeover"
        await asyncio.sleep(0.01)
    assert second.held and runs == {"a": 1, "b": 1}
    stop_second.set()
    await asyncio.wait_for(asyncio.gather(*tasks[2:]), 5)


def test_a_held_lease_outlives_a_store_outage_only_until_its_time_runs_out(
    postgres_server: str, postgres_url: str
) -> None:
    """The store stops answering (a TCP proxy refuses and cuts): the holder cannot renew,
    keeps the lease until its time is up (nobody else can take it before), then counts it
    lost; when the store answers again it takes the lease back."""
    from tests.faults import TcpProxy
    from tests.store.test_reconnect import _via

    with migrated_database(postgres_url):
        pass
    parts = urlsplit(postgres_server)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    database = open_database(_via(proxy, postgres_url), readers=1)
    monotonic = _Monotonic()
    clock = FakeClock()
    lease = DutyLease(SqlLeaseStore(database), "crl", "a", clock, TTL, monotonic=monotonic)

    async def scenario() -> None:
        assert await lease.try_acquire()
        proxy.refuse()
        proxy.cut()
        monotonic.now += 1
        clock.advance(timedelta(seconds=1))
        assert await lease.try_acquire()  # not renewed, but still its own for 3 s
        monotonic.now += TTL.total_seconds() - 1
        clock.advance(TTL - timedelta(seconds=1))
        assert not await lease.try_acquire() and not lease.held  # its time is up
        proxy.accept()
        assert await lease.try_acquire() and lease.held  # expired, free, taken again

    try:
        asyncio.run(scenario())
    finally:
        database.close()
        proxy.close()
