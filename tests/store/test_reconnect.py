"""The SQL store after real faults: PostgreSQL backends terminated, connections refused or
cut by a TCP proxy, a COMMIT whose answer never arrives; SQLite whose open files fail with
I/O errors. Every connection comes back by itself, reads retry once, and no write is ever
applied twice."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from ca_service.adapters.sql.database import Cursor, Database, open_database
from ca_service.adapters.sql.migrations import migrate
from ca_service.errors import StoreError
from tests.faults import TcpProxy


def _count(cursor: Cursor) -> int:
    row = cursor.execute("SELECT count(*) FROM probe_rows").fetchone()
    assert row is not None
    return int(row[0])


def _create_table(cursor: Cursor) -> None:
    cursor.execute("CREATE TABLE probe_rows (id INTEGER NOT NULL, note TEXT)")


def _insert(value: int) -> Callable[[Cursor], int]:
    def work(cursor: Cursor) -> int:
        cursor.execute("INSERT INTO probe_rows (id) VALUES (?)", (value,))
        return value

    return work


@pytest.fixture
def named_url(postgres_url: str) -> str:
    """The test schema's URL with an application name that finds our backends only."""
    return f"{postgres_url}&application_name=t{uuid.uuid4().hex[:12]}"


def _terminate(admin_url: str, application_name: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


def _via(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0] + "@" if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy.port}"))


@pytest.fixture
def proxy(postgres_server: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgres_server)
    started = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    yield started
    started.close()


def _open(url: str) -> Database:
    database = open_database(url, readers=3)
    migrate(database)
    database.write_sync(_create_table)
    return database


def test_terminated_backends_are_replaced_and_no_call_fails(
    postgres_server: str, named_url: str
) -> None:
    database = _open(named_url)
    name = named_url.rsplit("application_name=", 1)[1]

    async def scenario() -> None:
        await database.write(_insert(1))
        # Every reader thread gets its connection.
        assert await asyncio.gather(*(database.read(_count) for _ in range(12))) == [1] * 12
        assert _terminate(postgres_server, name) >= 2
        await asyncio.sleep(0.2)  # the terminations have arrived on every socket
        reads = await asyncio.gather(*(database.read(_count) for _ in range(12)))
        assert reads == [1] * 12
        assert await database.write(_insert(2)) == 2
        assert await database.read(_count) == 2
        assert database.availability.available

    try:
        asyncio.run(scenario())
    finally:
        database.close()


def test_refused_connections_fail_fast_as_store_unavailable_and_recover(
    proxy: TcpProxy, postgres_url: str
) -> None:
    database = _open(_via(proxy, postgres_url))

    async def scenario() -> None:
        await database.write(_insert(1))
        proxy.refuse()
        proxy.cut()
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(database.read(_count) for _ in range(10)),
            database.write(_insert(2)),
            database.ping(),
            return_exceptions=True,
        )
        assert time.monotonic() - started < 1.0
        assert all(isinstance(outcome, StoreError) for outcome in outcomes), outcomes
        assert {o.reason for o in outcomes if isinstance(o, StoreError)} == {"STORE_UNAVAILABLE"}
        report = database.availability.report()
        assert not report.available and report.cause

        proxy.accept()
        back = time.monotonic()
        assert await database.read(_count) == 1
        assert await database.write(_insert(3)) == 3
        assert time.monotonic() - back < 1.0
        assert database.availability.available
        assert await database.read(_count) == 2  # the refused write was not applied

    try:
        asyncio.run(scenario())
    finally:
        database.close()


def test_a_silent_server_costs_a_connect_timeout_then_calls_fail_at_once(
    proxy: TcpProxy, postgres_url: str
) -> None:
    """A server that takes the TCP connection but never answers (a hung host): the first
    reconnect attempts end after the connect timeout; from then on, while one attempt at a
    time waits, every other call fails at once."""
    database = _open(_via(proxy, postgres_url))

    async def scenario() -> None:
        assert await database.read(_count) == 0
        proxy.stall()
        proxy.cut()
        started = time.monotonic()
        first = await asyncio.gather(database.read(_count), return_exceptions=True)
        waited = time.monotonic() - started
        assert isinstance(first[0], StoreError), first
        assert 1.5 <= waited < 6.0, waited  # CONNECT_TIMEOUT_SECONDS, not forever

        started = time.monotonic()
        fast = 0
        for _ in range(10):
            try:
                await asyncio.wait_for(database.read(_count), 0.5)
            except StoreError:
                fast += 1
            except TimeoutError:
                pass  # the one attempt that waits for its connect timeout
        assert fast >= 8, fast

        proxy.unstall()
        deadline = time.monotonic() + 2 * 3 + 1
        while True:
            try:
                assert await database.read(_count) == 0
                break
            except StoreError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        assert await database.write(_insert(1)) == 1

    try:
        asyncio.run(scenario())
    finally:
        database.close()


def test_a_commit_whose_answer_is_lost_is_looked_up_not_run_twice(
    proxy: TcpProxy, postgres_url: str
) -> None:
    """The COMMIT reaches the server, which commits, but the connection breaks before the
    answer arrives: the writer asks txid_status on a new connection, finds it committed and
    reports success; the transaction is not run a second time."""
    database = _open(_via(proxy, postgres_url))
    runs = 0

    def work(cursor: Cursor) -> str:
        nonlocal runs
        runs += 1
        cursor.execute("INSERT INTO probe_rows (id, note) VALUES (?, ?)", (1, "once"))
        proxy.swallow_next_answer()  # the next thing this connection sends is COMMIT
        return "done"

    async def scenario() -> None:
        assert await database.write(work) == "done"
        assert proxy.swallowed.is_set()
        assert runs == 1
        assert await database.read(_count) == 1
        assert database.availability.available

    try:
        asyncio.run(scenario())
    finally:
        database.close()


def test_a_commit_that_cannot_be_looked_up_is_reported_unknown_not_retried(
    proxy: TcpProxy, postgres_url: str
) -> None:
    """As above, but the database cannot be reached afterwards: the caller is told the
    outcome is unknown (UNAVAILABLE), and the write, which did commit, exists once."""
    database = _open(_via(proxy, postgres_url))

    def work(cursor: Cursor) -> None:
        cursor.execute("INSERT INTO probe_rows (id, note) VALUES (?, ?)", (1, "once"))
        proxy.refuse()  # no new connection for the lookup
        proxy.swallow_next_answer()

    async def scenario() -> None:
        with pytest.raises(StoreError) as caught:
            await database.write(work)
        assert caught.value.reason == "STORE_UNAVAILABLE"
        assert caught.value.metadata == {"outcome": "unknown"}
        proxy.accept()
        assert await database.read(_count) == 1

    try:
        asyncio.run(scenario())
    finally:
        database.close()


def test_a_commit_interrupted_before_it_committed_runs_once_more(
    postgres_server: str, postgres_url: str
) -> None:
    """A deferred constraint trigger makes COMMIT take a second; the writer's backend is
    terminated during it. txid_status says aborted, so the transaction runs once more on a
    new connection and commits once."""
    database = _open(postgres_url)
    database.write_sync(
        lambda cursor: cursor.execute(
            "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$"
        )
    )
    database.write_sync(
        lambda cursor: cursor.execute(
            "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON probe_rows"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
        )
    )
    backends: list[int] = []
    ran = threading.Event()

    def work(cursor: Cursor) -> str:
        row = cursor.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        backends.append(int(row[0]))
        cursor.execute("INSERT INTO probe_rows (id) VALUES (?)", (7,))
        ran.set()
        return "committed"

    def terminate_during_commit() -> None:
        ran.wait(10)
        time.sleep(0.4)  # COMMIT is sleeping in the trigger now
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backends[0],))

    async def scenario() -> None:
        killer = threading.Thread(target=terminate_during_commit)
        killer.start()
        assert await database.write(work) == "committed"
        killer.join()
        assert len(backends) == 2 and backends[0] != backends[1]
        assert await database.read(_count) == 1

    try:
        asyncio.run(scenario())
    finally:
        database.close()


# -- SQLite ------------------------------------------------------------------------------


def _break_open_files(path: Path) -> int:
    """Points every descriptor this process holds on the database and its WAL at a
    directory: each read on them fails with EISDIR and each write with EBADF, so SQLite
    answers SQLITE_IOERR on every connection opened before, as after a disk fault. New
    connections open the files afresh."""
    broken = 0
    directory = os.open("/", os.O_RDONLY)
    try:
        for name in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{name}")
            except OSError:
                continue
            if target in (str(path), f"{path}-wal"):
                os.dup2(directory, int(name))
                broken += 1
    finally:
        os.close(directory)
    return broken


def test_sqlite_readers_and_writer_come_back_after_io_errors(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    database = _open(f"sqlite:///{path}")

    async def scenario() -> None:
        await database.write(_insert(0))
        assert await asyncio.gather(*(database.read(_count) for _ in range(12))) == [1] * 12
        assert _break_open_files(path) >= 4  # the writer's and the readers' files
        # Another process writes: every old connection must read the files again.
        with sqlite3.connect(path) as other:
            other.execute("INSERT INTO probe_rows (id) VALUES (-1)")
        other.close()

        failures: list[BaseException] = []
        written: list[int] = []
        started = time.monotonic()
        for round_ in range(1, 41):
            outcomes = await asyncio.gather(
                *(database.read(_count) for _ in range(3)),
                database.write(_insert(round_)),
                return_exceptions=True,
            )
            failures += [o for o in outcomes if isinstance(o, BaseException)]
            if not isinstance(outcomes[3], BaseException):
                written.append(round_)
            if round_ >= 5:
                assert not any(isinstance(o, BaseException) for o in outcomes), outcomes
        # Only STORE_UNAVAILABLE, only in the first rounds, then never again.
        assert all(isinstance(f, StoreError) for f in failures), failures
        assert time.monotonic() - started < 2.0

        def ids(cursor: Cursor) -> list[int]:
            return [int(r[0]) for r in cursor.execute("SELECT id FROM probe_rows").fetchall()]

        stored = await database.read(ids)
        # Every write that returned is there once; a failed one is not there at all.
        assert sorted(i for i in stored if i > 0) == written
        print(f"SQLite after I/O errors: {len(failures)} STORE_UNAVAILABLE of 160 calls")

    try:
        asyncio.run(scenario())
    finally:
        database.close()
