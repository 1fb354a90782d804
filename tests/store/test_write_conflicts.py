"""A write that PostgreSQL aborts to break a deadlock with another transaction (40P01) runs
again on the same connection and succeeds: it is neither an outage (no UNAVAILABLE, the store
stays available, no connection is dropped) nor lost. Seen with three ca-service processes on
one database while a CRL's DER was written beside the writer's group commits."""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg

from ca_service.adapters.sql.database import Cursor, open_database


def test_a_write_aborted_for_a_deadlock_runs_again(postgres_url: str) -> None:
    database = open_database(postgres_url, readers=1)
    other = psycopg.connect(postgres_url)
    try:
        database.write_sync(
            lambda cursor: cursor.execute(
                "CREATE TABLE pair (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
            )
        )
        database.write_sync(
            lambda cursor: cursor.execute("INSERT INTO pair VALUES ('a', 0), ('b', 0)")
        )
        other.execute("SET deadlock_timeout = '5s'")  # our side detects the deadlock first
        other.execute("UPDATE pair SET value = value + 1 WHERE name = 'a'")  # holds a
        runs: list[int] = []  # the backend each run used

        def b_then_a(cursor: Cursor) -> int:
            runs.append(cursor.execute("SELECT pg_backend_pid()").fetchone()[0])
            cursor.execute("SET LOCAL deadlock_timeout = '200ms'")
            cursor.execute("UPDATE pair SET value = value + 10 WHERE name = 'b'")
            cursor.execute("UPDATE pair SET value = value + 10 WHERE name = 'a'")  # waits
            return len(runs)

        def close_the_cycle() -> None:
            while not runs:
                time.sleep(0.01)
            time.sleep(0.1)  # our transaction waits for a
            other.execute("UPDATE pair SET value = value + 1 WHERE name = 'b'")  # waits for b
            other.commit()

        closer = threading.Thread(target=close_the_cycle)
        closer.start()
        assert asyncio.run(database.write(b_then_a)) == 2  # aborted once, then committed
        assert runs[0] == runs[1]  # on the same connection: nothing was taken for an outage
        closer.join(10)
        assert not closer.is_alive()
        assert database.availability.available
        values = dict(
            asyncio.run(
                database.read(
                    lambda cursor: cursor.execute("SELECT name, value FROM pair").fetchall()
                )
            )
        )
        assert values == {"a": 11, "b": 11}
    finally:
        other.close()
        database.close()
