"""Revocations in the SQL store. The database sequence is the truth that revocation
streams, delta CRLs and every ca-service process follow."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ca_service.adapters.sql.audit import append_audit
from ca_service.adapters.sql.database import Cursor, Database, IntegrityError
from ca_service.adapters.sql.time import epoch, instant
from ca_service.domain.accounts import AuditAction, AuditEntry
from ca_service.domain.records import RevocationRecord
from ca_service.errors import ErrorReason, FailedPrecondition, NotFound
from ca_service.pki.crl import Reason, encode_entry

__all__ = ["SqlRevocationStore"]

# Any 64-bit number; it names the advisory lock that makes revocations commit one at a time
# on PostgreSQL (see ``SqlRevocationStore.revoke``).
_PG_REVOCATION_LOCK = 0x43415F5245564F4B


_COLUMNS = "sequence, serial, user_id, revoked_at, reason, invalidity_date, not_after"


def _record(row: Sequence[Any]) -> RevocationRecord:
    sequence, serial, user_id, revoked_at, reason, invalidity, not_after = row
    return RevocationRecord(
        sequence=int(sequence),
        serial=int(serial, 16),
        user_id=user_id,
        revoked_at=instant(revoked_at),
        reason=Reason(reason),
        invalidity_date=instant(invalidity),
        not_after=instant(not_after),
    )


class SqlRevocationStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def revoke(
        self,
        *,
        serial: int | None,
        user_id: str | None,
        reason: Reason,
        invalidity_date: datetime | None,
        actor: str,
        now: datetime,
    ) -> list[RevocationRecord]:
        """Revokes one certificate (``serial``) or every valid certificate of ``user_id``,
        with the audit entries, in one transaction."""
        at = epoch(now)

        def write(cursor: Cursor) -> list[RevocationRecord]:
            if cursor.dialect == "postgresql":
                # Sequence numbers are handed out when a row is inserted, not when it
                # commits: without this lock revocation 5 could commit before 4, and a
                # reader that saw 5 (a delta CRL, a WatchRevocations stream) would skip 4
                # for good. Under it, revocations commit in sequence order. (SQLite has
                # one writer at a time anyway.)
                cursor.execute("SELECT pg_advisory_xact_lock(?)", (_PG_REVOCATION_LOCK,))
            if serial is not None:
                rows = cursor.execute(
                    "SELECT serial, user_id, not_after, revoked_at FROM certificates"
                    " WHERE serial = ?",
                    (format(serial, "x"),),
                ).fetchall()
                if not rows:
                    raise NotFound(
                        f"no certificate with serial number {serial:x}",
                        reason=ErrorReason.CERTIFICATE_NOT_FOUND,
                    )
                if rows[0][3] is not None:
                    raise FailedPrecondition(
                        f"certificate {serial:x} is already revoked",
                        reason=ErrorReason.ALREADY_REVOKED,
                    )
            else:
                rows = cursor.execute(
                    "SELECT serial, user_id, not_after, revoked_at FROM certificates"
                    " WHERE user_id = ? AND revoked_at IS NULL AND not_after >= ?"
                    " ORDER BY issued_at",
                    (user_id, at),
                ).fetchall()
                if not rows:
                    raise NotFound(
                        f"user {user_id} has no valid certificate",
                        reason=ErrorReason.CERTIFICATE_NOT_FOUND,
                    )
            records = []
            for serial_hex, owner, not_after, _ in rows:
                entry = encode_entry(
                    int(serial_hex, 16), now.replace(microsecond=0), reason, invalidity_date
                )
                sequence = cursor.execute(
                    "INSERT INTO revocations (serial, user_id, revoked_at, reason,"
                    " invalidity_date, not_after, actor, crl_entry)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING sequence",
                    (
                        serial_hex,
                        owner,
                        at,
                        int(reason),
                        epoch(invalidity_date),
                        not_after,
                        actor,
                        entry,
                    ),
                ).fetchone()
                assert sequence is not None
                cursor.execute(
                    "UPDATE certificates SET revoked_at = ? WHERE serial = ?", (at, serial_hex)
                )
                details = {"serial": serial_hex, "reason": reason.name.lower()}
                append_audit(cursor, AuditEntry(now, actor, AuditAction.REVOKE, owner, details))
                records.append(
                    RevocationRecord(
                        int(sequence[0]),
                        int(serial_hex, 16),
                        owner,
                        instant(at),
                        reason,
                        invalidity_date,
                        instant(not_after),
                    )
                )
            return records

        try:
            return await self._database.write(write)
        except IntegrityError:
            # Two operators revoking the same certificate at once: one wins.
            raise FailedPrecondition(
                "the certificate is already revoked", reason=ErrorReason.ALREADY_REVOKED
            ) from None

    async def since(self, sequence: int, limit: int = 1000) -> list[RevocationRecord]:
        def read(cursor: Cursor) -> list[tuple[Any, ...]]:
            return cursor.execute(
                f"SELECT {_COLUMNS} FROM revocations WHERE sequence > ? ORDER BY sequence LIMIT ?",
                (sequence, limit),
            ).fetchall()

        return [_record(row) for row in await self._database.read(read)]

    async def of_serial(self, serial: int) -> RevocationRecord | None:
        row = await self._database.read_row(
            f"SELECT {_COLUMNS} FROM revocations WHERE serial = ?", (format(serial, "x"),)
        )
        return None if row is None else _record(row)

    async def latest_sequence(self) -> int:
        row = await self._database.read_row("SELECT MAX(sequence) FROM revocations")
        return int(row[0]) if row and row[0] is not None else 0
