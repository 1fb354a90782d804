"""CRL state in the SQL store: the pre-encoded entries to publish and the CRLs last built."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ca_service.adapters.sql.database import Cursor, Database

__all__ = ["PublishedCrl", "SqlCrlStore"]


@dataclass(frozen=True, slots=True)
class PublishedCrl:
    kind: str  # "full" or "delta"
    number: int
    base_number: int | None
    this_update: datetime
    next_update: datetime
    through_sequence: int
    der: bytes


def _published(row: tuple[Any, ...]) -> PublishedCrl:
    kind, number, base, this_update, next_update, through, der = row
    return PublishedCrl(
        kind,
        int(number),
        None if base is None else int(base),
        datetime.fromtimestamp(this_update, UTC),
        datetime.fromtimestamp(next_update, UTC),
        int(through),
        bytes(der),
    )


class SqlCrlStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def entries(
        self, *, after_sequence: int, not_expired_at: datetime
    ) -> tuple[list[bytes], int]:
        """The pre-encoded entries of unexpired revocations after ``after_sequence``, and the
        highest sequence there is (what the CRL is current through)."""
        cutoff = int(not_expired_at.timestamp())

        def read(cursor: Cursor) -> tuple[list[bytes], int]:
            row = cursor.execute("SELECT MAX(sequence) FROM revocations").fetchone()
            through = int(row[0]) if row and row[0] is not None else 0
            # RFC 5280 5.1.2.6: an entry may drop off once the certificate has expired.
            rows = cursor.execute(
                "SELECT crl_entry FROM revocations WHERE sequence > ? AND sequence <= ?"
                " AND not_after >= ? ORDER BY sequence",
                (after_sequence, through, cutoff),
            ).fetchall()
            return [bytes(entry[0]) for entry in rows], through

        return await self._database.read(read)

    async def latest_sequence(self) -> int:
        def read(cursor: Cursor) -> int:
            row = cursor.execute("SELECT MAX(sequence) FROM revocations").fetchone()
            return int(row[0]) if row and row[0] is not None else 0

        return await self._database.read(read)

    async def next_number(self) -> int:
        """The next CRL number; full and delta CRLs share one counter (RFC 5280 5.2.3)."""

        def write(cursor: Cursor) -> int:
            row = cursor.execute(
                "UPDATE crl_counter SET number = number + 1 WHERE id = 1 RETURNING number"
            ).fetchone()
            assert row is not None
            return int(row[0])

        return await self._database.write(write)

    async def save(self, crl: PublishedCrl) -> None:
        def write(cursor: Cursor) -> None:
            # Never replace a CRL with one of a lower number (another process may have
            # published a newer one meanwhile).
            cursor.execute("DELETE FROM crls WHERE kind = ? AND number < ?", (crl.kind, crl.number))
            cursor.execute(
                "INSERT INTO crls (kind, number, base_number, this_update, next_update,"
                " through_sequence, der) SELECT ?, ?, ?, ?, ?, ?, ?"
                " WHERE NOT EXISTS (SELECT 1 FROM crls WHERE kind = ?)",
                (
                    crl.kind,
                    crl.number,
                    crl.base_number,
                    int(crl.this_update.timestamp()),
                    int(crl.next_update.timestamp()),
                    crl.through_sequence,
                    crl.der,
                    crl.kind,
                ),
            )

        await self._database.write(write)

    async def published(self) -> dict[str, PublishedCrl]:
        def read(cursor: Cursor) -> list[tuple[Any, ...]]:
            return cursor.execute(
                "SELECT kind, number, base_number, this_update, next_update, through_sequence,"
                " der FROM crls"
            ).fetchall()

        return {crl.kind: crl for crl in map(_published, await self._database.read(read))}
