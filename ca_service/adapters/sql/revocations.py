"""Revocations in the SQL store. The database sequence is the truth that revocation
streams, delta CRLs and every ca-service process follow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ca_service.adapters.sql.audit import append_audit
from ca_service.adapters.sql.database import Cursor, Database, IntegrityError
from ca_service.domain.accounts import AuditEntry
from ca_service.errors import FailedPrecondition, NotFound
from ca_service.pki.crl import Reason, encode_entry

__all__ = ["RevocationRecord", "SqlRevocationStore"]


@dataclass(frozen=True, slots=True)
class RevocationRecord:
    sequence: int
    serial: int
    user_id: str
    revoked_at: datetime
    reason: Reason
    invalidity_date: datetime | None
    not_after: datetime

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")


_COLUMNS = "sequence, serial, user_id, revoked_at, reason, invalidity_date, not_after"


def _record(row: Sequence[Any]) -> RevocationRecord:
    sequence, serial, user_id, revoked_at, reason, invalidity, not_after = row
    return RevocationRecord(
        sequence=int(sequence),
        serial=int(serial, 16),
        user_id=user_id,
        revoked_at=datetime.fromtimestamp(revoked_at, UTC),
        reason=Reason(reason),
        invalidity_date=None if invalidity is None else datetime.fromtimestamp(invalidity, UTC),
        not_after=datetime.fromtimestamp(not_after, UTC),
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
        at = int(now.timestamp())

        def write(cursor: Cursor) -> list[RevocationRecord]:
            if serial is not None:
                rows = cursor.execute(
                    "SELECT serial, user_id, not_after, revoked_at FROM certificates"
                    " WHERE serial = ?",
                    (format(serial, "x"),),
                ).fetchall()
                if not rows:
                    raise NotFound(
                        f"no certificate with serial number {serial:x}",
                        reason="CERTIFICATE_NOT_FOUND",
                    )
                if rows[0][3] is not None:
                    raise FailedPrecondition(
                        f"certificate {serial:x} is already revoked", reason="ALREADY_REVOKED"
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
                        f"user {user_id} has no valid certificate", reason="CERTIFICATE_NOT_FOUND"
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
                        None if invalidity_date is None else int(invalidity_date.timestamp()),
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
                append_audit(cursor, AuditEntry(now, actor, "revoke", owner, details))
                records.append(
                    RevocationRecord(
                        int(sequence[0]),
                        int(serial_hex, 16),
                        owner,
                        datetime.fromtimestamp(at, UTC),
                        reason,
                        invalidity_date,
                        datetime.fromtimestamp(not_after, UTC),
                    )
                )
            return records

        try:
            return await self._database.write(write)
        except IntegrityError:
            # Two operators revoking the same certificate at once: one wins.
            raise FailedPrecondition(
                "the certificate is already revoked", reason="ALREADY_REVOKED"
            ) from None

    async def since(self, sequence: int, limit: int = 1000) -> list[RevocationRecord]:
        def read(cursor: Cursor) -> list[tuple[Any, ...]]:
            return cursor.execute(
                f"SELECT {_COLUMNS} FROM revocations WHERE sequence > ? ORDER BY sequence LIMIT ?",
                (sequence, limit),
            ).fetchall()

        return [_record(row) for row in await self._database.read(read)]

    async def of_serial(self, serial: int) -> RevocationRecord | None:
        def read(cursor: Cursor) -> tuple[Any, ...] | None:
            return cursor.execute(
                f"SELECT {_COLUMNS} FROM revocations WHERE serial = ?", (format(serial, "x"),)
            ).fetchone()

        row = await self._database.read(read)
        return None if row is None else _record(row)

    async def latest_sequence(self) -> int:
        def read(cursor: Cursor) -> tuple[Any, ...] | None:
            return cursor.execute("SELECT MAX(sequence) FROM revocations").fetchone()

        row = await self._database.read(read)
        return int(row[0]) if row and row[0] is not None else 0
