"""Leases in the SQL store (table ``leases``, migration 5): one row per duty, naming its
holder and when the lease runs out.

A row with an expiry rather than a PostgreSQL advisory lock, because:

- it works the same on SQLite and PostgreSQL (an advisory lock has no SQLite twin);
- it needs no connection of its own: the pool's connections come and go (a session-level
  advisory lock belongs to one connection and would be lost, or leaked, with it);
- a holder that hangs without dying (stopped, partitioned, swapping) loses the lease when
  it stops renewing, where an advisory lock lives as long as its TCP connection;
- the holder and its expiry are a row an operator can read.

Taking and renewing are one upsert, atomic on both dialects (PostgreSQL locks the
conflicting row; SQLite has a single writer): it succeeds when the row is absent, expired,
or already ours.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ca_service.adapters.sql.database import Cursor, Database

__all__ = ["SqlLeaseStore"]


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class SqlLeaseStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def acquire(self, name: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        expires = _ms(now + ttl)

        def write(cursor: Cursor) -> bool:
            rows = cursor.execute(
                "INSERT INTO leases (name, holder, expires_at_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE"
                " SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms"
                " WHERE leases.holder = excluded.holder OR leases.expires_at_ms <= ?"
                " RETURNING holder",
                (name, holder, expires, _ms(now)),
            ).fetchall()
            return bool(rows)

        return await self._database.write(write)

    async def release(self, name: str, holder: str) -> None:
        def write(cursor: Cursor) -> None:
            cursor.execute(
                "DELETE FROM leases WHERE name = ? AND holder = ? RETURNING name", (name, holder)
            ).fetchall()

        await self._database.write(write)

    async def holder(self, name: str, now: datetime) -> str | None:
        def read(cursor: Cursor) -> str | None:
            row = cursor.execute(
                "SELECT holder FROM leases WHERE name = ? AND expires_at_ms > ?",
                (name, _ms(now)),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._database.read(read)
